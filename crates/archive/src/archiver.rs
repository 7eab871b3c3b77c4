//! The archiver: off the delivery path, every room's new log entries go into
//! the archive.
//!
//! After storing a message or change, a node appends the room's name to the
//! backplane's archive notes (`Backplane::archive_notes`: the same
//! partitioned, leased queue webhooks use, by room, so one room's notes are
//! in one partition). Each partition is read by the one node holding its
//! lease (taken and renewed every [`LEASE_RENEW`], lasting [`LEASE_TTL`]).
//! Each node holds about its share of the partitions (of the live nodes in
//! the registry), so more nodes archive more at once.
//! For each batch of notes the holder archives every room named, from the
//! archive's position to the room's head ([`Archive::append`], one
//! transaction per page, exactly once), and only then advances the
//! partition's cursor, fenced by the lease. A holder that dies mid-batch
//! leaves the cursor where it was: the next holder reads the same notes and
//! archives whatever is left. While PostgreSQL is down, the cursor stays
//! and the notes wait (the queue keeps 100,000 per partition).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chorus_backplane::{NodeRegistry, Position, Read, RoomLog, WEBHOOK_PARTITIONS, WebhookQueue};
use chorus_protocol::RoomName;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Archive, ArchiveError, Entry, RetentionRule};

/// How long a lease lasts unless renewed: a dead node's partitions wait this long.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a node takes or renews its leases.
pub const LEASE_RENEW: Duration = Duration::from_secs(2);
/// The cursor's name in the notes queue.
const CURSOR: &str = "archive";
/// Notes read at once.
const NOTES_BATCH: usize = 500;
/// Log entries archived per transaction.
const ENTRIES_BATCH: usize = 500;
/// How often an idle partition is read again.
const IDLE: Duration = Duration::from_millis(250);
/// Wait after a failure (the database or Redis down) before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// What the archiver works with.
pub struct Archiver {
    /// The database.
    pub archive: Archive,
    /// Where entries are read from.
    pub log: Arc<dyn RoomLog>,
    /// Which rooms have entries to archive.
    pub notes: Arc<dyn WebhookQueue>,
    /// The live nodes: each takes about its share of the partitions.
    pub registry: Arc<dyn NodeRegistry>,
    /// This node's id (the lease holder's name).
    pub node: String,
    /// How long messages are kept per room pattern, swept every so often
    /// by the holder of partition 0 (empty: kept for ever).
    pub retention: (Vec<RetentionRule>, Duration),
}

impl Archiver {
    /// Notes that `room` has new entries (call after storing one, before
    /// answering: a failed note fails the command, so the client's retry
    /// notes it again).
    pub async fn note(
        notes: &dyn WebhookQueue,
        room: &RoomName,
    ) -> Result<(), chorus_backplane::BackplaneError> {
        let partition = chorus_backplane::webhook_partition(room.as_str());
        // "<room>\n<ms since the Unix epoch>": the time gives the lag.
        let note = format!("{room}\n{}", chorus_protocol::unix_micros() / 1000);
        notes
            .append(partition, note.into_bytes().into(), None)
            .await
    }

    /// Takes and renews leases, archiving each held partition, until `stopped`.
    pub async fn run(self: Arc<Self>, stopped: CancellationToken) {
        let mut held: Vec<Option<(JoinSet<()>, Instant)>> =
            (0..WEBHOOK_PARTITIONS).map(|_| None).collect();
        let mut sweep: (Option<tokio::task::JoinHandle<()>>, Option<Instant>) = (None, None);
        let mut ticks = tokio::time::interval(LEASE_RENEW);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stopped.cancelled() => return,
            }
            // About an equal share each: a node over it lets the extra
            // leases lapse (another node takes them within the TTL), one
            // under it takes free ones, so more nodes archive more at once.
            if held[0].is_some() {
                self.clone().sweep_if_due(&mut sweep);
            }
            let nodes = self.registry.nodes().await.map_or(1, |n| n.len().max(1));
            let share = (WEBHOOK_PARTITIONS as usize).div_ceil(nodes);
            let mut holding = held.iter().filter(|slot| slot.is_some()).count();
            for partition in 0..WEBHOOK_PARTITIONS {
                let asked = Instant::now();
                let slot = &mut held[partition as usize];
                if slot.is_some() && holding > share {
                    self.release(slot, partition);
                    holding -= 1;
                    continue;
                }
                if slot.is_none() && holding >= share {
                    continue;
                }
                match self.notes.lease(partition, &self.node, LEASE_TTL).await {
                    Ok(true) => {
                        let sure_until = asked + LEASE_TTL - LEASE_RENEW;
                        match slot {
                            Some((_, until)) => *until = sure_until,
                            None => {
                                holding += 1;
                                tracing::info!(partition, "archive partition taken");
                                let mut worker = JoinSet::new();
                                worker.spawn(self.clone().drain(partition, stopped.clone()));
                                *slot = Some((worker, sure_until));
                            }
                        }
                    }
                    Ok(false) => {
                        if slot.is_some() {
                            holding -= 1;
                        }
                        self.release(slot, partition);
                    }
                    Err(error) => {
                        tracing::debug!(%error, partition, "archive lease not renewed");
                        if slot
                            .as_ref()
                            .is_some_and(|(_, until)| Instant::now() >= *until)
                        {
                            holding -= 1;
                            self.release(slot, partition);
                        }
                    }
                }
            }
        }
    }

    /// Starts a retention sweep when one is due and none runs.
    fn sweep_if_due(
        self: Arc<Self>,
        (running, last): &mut (Option<tokio::task::JoinHandle<()>>, Option<Instant>),
    ) {
        let (rules, every) = &self.retention;
        let due = last.is_none_or(|at| at.elapsed() >= *every);
        if rules.is_empty() || !due || running.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        *last = Some(Instant::now());
        let archiver = self.clone();
        *running = Some(tokio::spawn(async move {
            let now = chorus_protocol::unix_micros() / 1000;
            match archiver.archive.expire(&archiver.retention.0, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "archived messages past their retention deleted"
                ),
                Err(error) => {
                    tracing::warn!(%error, "retention sweep failed; tried again later");
                    archiver
                        .archive
                        .metrics()
                        .errors
                        .with_label_values(&["retention"])
                        .inc();
                }
            }
        }));
    }

    /// Stops archiving `partition` (its lease went, or is let go).
    fn release(&self, slot: &mut Option<(JoinSet<()>, Instant)>, partition: u32) {
        if let Some((mut worker, _)) = slot.take() {
            tracing::info!(partition, "archive partition lost to another node");
            worker.abort_all();
            self.archive.metrics().lag(partition).set(0.0);
        }
    }

    /// Archives the rooms `partition`'s notes name, batch after batch.
    async fn drain(self: Arc<Self>, partition: u32, stopped: CancellationToken) {
        loop {
            let pause = match self.batch(partition).await {
                Ok(Some(true)) => continue,
                Ok(Some(false)) => IDLE,
                // The lease went to another node: its worker carries on.
                Ok(None) => {
                    self.archive.metrics().lag(partition).set(0.0);
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, partition, "archiving paused");
                    let metrics = self.archive.metrics();
                    metrics.errors.with_label_values(&["archive"]).inc();
                    RETRY
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stopped.cancelled() => return,
            }
        }
    }

    /// One batch of notes: `Some(true)` when there were notes, `Some(false)`
    /// when none, `None` when the lease is lost.
    async fn batch(&self, partition: u32) -> Result<Option<bool>, BatchError> {
        let cursor = self.notes.cursor(partition, CURSOR).await?;
        let notes = self.notes.read(partition, &cursor, NOTES_BATCH).await?;
        let lag = self.archive.metrics().lag(partition);
        let Some(last) = notes.last() else {
            lag.set(0.0);
            return Ok(Some(false));
        };
        let now = chorus_protocol::unix_micros() / 1000;
        let noted_at = notes.iter().find_map(|note| noted(&note.event).1);
        lag.set(noted_at.map_or(0.0, |at| now.saturating_sub(at) as f64 / 1000.0));
        let mut rooms: Vec<&[u8]> = Vec::new();
        for note in &notes {
            let (room, _) = noted(&note.event);
            if !rooms.contains(&room) {
                rooms.push(room);
            }
        }
        for room in rooms {
            let Ok(room) = std::str::from_utf8(room)
                .map_err(drop)
                .and_then(|r| RoomName::parse_internal(r).map_err(drop))
            else {
                tracing::warn!(partition, "an archive note names no room; skipped");
                continue;
            };
            self.archive_room(&room).await?;
        }
        let advanced = self
            .notes
            .advance(partition, CURSOR, (&self.node, &last.id))
            .await?;
        Ok(advanced.then_some(true))
    }

    /// Archives `room` from the archive's position up to its head.
    pub async fn archive_room(&self, room: &RoomName) -> Result<(), BatchError> {
        let (mut epoch, mut seq) = self
            .archive
            .position(room.as_str())
            .await?
            .unwrap_or((0, 0));
        let after = |seq| {
            let limit = ENTRIES_BATCH;
            self.log.read(room, Read::After { seq, limit })
        };
        loop {
            let mut page = after(seq).await?;
            if page.position.epoch != epoch && seq > 0 {
                // A new epoch since: from its start.
                seq = 0;
                page = after(seq).await?;
            }
            epoch = page.position.epoch;
            let entries = page
                .entries
                .iter()
                .map(|stored| Entry::decode(stored.seq, &stored.payload))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(last) = entries.last() {
                seq = last.seq;
                let started = Instant::now();
                let done = self.archive.append(room.as_str(), epoch, &entries).await?;
                let metrics = self.archive.metrics();
                metrics
                    .batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                for (outcome, n) in [
                    ("written", done.written),
                    ("skipped", done.skipped),
                    ("lost", done.lost),
                ] {
                    metrics.entries.with_label_values(&[outcome]).inc_by(n);
                }
                if done.lost > 0 {
                    tracing::warn!(%room, lost = done.lost, "entries trimmed from Redis before they were archived");
                }
                // Redis may trim what the archive now holds.
                self.log.archived(room, Position { epoch, seq }).await?;
            }
            if !page.more || entries.is_empty() {
                return Ok(());
            }
        }
    }
}

/// A note's room and, when it has one, when it was noted (ms since the Unix
/// epoch): `<room>\n<ms>`, or the room alone.
fn noted(note: &[u8]) -> (&[u8], Option<u64>) {
    match note.iter().position(|&b| b == b'\n') {
        None => (note, None),
        Some(at) => {
            let time = std::str::from_utf8(&note[at + 1..])
                .ok()
                .and_then(|t| t.parse().ok());
            (&note[..at], time)
        }
    }
}

/// Why a batch stopped (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Redis (the notes or the log).
    #[error("backplane: {0}")]
    Backplane(#[from] chorus_backplane::BackplaneError),
    /// PostgreSQL, or an entry that does not decode.
    #[error("{0}")]
    Archive(#[from] ArchiveError),
}

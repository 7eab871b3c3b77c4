//! The sequenced fan-out: local room membership, each room's order, and the
//! delivery of numbered entries into members' outboxes.
//!
//! Each room with local members has a [`Sequencer`] that passes each sequence
//! number on once, in order; the hub decodes such an entry once, encodes the
//! client event at most once per encoding, and pushes the same frame into
//! every local member's outbox ([`Members::fan_out`]). Pushing never waits, so
//! a slow client cannot slow the reader or anyone else. Gaps go to the
//! repairer (see [`crate::chat::repair`]), whose answers come back through
//! [`Hub::repaired`].
//!
//! A joining member is added first in catch-up mode: live messages are kept
//! aside while its history is read, then it gets `joined`, the history, and the
//! kept messages newer than the history, in that order, with no duplicate.
//!
//! Unnumbered events (signals, notices, presence) are not the hub's: their
//! modules reach a room's members through [`Hub::with_members`].

use std::collections::HashMap;

use bytes::Bytes;
use chorus_backplane::{Delivery, Page, Position};
use chorus_protocol::{Envelope, EnvelopeBody, RoomName, ServerEvent};
use parking_lot::Mutex;
use tokio::sync::mpsc;

mod member;

pub use member::{Member, Members};

use crate::{
    chat::sequencer::{Sequencer, Step},
    metrics::Metrics,
};

/// Shards of the room table: fan-out in one room never blocks joins in most others.
const SHARDS: usize = 32;

/// Identifies a connection within this node.
pub type ConnId = u64;

/// Rooms of one shard.
type RoomTable = HashMap<RoomName, Room>;

/// A room with local members.
#[derive(Default)]
struct Room {
    /// Members, by connection.
    members: Members,
    /// The room's order on this node.
    sequencer: Sequencer,
}

/// A sequencer's request for messages `(after, upto]` of a room.
#[derive(Debug)]
pub struct RepairRequest {
    /// The room.
    pub room: RoomName,
    /// The sequencer's token for this request.
    pub token: u64,
    /// Last sequence number delivered.
    pub after: u64,
    /// Highest sequence number known to exist.
    pub upto: u64,
}

/// The read history is older than what the room follows already: read again.
#[derive(Debug)]
pub struct StaleRead;

/// Rooms with local members, and the fan-out into them.
pub struct Hub {
    /// Room -> local members and order, sharded by room hash. Locks are held only
    /// for map updates and one fan-out loop, never across an await.
    shards: Box<[Mutex<RoomTable>]>,
    /// Where fan-out is counted.
    metrics: Metrics,
    /// Gap repairs for the repairer task.
    repairs: mpsc::UnboundedSender<RepairRequest>,
}

impl Hub {
    /// An empty hub that sends gap repairs to `repairs`.
    pub fn new(metrics: Metrics, repairs: mpsc::UnboundedSender<RepairRequest>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            metrics,
            repairs,
        }
    }

    fn shard(&self, room: &str) -> &Mutex<RoomTable> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room);
        &self.shards[(hash as usize) % SHARDS]
    }

    /// Adds a member in catch-up mode: live messages are kept aside for it from now on.
    pub fn begin_join(&self, room: &RoomName, conn: ConnId, member: Member) {
        let mut shard = self.shard(room.as_str()).lock();
        let entry = shard.entry(room.clone()).or_insert_with(|| {
            self.metrics.rooms_local.inc();
            Room::default()
        });
        entry.members.insert(conn, member);
    }

    /// Completes a join: queues `joined` and the history read at `position`, then
    /// the kept live messages newer than it, and makes the member live.
    pub fn finish_join(
        &self,
        room: &RoomName,
        conn: ConnId,
        position: Position,
        frames: Vec<Bytes>,
    ) -> Result<(), StaleRead> {
        let mut shard = self.shard(room.as_str()).lock();
        let Some(entry) = shard.get_mut(room) else {
            return Ok(());
        };
        let Room { members, sequencer } = entry;
        let mut steps = Vec::new();
        if !sequencer.start(position, &mut |step| steps.push(step)) {
            return Err(StaleRead);
        }
        // Held messages the start released go to everyone (the joiner keeps them aside).
        for step in steps {
            self.apply(room, members, step);
        }
        members.finish_join(conn, position, frames);
        Ok(())
    }

    /// Removes a member; no message delivered after this returns reaches it.
    pub fn remove(&self, room: &RoomName, conn: ConnId) {
        let mut shard = self.shard(room.as_str()).lock();
        if let Some(entry) = shard.get_mut(room) {
            entry.members.remove(conn);
            if entry.members.is_empty() {
                shard.remove(room);
                self.metrics.rooms_local.dec();
            }
        }
    }

    /// Whether connection `conn` is a member of `room` on this node.
    pub fn is_member(&self, room: &RoomName, conn: ConnId) -> bool {
        let shard = self.shard(room.as_str()).lock();
        shard
            .get(room)
            .is_some_and(|entry| entry.members.contains(conn))
    }

    /// Runs `f` on `room`'s local members, if it has any (for unnumbered events).
    pub fn with_members(&self, room: &RoomName, f: impl FnOnce(&mut Members)) {
        if let Some(entry) = self.shard(room.as_str()).lock().get_mut(room) {
            f(&mut entry.members);
        }
    }

    /// The position this node has delivered `room` up to, once its start is known.
    pub fn position(&self, room: &RoomName) -> Option<Position> {
        let shard = self.shard(room.as_str()).lock();
        shard.get(room).and_then(|entry| entry.sequencer.position())
    }

    /// Every room whose start is known, with its position (for the position check).
    pub fn positions(&self) -> Vec<(RoomName, Position)> {
        let mut rooms = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            rooms.extend(shard.iter().filter_map(|(room, entry)| {
                entry
                    .sequencer
                    .position()
                    .map(|position| (room.clone(), position))
            }));
        }
        rooms
    }

    /// Hands a relayed entry to its room's sequencer (the backplane's reader calls this).
    pub fn deliver(&self, room: &RoomName, delivery: Delivery) {
        self.metrics.backplane_received.inc();
        self.with_sequencer(room, |sequencer, out| {
            sequencer.accept(delivery.epoch, delivery.seq, delivery.payload, &mut { out })
        });
    }

    /// Hands a room's position, read from the backplane, to its sequencer.
    pub fn check(&self, room: &RoomName, position: Position, delivered_before: Position) {
        self.with_sequencer(room, |sequencer, out| {
            sequencer.check(position, delivered_before, &mut { out })
        });
    }

    /// Hands the answer to a repair request to the room's sequencer.
    pub fn repaired(&self, room: &RoomName, token: u64, page: Option<Page>) {
        self.with_sequencer(room, |sequencer, out| {
            sequencer.repaired(token, page, &mut { out })
        });
    }

    fn with_sequencer(
        &self,
        room: &RoomName,
        f: impl FnOnce(&mut Sequencer, &mut dyn FnMut(Step)),
    ) {
        let mut shard = self.shard(room.as_str()).lock();
        // No local member: nobody to deliver to.
        let Some(entry) = shard.get_mut(room) else {
            return;
        };
        let Room { members, sequencer } = entry;
        f(sequencer, &mut |step| self.apply(room, members, step));
    }

    /// Carries out one sequencer step.
    fn apply(&self, room: &RoomName, members: &mut Members, step: Step) {
        match step {
            Step::Deliver {
                seq,
                payload,
                repaired,
            } => {
                if repaired {
                    self.metrics.repaired_messages.inc();
                }
                match Envelope::decode(&payload) {
                    Ok(envelope) => self.fan_out(members, seq, envelope),
                    Err(error) => {
                        self.metrics.backplane_undecodable.inc();
                        tracing::warn!(%error, %room, "dropping undecodable backplane message");
                    }
                }
            }
            Step::Reset { epoch, seq, reason } => {
                self.metrics.reset(reason);
                tracing::warn!(
                    %room,
                    epoch,
                    seq,
                    reason,
                    "room continuity broken; members told"
                );
                members.reset(&ServerEvent::Reset {
                    room,
                    epoch,
                    seq,
                    reason,
                });
            }
            Step::Repair {
                token,
                epoch,
                after,
                upto,
            } => {
                self.metrics.gap_repairs.inc();
                tracing::debug!(
                    %room,
                    epoch,
                    after,
                    upto,
                    "gap in room sequence; repairing from history"
                );
                let _ = self.repairs.send(RepairRequest {
                    room: room.clone(),
                    token,
                    after,
                    upto,
                });
            }
            Step::Dropped => self.metrics.duplicates_dropped.inc(),
        }
    }

    /// Pushes a message (or a change to one) to every local member that does
    /// not have it yet.
    fn fan_out(&self, members: &mut Members, seq: u64, envelope: Envelope) {
        let published_us = envelope.published_us;
        let mut body = envelope.body;
        if let EnvelopeBody::Message(message) = &mut body {
            message.seq = seq;
        }
        let event = match &body {
            EnvelopeBody::Message(message) => ServerEvent::Message(message),
            EnvelopeBody::Change(change) => change.event(seq),
            // Signals travel unnumbered; a numbered one is ignored.
            _ => return,
        };
        let reached = members.fan_out(seq, &event, published_us);
        self.metrics.fanout.observe(reached.recipients as f64);
        self.metrics
            .frames_delivered
            .inc_by(reached.recipients - reached.dropped);
        self.metrics.outbox_drops.inc_by(reached.dropped);
    }
}

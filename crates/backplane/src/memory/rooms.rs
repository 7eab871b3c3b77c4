//! The bus's room table: each room's epoch, counter, bounded history, dedup
//! keys, read markers, overlays and subscribers, sharded by room so that a
//! room's publishes serialise on its shard only.

use std::{
    collections::{HashMap, VecDeque},
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use bytes::Bytes;
use chorus_protocol::RoomName;
use parking_lot::Mutex;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::relay::{Item, Relayed};
use crate::{HistorySettings, Overlay, Position};

/// Shards of the room table.
const SHARDS: usize = 16;
/// A shard is swept for expired rooms once per this many operations on it.
const SWEEP_EVERY: u64 = 256;

/// Every room on the bus.
pub(super) struct Rooms {
    /// Room -> state, sharded by room hash.
    shards: [Mutex<Shard>; SHARDS],
    /// The last epoch handed out, so epochs only grow even within one microsecond.
    last_epoch: AtomicU64,
    /// History bounds.
    pub(super) settings: HistorySettings,
}

impl Default for Rooms {
    fn default() -> Self {
        Self::new(HistorySettings::default())
    }
}

#[derive(Default)]
struct Shard {
    /// Rooms with subscribers or kept state.
    rooms: HashMap<RoomName, RoomState>,
    /// Operations since the last sweep.
    operations: u64,
}

/// One room's state.
pub(super) struct RoomState {
    /// Nodes subscribed to the room.
    pub(super) subscribers: Vec<Subscriber>,
    /// Current epoch.
    pub(super) epoch: u64,
    /// Last sequence number assigned.
    pub(super) seq: u64,
    /// History, oldest first, bounded by length and age.
    pub(super) log: VecDeque<Entry>,
    /// Recent dedup keys and what to answer a retry.
    pub(super) dedup: HashMap<String, (u64, Bytes)>,
    /// Dedup keys in expiry order.
    pub(super) dedup_order: VecDeque<(Instant, String)>,
    /// Last publish (or creation), for expiring idle rooms.
    pub(super) touched: Instant,
    /// Read markers: user -> sequence number in this epoch.
    pub(super) reads: HashMap<String, u64>,
    /// Current state of changed messages, by sequence number.
    pub(super) overlays: HashMap<u64, Overlay>,
}

/// One entry of a room's history.
pub(super) struct Entry {
    /// Sequence number.
    pub(super) seq: u64,
    /// Acceptance time (ms since the Unix epoch), for trimming by age.
    pub(super) ts: u64,
    /// Message id, for `Read::BeforeId`.
    pub(super) id: String,
    /// The sender's user id, for checking edits and deletes.
    pub(super) sender: String,
    /// Whether this is a change to a message rather than a message.
    pub(super) change: bool,
    /// The envelope.
    pub(super) payload: Bytes,
}

/// A node subscribed to a room.
pub(super) struct Subscriber {
    /// Which attachment subscribed (for unsubscribe).
    pub(super) node: u64,
    /// Its relay queue.
    pub(super) queue: mpsc::Sender<Relayed>,
}

impl Rooms {
    pub(super) fn new(settings: HistorySettings) -> Self {
        Self {
            shards: Default::default(),
            last_epoch: AtomicU64::new(0),
            settings,
        }
    }

    fn shard(&self, room: &str) -> &Mutex<Shard> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room);
        &self.shards[(hash as usize) % SHARDS]
    }

    /// A fresh epoch: microseconds since the Unix epoch, strictly growing.
    fn new_epoch(&self) -> u64 {
        let now = unix_micros();
        let mut last = self.last_epoch.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_epoch.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Runs `f` on `room`'s state (created if missing, trimmed) under its shard lock.
    pub(super) fn with_room<R>(&self, room: &RoomName, f: impl FnOnce(&mut RoomState) -> R) -> R {
        let settings = self.settings;
        let mut shard = self.shard(room.as_str()).lock();
        shard.operations += 1;
        if shard.operations.is_multiple_of(SWEEP_EVERY) {
            sweep(&mut shard, &settings);
        }
        let now = Instant::now();
        let state = shard
            .rooms
            .entry(room.clone())
            .or_insert_with(|| RoomState::new(self.new_epoch(), now));
        if state.expired(now, &settings) {
            // Like the Redis keys: past the state TTL the room starts over.
            let subscribers = std::mem::take(&mut state.subscribers);
            *state = RoomState::new(self.new_epoch(), now);
            state.subscribers = subscribers;
        }
        state.trim(now, &settings);
        f(state)
    }

    /// Runs `f` on `room`'s state if the room exists, without creating it.
    pub(super) fn with_existing(&self, room: &RoomName, f: impl FnOnce(&mut RoomState)) {
        if let Some(state) = self.shard(room.as_str()).lock().rooms.get_mut(room) {
            f(state);
        }
    }

    /// Runs `f` on every room's state (for a node's shutdown).
    pub(super) fn for_each(&self, mut f: impl FnMut(&mut RoomState)) {
        for shard in &self.shards {
            shard.lock().rooms.values_mut().for_each(&mut f);
        }
    }
}

impl RoomState {
    fn new(epoch: u64, now: Instant) -> Self {
        Self {
            subscribers: Vec::new(),
            epoch,
            seq: 0,
            log: VecDeque::new(),
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            touched: now,
            reads: HashMap::new(),
            overlays: HashMap::new(),
        }
    }

    /// The room's epoch and last sequence number.
    pub(super) fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            seq: self.seq,
        }
    }

    fn expired(&self, now: Instant, settings: &HistorySettings) -> bool {
        now.duration_since(self.touched) > settings.state_ttl
    }

    /// Drops history past the bounds and dedup keys past the window.
    pub(super) fn trim(&mut self, now: Instant, settings: &HistorySettings) {
        while self.log.len() as u64 > settings.max_len {
            self.log.pop_front();
        }
        let cutoff = unix_millis().saturating_sub(settings.max_age.as_millis() as u64);
        while self.log.front().is_some_and(|e| e.ts < cutoff) {
            self.log.pop_front();
        }
        if now.duration_since(self.touched) > settings.max_age {
            self.log.clear();
        }
        if !self.overlays.is_empty() {
            let first = self.log.front().map_or(u64::MAX, |e| e.seq);
            self.overlays.retain(|seq, _| *seq >= first);
        }
        while let Some((expiry, _)) = self.dedup_order.front() {
            if *expiry > now {
                break;
            }
            let (_, key) = self.dedup_order.pop_front().expect("front exists");
            self.dedup.remove(&key);
        }
    }

    /// Queues `item` for every subscribed node. A node whose queue is full
    /// loses it (and repairs from history, as after a lost Redis relay).
    pub(super) fn relay(&self, room: &RoomName, item: Item) {
        for subscriber in &self.subscribers {
            let relayed = Relayed {
                room: room.clone(),
                item: item.clone(),
            };
            if let Err(TrySendError::Full(_)) = subscriber.queue.try_send(relayed) {
                tracing::error!(%room, "a node's relay queue is full; message lost to it");
            }
        }
    }
}

fn sweep(shard: &mut Shard, settings: &HistorySettings) {
    let now = Instant::now();
    shard.rooms.retain(|_, state| {
        state.trim(now, settings);
        !state.subscribers.is_empty() || !state.expired(now, settings)
    });
}

fn unix_millis() -> u64 {
    unix_micros() / 1000
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

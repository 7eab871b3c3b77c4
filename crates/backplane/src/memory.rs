//! The in-process backplane: a bus that one node (or several nodes in one
//! process, as tests run them) attaches to. It keeps each room's sequence
//! counter, bounded history and dedup keys in memory, with the same semantics
//! as the Redis backplane, so a single node resumes and pages history too.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;
use parking_lot::Mutex;

mod history;
mod presence;

use crate::{
    Backplane, BackplaneError, Change, Changed, Delivery, HistorySettings, Inbound, Marked,
    Outgoing, Overlay, Page, Position, PresenceEntry, Published, Read,
};

/// Shards of the bus's room table; a room's publishes serialise on its shard only.
const SHARDS: usize = 16;
/// Most user statuses the bus keeps.
const MAX_STATUSES: usize = 100_000;
/// A shard is swept for expired rooms once per this many operations on it.
const SWEEP_EVERY: u64 = 256;

/// An in-process message bus. Cloning gives another handle to the same bus.
#[derive(Clone, Default)]
pub struct MemoryBus {
    /// The shared state behind every handle.
    inner: Arc<BusInner>,
}

#[derive(Default)]
struct BusInner {
    /// Room -> state, sharded by room hash.
    shards: [Mutex<Shard>; SHARDS],
    /// Source of node keys for attachments.
    next_node: AtomicU64,
    /// The last epoch handed out, so epochs only grow even within one microsecond.
    last_epoch: AtomicU64,
    /// History bounds.
    settings: HistorySettings,
    /// Announced nodes: id -> (status, expiry).
    nodes: Mutex<HashMap<String, (String, Instant)>>,
    /// Presence: room -> user -> (nodes with the user present, leave signal).
    presence: Mutex<HashMap<RoomName, presence::RoomPresence>>,
    /// Users' drafts: user -> room -> text.
    drafts: Mutex<HashMap<String, std::collections::BTreeMap<String, String>>>,
    /// Users' statuses (at most [`MAX_STATUSES`]).
    statuses: Mutex<HashMap<String, String>>,
}

#[derive(Default)]
struct Shard {
    /// Rooms with subscribers or kept state.
    rooms: HashMap<RoomName, RoomState>,
    /// Operations since the last sweep.
    operations: u64,
}

struct RoomState {
    /// Nodes subscribed to the room.
    subscribers: Vec<Subscriber>,
    /// Current epoch.
    epoch: u64,
    /// Last sequence number assigned.
    seq: u64,
    /// History, oldest first, bounded by length and age.
    log: VecDeque<Entry>,
    /// Recent dedup keys and what to answer a retry.
    dedup: HashMap<String, (u64, Bytes)>,
    /// Dedup keys in expiry order.
    dedup_order: VecDeque<(Instant, String)>,
    /// Last publish (or creation), for expiring idle rooms.
    touched: Instant,
    /// Read markers: user -> sequence number in this epoch.
    reads: HashMap<String, u64>,
    /// Current state of changed messages, by sequence number.
    overlays: HashMap<u64, Overlay>,
}

struct Entry {
    /// Sequence number.
    seq: u64,
    /// Acceptance time (ms since the Unix epoch), for trimming by age.
    ts: u64,
    /// Message id, for `Read::BeforeId`.
    id: String,
    /// The sender's user id, for checking edits and deletes.
    sender: String,
    /// Whether this is a change to a message rather than a message.
    change: bool,
    /// The envelope.
    payload: Bytes,
}

struct Subscriber {
    /// Which attachment subscribed (for unsubscribe).
    node: u64,
    /// Where to deliver.
    inbound: Arc<dyn Inbound>,
}

impl MemoryBus {
    /// A new, empty bus with the default history bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty bus with these history bounds.
    pub fn with_history(settings: HistorySettings) -> Self {
        Self {
            inner: Arc::new(BusInner {
                settings,
                ..BusInner::default()
            }),
        }
    }

    /// Attaches a node that receives its subscribed rooms' messages through `inbound`.
    pub fn attach(&self, inbound: Arc<dyn Inbound>) -> MemoryBackplane {
        MemoryBackplane {
            bus: self.clone(),
            node: self.inner.next_node.fetch_add(1, Ordering::Relaxed),
            inbound,
            closed: AtomicBool::new(false),
        }
    }

    fn shard(&self, room: &str) -> &Mutex<Shard> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room);
        &self.inner.shards[(hash as usize) % SHARDS]
    }

    /// A fresh epoch: microseconds since the Unix epoch, strictly growing.
    fn new_epoch(&self) -> u64 {
        let now = unix_micros();
        let mut last = self.inner.last_epoch.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.inner.last_epoch.compare_exchange_weak(
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

    /// Runs `f` on `room`'s state (created if missing) under its shard lock.
    fn with_room<R>(&self, room: &RoomName, f: impl FnOnce(&mut RoomState) -> R) -> R {
        let settings = self.inner.settings;
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
        f(state)
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

    fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            seq: self.seq,
        }
    }

    fn expired(&self, now: Instant, settings: &HistorySettings) -> bool {
        now.duration_since(self.touched) > settings.state_ttl
    }

    /// Drops history past the bounds and dedup keys past the window.
    fn trim(&mut self, now: Instant, settings: &HistorySettings) {
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
}

fn sweep(shard: &mut Shard, settings: &HistorySettings) {
    let now = Instant::now();
    shard.rooms.retain(|_, state| {
        state.trim(now, settings);
        !state.subscribers.is_empty() || !state.expired(now, settings)
    });
}

/// One node's attachment to a [`MemoryBus`].
pub struct MemoryBackplane {
    /// The bus this node is attached to.
    bus: MemoryBus,
    /// This attachment's key on the bus.
    node: u64,
    /// Where this node's subscribed messages go.
    inbound: Arc<dyn Inbound>,
    /// Set by shutdown; later calls fail as a closed Redis client would.
    closed: AtomicBool,
}

impl MemoryBackplane {
    fn check_open(&self) -> Result<(), BackplaneError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BackplaneError::Unavailable("backplane shut down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Backplane for MemoryBackplane {
    async fn publish(
        &self,
        room: &RoomName,
        message: Outgoing,
    ) -> Result<Published, BackplaneError> {
        self.check_open()?;
        let settings = self.bus.inner.settings;
        // Storing and delivering under the shard lock gives every node the same order per room.
        self.bus.with_room(room, |state| {
            let now = Instant::now();
            state.trim(now, &settings);
            if let Some((seq, reply)) = message
                .dedup
                .as_ref()
                .and_then(|dedup| state.dedup.get(&dedup.key))
            {
                return Ok(Published::Duplicate {
                    epoch: state.epoch,
                    seq: *seq,
                    reply: reply.clone(),
                });
            }
            state.seq += 1;
            state.touched = now;
            let seq = state.seq;
            if let Some(dedup) = message.dedup {
                state
                    .dedup_order
                    .push_back((now + settings.dedup_window, dedup.key.clone()));
                state.dedup.insert(dedup.key, (seq, dedup.reply));
            }
            state.log.push_back(Entry {
                seq,
                ts: message.ts,
                id: message.id,
                sender: message.sender,
                change: false,
                payload: message.payload.clone(),
            });
            state.trim(now, &settings);
            for subscriber in &state.subscribers {
                subscriber.inbound.deliver(
                    room.as_str(),
                    Delivery {
                        epoch: state.epoch,
                        seq,
                        payload: message.payload.clone(),
                    },
                );
            }
            Ok(Published::New(state.position()))
        })
    }

    async fn mark_read(
        &self,
        room: &RoomName,
        user: &str,
        mark: Position,
        signal: Bytes,
    ) -> Result<Marked, BackplaneError> {
        self.check_open()?;
        Ok(self.bus.with_room(room, |state| {
            let head = state.position();
            if mark.epoch != head.epoch {
                return Marked::OtherEpoch(head);
            }
            if mark.seq > head.seq {
                return Marked::BeyondHead(head);
            }
            let current = state.reads.get(user).copied().unwrap_or(0);
            if mark.seq <= current {
                return Marked::Unchanged(current);
            }
            state.reads.insert(user.to_owned(), mark.seq);
            for subscriber in &state.subscribers {
                subscriber.inbound.signal(room.as_str(), signal.clone());
            }
            Marked::Moved(mark.seq)
        }))
    }

    async fn presence_up(
        &self,
        room: &RoomName,
        node: &str,
        entries: Vec<PresenceEntry>,
        _ttl: Duration,
    ) -> Result<(), BackplaneError> {
        self.check_open()?;
        for signal in self.bus.presence_up(room, node, entries) {
            self.signal(room, signal).await?;
        }
        Ok(())
    }

    async fn presence_down(
        &self,
        room: &RoomName,
        node: &str,
        users: Vec<String>,
    ) -> Result<(), BackplaneError> {
        self.check_open()?;
        for signal in self.bus.presence_down(room, node, users) {
            self.signal(room, signal).await?;
        }
        Ok(())
    }

    async fn presence_list(
        &self,
        room: &RoomName,
        max: usize,
    ) -> Result<(u64, Vec<Bytes>), BackplaneError> {
        self.check_open()?;
        Ok(self.bus.presence_list(room, max))
    }

    async fn save_draft(
        &self,
        user: &str,
        room: &RoomName,
        text: &str,
        max: usize,
    ) -> Result<bool, BackplaneError> {
        self.check_open()?;
        let mut all = self.bus.inner.drafts.lock();
        let drafts = all.entry(user.to_owned()).or_default();
        if text.is_empty() {
            drafts.remove(room.as_str());
        } else if drafts.contains_key(room.as_str()) || drafts.len() < max {
            drafts.insert(room.as_str().to_owned(), text.to_owned());
        } else {
            return Ok(false);
        }
        if drafts.is_empty() {
            all.remove(user);
        }
        Ok(true)
    }

    async fn drafts(&self, user: &str) -> Result<Vec<(String, String)>, BackplaneError> {
        self.check_open()?;
        let all = self.bus.inner.drafts.lock();
        let drafts = all.get(user).into_iter().flatten();
        Ok(drafts.map(|(r, t)| (r.clone(), t.clone())).collect())
    }

    async fn read_marker(
        &self,
        room: &RoomName,
        user: &str,
    ) -> Result<Option<Position>, BackplaneError> {
        self.check_open()?;
        Ok(self.bus.with_room(room, |state| {
            state.reads.get(user).map(|&seq| Position {
                epoch: state.epoch,
                seq,
            })
        }))
    }

    async fn read_markers(
        &self,
        room: &RoomName,
    ) -> Result<Vec<(String, Position)>, BackplaneError> {
        self.check_open()?;
        Ok(self.bus.with_room(room, |state| {
            let epoch = state.epoch;
            let mut markers: Vec<(String, Position)> = state
                .reads
                .iter()
                .map(|(user, &seq)| (user.clone(), Position { epoch, seq }))
                .collect();
            markers.sort_by(|a, b| b.1.seq.cmp(&a.1.seq).then_with(|| a.0.cmp(&b.0)));
            markers.truncate(1000);
            markers
        }))
    }

    async fn signal(&self, room: &RoomName, payload: Bytes) -> Result<(), BackplaneError> {
        self.check_open()?;
        self.bus.with_room(room, |state| {
            for subscriber in &state.subscribers {
                subscriber.inbound.signal(room.as_str(), payload.clone());
            }
        });
        Ok(())
    }

    async fn read(&self, room: &RoomName, read: Read) -> Result<Page, BackplaneError> {
        self.check_open()?;
        let settings = self.bus.inner.settings;
        self.bus.with_room(room, |state| {
            state.trim(Instant::now(), &settings);
            state.page(&read, None)
        })
    }

    async fn read_as(
        &self,
        room: &RoomName,
        read: Read,
        user: &str,
    ) -> Result<Page, BackplaneError> {
        self.check_open()?;
        let settings = self.bus.inner.settings;
        self.bus.with_room(room, |state| {
            state.trim(Instant::now(), &settings);
            state.page(&read, Some(user))
        })
    }

    async fn change(&self, room: &RoomName, change: Change) -> Result<Changed, BackplaneError> {
        self.check_open()?;
        let settings = self.bus.inner.settings;
        Ok(self.bus.with_room(room, |state| {
            let now = Instant::now();
            state.trim(now, &settings);
            let changed = state.apply(&change, now);
            if let Changed::Applied(position) = changed {
                for subscriber in &state.subscribers {
                    let delivery = Delivery {
                        epoch: position.epoch,
                        seq: position.seq,
                        payload: change.payload.clone(),
                    };
                    subscriber.inbound.deliver(room.as_str(), delivery);
                }
            }
            changed
        }))
    }

    async fn set_status(&self, user: &str, status: &str) -> Result<(), BackplaneError> {
        self.check_open()?;
        let mut statuses = self.bus.inner.statuses.lock();
        if statuses.len() >= MAX_STATUSES && !statuses.contains_key(user) {
            // Bounded: one other user's status goes (read as never set).
            if let Some(other) = statuses.keys().next().cloned() {
                statuses.remove(&other);
            }
        }
        statuses.insert(user.to_owned(), status.to_owned());
        Ok(())
    }

    async fn statuses(&self, users: &[String]) -> Result<Vec<Option<String>>, BackplaneError> {
        self.check_open()?;
        let statuses = self.bus.inner.statuses.lock();
        Ok(users.iter().map(|u| statuses.get(u).cloned()).collect())
    }

    async fn positions(&self, rooms: &[RoomName]) -> Result<Vec<Position>, BackplaneError> {
        self.check_open()?;
        Ok(rooms
            .iter()
            .map(|room| self.bus.with_room(room, |state| state.position()))
            .collect())
    }

    async fn subscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        self.check_open()?;
        self.bus.with_room(room, |state| {
            if !state.subscribers.iter().any(|s| s.node == self.node) {
                state.subscribers.push(Subscriber {
                    node: self.node,
                    inbound: self.inbound.clone(),
                });
            }
        });
        Ok(())
    }

    async fn unsubscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        let mut shard = self.bus.shard(room.as_str()).lock();
        if let Some(state) = shard.rooms.get_mut(room) {
            state.subscribers.retain(|s| s.node != self.node);
        }
        Ok(())
    }

    fn is_ready(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    async fn announce(
        &self,
        node_id: &str,
        status: String,
        ttl: Duration,
    ) -> Result<(), BackplaneError> {
        self.check_open()?;
        let expires = Instant::now() + ttl;
        let mut nodes = self.bus.inner.nodes.lock();
        nodes.insert(node_id.to_owned(), (status, expires));
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<String>, BackplaneError> {
        self.check_open()?;
        let now = Instant::now();
        let mut nodes = self.bus.inner.nodes.lock();
        nodes.retain(|_, (_, expires)| *expires > now);
        Ok(nodes.values().map(|(status, _)| status.clone()).collect())
    }

    async fn withdraw(&self, node_id: &str) -> Result<(), BackplaneError> {
        self.bus.inner.nodes.lock().remove(node_id);
        Ok(())
    }

    async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        for shard in &self.bus.inner.shards {
            for state in shard.lock().rooms.values_mut() {
                state.subscribers.retain(|s| s.node != self.node);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Sink(Mutex<Vec<(u64, u64)>>);
    impl Inbound for Sink {
        fn deliver(&self, _room: &str, delivery: Delivery) {
            self.0.lock().push((delivery.epoch, delivery.seq));
        }
        fn signal(&self, _room: &str, _payload: Bytes) {
            self.0.lock().push((0, 0));
        }
    }

    fn outgoing(n: u64, dedup: Option<&str>) -> Outgoing {
        Outgoing {
            payload: Bytes::from(n.to_string()),
            id: format!("id-{n}"),
            ts: unix_millis(),
            sender: "u1".into(),
            dedup: dedup.map(|key| crate::Dedup {
                key: key.into(),
                reply: Bytes::from_static(b"original"),
            }),
        }
    }

    #[tokio::test]
    async fn sequences_stores_pages_and_dedups() {
        let bus = MemoryBus::with_history(HistorySettings {
            max_len: 5,
            ..HistorySettings::default()
        });
        let sink = Arc::new(Sink(Mutex::default()));
        let node = bus.attach(sink.clone());
        let room = RoomName::parse("r").unwrap();
        node.subscribe(&room).await.unwrap();
        for n in 1..=8 {
            node.publish(&room, outgoing(n, None)).await.unwrap();
        }
        let seqs: Vec<u64> = sink.0.lock().iter().map(|d| d.1).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>());

        let latest = node.read(&room, Read::Latest { limit: 3 }).await.unwrap();
        assert_eq!(latest.position.seq, 8);
        assert_eq!(
            latest.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [6, 7, 8]
        );
        assert!(latest.more);
        // Only the last five are kept.
        let after = node
            .read(&room, Read::After { seq: 1, limit: 10 })
            .await
            .unwrap();
        assert_eq!(after.entries.first().unwrap().seq, 4);
        let before = node
            .read(&room, Read::Before { seq: 6, limit: 10 })
            .await
            .unwrap();
        assert_eq!(
            before.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [4, 5]
        );
        assert!(!before.more);
        let by_id = node
            .read(
                &room,
                Read::BeforeId {
                    id: "id-7".into(),
                    limit: 1,
                },
            )
            .await
            .unwrap();
        assert_eq!(by_id.entries[0].seq, 6);
        assert!(matches!(
            node.read(
                &room,
                Read::BeforeId {
                    id: "id-1".into(),
                    limit: 1
                }
            )
            .await,
            Err(BackplaneError::UnknownMessage)
        ));

        let first = node.publish(&room, outgoing(9, Some("k"))).await.unwrap();
        let again = node.publish(&room, outgoing(10, Some("k"))).await.unwrap();
        assert!(matches!(first, Published::New(Position { seq: 9, .. })));
        assert!(
            matches!(again, Published::Duplicate { seq: 9, ref reply, .. } if reply == "original")
        );
        assert_eq!(sink.0.lock().len(), 9);
    }
}

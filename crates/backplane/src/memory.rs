//! The in-process backplane: a bus that one node (or several nodes in one
//! process, as tests run them) attaches to.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;
use parking_lot::Mutex;

use crate::{Backplane, BackplaneError, Inbound};

/// Shards of the bus's subscription table; a room's publishes serialise on its shard only.
const SHARDS: usize = 16;

/// An in-process message bus. Cloning gives another handle to the same bus.
#[derive(Clone, Default)]
pub struct MemoryBus {
    /// The shared state behind every handle.
    inner: Arc<BusInner>,
}

#[derive(Default)]
struct BusInner {
    /// Room -> subscribed nodes, sharded by room hash.
    shards: [Mutex<HashMap<RoomName, Vec<Subscriber>>>; SHARDS],
    /// Source of node keys for attachments.
    next_node: AtomicU64,
}

struct Subscriber {
    /// Which attachment subscribed (for unsubscribe).
    node: u64,
    /// Where to deliver.
    inbound: Arc<dyn Inbound>,
}

impl MemoryBus {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::default()
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

    fn shard(&self, room: &str) -> &Mutex<HashMap<RoomName, Vec<Subscriber>>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room);
        &self.inner.shards[(hash as usize) % SHARDS]
    }
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
    async fn publish(&self, room: &RoomName, payload: Bytes) -> Result<(), BackplaneError> {
        self.check_open()?;
        // Delivering under the shard lock gives every node the same order per room.
        let shard = self.bus.shard(room.as_str()).lock();
        if let Some(subscribers) = shard.get(room) {
            for subscriber in subscribers {
                subscriber.inbound.deliver(room.as_str(), payload.clone());
            }
        }
        Ok(())
    }

    async fn subscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        self.check_open()?;
        let mut shard = self.bus.shard(room.as_str()).lock();
        let subscribers = shard.entry(room.clone()).or_default();
        if !subscribers.iter().any(|s| s.node == self.node) {
            subscribers.push(Subscriber {
                node: self.node,
                inbound: self.inbound.clone(),
            });
        }
        Ok(())
    }

    async fn unsubscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        let mut shard = self.bus.shard(room.as_str()).lock();
        if let Some(subscribers) = shard.get_mut(room) {
            subscribers.retain(|s| s.node != self.node);
            if subscribers.is_empty() {
                shard.remove(room);
            }
        }
        Ok(())
    }

    fn is_ready(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        for shard in &self.bus.inner.shards {
            shard.lock().retain(|_, subscribers| {
                subscribers.retain(|s| s.node != self.node);
                !subscribers.is_empty()
            });
        }
    }
}

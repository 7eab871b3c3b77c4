//! The in-process backplane: a bus that one node (or several nodes in one
//! process, as tests run them) attaches to. It keeps each room's sequence
//! counter, bounded history, dedup keys, markers and presence in memory, with
//! the same behaviour as the Redis backplane (the contract suite in
//! `tests/contract.rs` runs the same cases on both), so a single node resumes,
//! pages history and shows presence too.
//!
//! Like Redis, the bus relays asynchronously: a publish queues the message for
//! each subscribed node under the room's lock (so every node sees one order),
//! and each node's relay task hands it to the node's [`Inbound`]. The queue is
//! bounded like Redis's subscriber buffer; a node that falls that far behind
//! loses messages and repairs them from history, as on Redis.
//!
//! | part | file |
//! |---|---|
//! | [`crate::RoomLog`], [`crate::ReadMarkers`], [`crate::PubSub`] | `rooms.rs` (state), `log.rs`, `history.rs` |
//! | [`crate::UserState`] | `users.rs` |
//! | [`crate::PresenceStore`] | `presence.rs` |
//! | [`crate::NodeRegistry`] | `registry.rs` |

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use bytes::Bytes;
use chorus_protocol::RoomName;
use parking_lot::Mutex;
use tokio::{sync::mpsc, task::JoinHandle};

mod history;
mod log;
mod presence;
mod registry;
mod rooms;
mod users;

use crate::{Backplane, BackplaneError, Delivery, HistorySettings, Inbound};

/// Messages and signals one node may have queued before the bus drops them
/// for it (as Redis's subscriber buffer does).
const RELAY_QUEUE: usize = 8 * 1024;
/// Relayed items handed to the node per wake-up of its relay task.
const RELAY_BATCH: usize = 64;

/// An in-process message bus. Cloning gives another handle to the same bus.
#[derive(Clone, Default)]
pub struct MemoryBus {
    /// The shared state behind every handle.
    inner: Arc<BusInner>,
}

#[derive(Default)]
struct BusInner {
    /// Rooms' state, sharded by room.
    rooms: rooms::Rooms,
    /// Source of node keys for attachments.
    next_node: AtomicU64,
    /// Announced nodes.
    registry: registry::Nodes,
    /// Who is in which room.
    presence: presence::Present,
    /// Drafts and statuses.
    users: users::Users,
}

/// What the bus queues for a node.
struct Relayed {
    /// The room it was published in.
    room: RoomName,
    /// A numbered message, or an unstored signal.
    item: Item,
}

/// A relayed message or signal.
#[derive(Clone)]
enum Item {
    /// A stored, numbered entry.
    Message(Delivery),
    /// An unstored signal.
    Signal(Bytes),
}

/// One node's attachment to the bus, shared by its parts.
struct Attachment {
    /// The bus.
    bus: MemoryBus,
    /// This attachment's key on the bus (for unsubscribing).
    node: u64,
    /// The queue the node's relay task reads.
    queue: mpsc::Sender<Relayed>,
    /// Set by shutdown; later calls fail as a closed Redis client would.
    closed: AtomicBool,
    /// The relay task, stopped at shutdown.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Attachment {
    fn check_open(&self) -> Result<(), BackplaneError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BackplaneError::ShutDown);
        }
        Ok(())
    }
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
                rooms: rooms::Rooms::new(settings),
                ..BusInner::default()
            }),
        }
    }

    /// Attaches a node that receives its subscribed rooms' messages through
    /// `inbound`, from a task of its own. Must run inside a Tokio runtime.
    pub fn attach(&self, inbound: Arc<dyn Inbound>) -> Backplane {
        let (queue, relayed) = mpsc::channel(RELAY_QUEUE);
        let attachment = Arc::new(Attachment {
            bus: self.clone(),
            node: self.inner.next_node.fetch_add(1, Ordering::Relaxed),
            queue,
            closed: AtomicBool::new(false),
            task: Mutex::new(Some(tokio::spawn(relay(relayed, inbound)))),
        });
        let rooms = Arc::new(log::MemoryRooms::new(attachment.clone()));
        Backplane {
            log: rooms.clone(),
            markers: rooms.clone(),
            pubsub: rooms,
            users: Arc::new(users::MemoryUsers::new(attachment.clone())),
            presence: Arc::new(presence::MemoryPresence::new(attachment.clone())),
            registry: Arc::new(registry::MemoryRegistry::new(attachment)),
        }
    }
}

/// A node's relay task: hands what the bus queued to the node, in order.
async fn relay(mut queued: mpsc::Receiver<Relayed>, inbound: Arc<dyn Inbound>) {
    let mut batch = Vec::with_capacity(RELAY_BATCH);
    while queued.recv_many(&mut batch, RELAY_BATCH).await > 0 {
        for Relayed { room, item } in batch.drain(..) {
            match item {
                Item::Message(delivery) => inbound.deliver(&room, delivery),
                Item::Signal(payload) => inbound.signal(&room, payload),
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

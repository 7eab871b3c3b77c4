//! The in-process backplane: a bus that one node (or several nodes in one
//! process, as tests run them) attaches to. It keeps each room's sequence
//! counter, bounded history, dedup keys, markers and presence in memory, with
//! the same behaviour as the Redis backplane (the contract suite in
//! `tests/contract/` runs the same cases on both), so a single node resumes,
//! pages history and shows presence too.
//!
//! Like Redis, the bus relays asynchronously: a publish queues the message for
//! each subscribed node under the room's lock (so every node sees one order),
//! and each node's relay task (`relay.rs`) hands it to the node's
//! [`Inbound`]. The queue is bounded like Redis's subscriber buffer; a node
//! that falls that far behind loses messages and repairs them from history,
//! as on Redis.
//!
//! | part | file |
//! |---|---|
//! | [`crate::RoomLog`], [`crate::ReadMarkers`], [`crate::PubSub`] | `rooms.rs` (state), `log.rs`, `history.rs` |
//! | [`crate::UserState`] | `users.rs` |
//! | [`crate::PresenceStore`] | `presence.rs` |
//! | [`crate::NodeRegistry`] | `registry.rs` |
//! | [`crate::WebhookQueue`] | `webhooks.rs` |

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

mod history;
mod log;
mod presence;
mod registry;
mod relay;
mod rooms;
mod users;
mod webhooks;

use crate::{Backplane, HistorySettings, Inbound};

/// An in-process message bus. Cloning gives another handle to the same bus.
#[derive(Clone, Default)]
pub struct MemoryBus {
    /// Rooms' state, sharded by room.
    rooms: Arc<rooms::Rooms>,
    /// Source of node keys for attachments.
    next_node: Arc<AtomicU64>,
    /// Announced nodes.
    nodes: Arc<registry::Nodes>,
    /// Who is in which room.
    present: Arc<presence::Present>,
    /// Drafts and statuses.
    users: Arc<users::Users>,
    /// The webhook queue.
    hooks: Arc<webhooks::Hooks>,
    /// The archive's notes (the same kind of queue).
    archive_notes: Arc<webhooks::Hooks>,
}

impl MemoryBus {
    /// A new, empty bus with the default history bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty bus with these history bounds.
    pub fn with_history(settings: HistorySettings) -> Self {
        Self {
            rooms: Arc::new(rooms::Rooms::new(settings)),
            ..Self::default()
        }
    }

    /// Attaches a node that receives its subscribed rooms' messages through
    /// `inbound`, from a task of its own. Must run inside a Tokio runtime.
    pub fn attach(&self, inbound: Arc<dyn Inbound>) -> Backplane {
        let node = self.next_node.fetch_add(1, Ordering::Relaxed);
        let link = relay::NodeLink::start(node, inbound);
        let rooms = Arc::new(log::MemoryRooms::new(link.clone(), self.rooms.clone()));
        Backplane {
            log: rooms.clone(),
            markers: rooms.clone(),
            pubsub: rooms,
            users: Arc::new(users::MemoryUsers::new(link.clone(), self.users.clone())),
            webhooks: Arc::new(webhooks::MemoryHooks::new(link.clone(), self.hooks.clone())),
            archive_notes: Arc::new(webhooks::MemoryHooks::new(
                link.clone(),
                self.archive_notes.clone(),
            )),
            presence: Arc::new(presence::MemoryPresence::new(
                link.clone(),
                self.present.clone(),
                self.rooms.clone(),
            )),
            registry: Arc::new(registry::MemoryRegistry::new(link, self.nodes.clone())),
        }
    }
}

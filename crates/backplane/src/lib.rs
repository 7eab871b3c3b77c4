//! The backplane orders, stores and relays room messages between gateway nodes,
//! and keeps the little state that must outlive one node: read markers,
//! drafts, statuses, presence and the node registry.
//!
//! It is cut by concept: one trait per kind of state, each implemented
//! directly by the part of an implementation that owns that state. A node
//! gets them together as a [`Backplane`] and hands each of its own parts only
//! the traits it uses.
//!
//! | trait | what it keeps |
//! |---|---|
//! | [`RoomLog`] | each room's numbered, bounded history: publish, change, read, positions |
//! | [`ReadMarkers`] | how far each user read in each room |
//! | [`PubSub`] | which rooms this node hears, unstored signals, readiness |
//! | [`UserState`] | each user's drafts and status |
//! | [`PresenceStore`] | who is in which room, on which node |
//! | [`NodeRegistry`] | the nodes alive and their last status |
//!
//! Publishing is one atomic step: the room's next sequence number is assigned,
//! the message is appended to the room's bounded history and relayed to every
//! subscribed node, each delivery carrying `(epoch, seq)`. Nodes deliver to
//! their local members only what comes back from their subscriptions, in
//! sequence order, and fill any gap from the history ([`RoomLog::read`]).
//!
//! Two implementations with the same behaviour, held to it by the contract
//! suite in `tests/contract.rs`: Redis ([`RedisSettings::connect`]: a Stream
//! per room for history, a pub/sub channel per room for relaying, Lua scripts
//! tying them together) and [`MemoryBus`] (in-process; a single node, or
//! several nodes in one process). Both hand relayed messages to the node
//! asynchronously, from a task of their own (see [`Inbound`]).

mod changes;
mod channel;
mod error;
mod history;
mod markers;
mod memory;
mod parts;
mod position;
mod presence;
mod pubsub;
mod redis;
mod registry;
mod room_log;
mod tls;
mod users;
mod webhooks;

pub use changes::{
    Change, ChangeOp, ChangeRefusal, Changed, MAX_EMOJI_PER_MESSAGE, MAX_USERS_PER_EMOJI, Overlay,
};
pub use channel::ChannelNames;
pub use error::{BackplaneError, Outage};
pub use history::{
    Dedup, Delivery, HistorySettings, Outgoing, Page, Published, Read, Reader, Stored,
};
pub use markers::{MARKERS_MAX, Marked, ReadMarkers};
pub use memory::MemoryBus;
pub use parts::Backplane;
pub use position::Position;
pub use presence::{PresenceEntry, PresenceStore};
pub use pubsub::{Inbound, PubSub};
pub use redis::{RedisMode, RedisSettings};
pub use registry::NodeRegistry;
pub use room_log::RoomLog;
pub use users::{MAX_REVOCATIONS, Revocation, UserState};
pub use webhooks::{
    DEAD_LETTERS_MAX, QueuedEvent, WEBHOOK_PARTITIONS, WEBHOOK_QUEUE_MAX, WebhookQueue,
    webhook_partition,
};

//! The backplane relays room messages between gateway nodes.
//!
//! A node publishes every accepted message to its room's channel and delivers to
//! its local members only what comes back from its subscriptions, so every node
//! sees a room's messages in the one order the backplane gave them.
//!
//! Two implementations: [`RedisBackplane`] (one pub/sub channel per room, for a
//! cluster) and [`MemoryBus`] (in-process; a single node, or several nodes in
//! one process sharing a bus).

mod channel;
mod memory;
mod redis;
mod tls;

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;

pub use channel::ChannelNames;
pub use memory::{MemoryBackplane, MemoryBus};
pub use redis::{RedisBackplane, RedisSettings};

/// Receives what the backplane reads from subscribed rooms.
pub trait Inbound: Send + Sync + 'static {
    /// Called once per message, in the room's order. Must not block or await:
    /// it runs on the backplane's reader, which every room of the node shares.
    fn deliver(&self, room: &str, payload: Bytes);
}

/// Why a backplane operation failed. Nothing was delivered; the caller may retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackplaneError {
    /// The backplane could not be reached or refused the command.
    #[error("backplane unavailable: {0}")]
    Unavailable(String),
    /// The configuration cannot work (for example an unparseable Redis URL).
    #[error("invalid backplane configuration: {0}")]
    Config(String),
}

/// A way for nodes to relay room messages.
#[async_trait]
pub trait Backplane: Send + Sync + 'static {
    /// Publishes `payload` to every node subscribed to `room`, this one included.
    async fn publish(&self, room: &RoomName, payload: Bytes) -> Result<(), BackplaneError>;
    /// Starts delivering `room`'s messages to this node. Resolves once the subscription is active.
    async fn subscribe(&self, room: &RoomName) -> Result<(), BackplaneError>;
    /// Stops delivering `room`'s messages to this node.
    async fn unsubscribe(&self, room: &RoomName) -> Result<(), BackplaneError>;
    /// Whether publishing and subscribing can work right now.
    fn is_ready(&self) -> bool;
    /// Closes connections; later calls fail.
    async fn shutdown(&self);
}

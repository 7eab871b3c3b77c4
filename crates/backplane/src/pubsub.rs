//! Hearing rooms: subscriptions, what relayed messages arrive into, and
//! unstored signals.

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;

use crate::{BackplaneError, Delivery};

/// Receives what the backplane reads from subscribed rooms.
///
/// Both implementations call it from a task of their own, never from the
/// caller of a publish: a node sees its own messages come back exactly as a
/// peer's would, after its publish may already have returned. (The in-process
/// bus once delivered synchronously, inside the publish, which hid ordering
/// assumptions that broke on Redis.)
pub trait Inbound: Send + Sync + 'static {
    /// Called once per relayed message. Must not block or await: it runs on the
    /// backplane's reader, which every room of the node shares. Deliveries of one
    /// room usually arrive in sequence order, but may repeat, skip (a lost relay)
    /// or jump to a new epoch; the receiver checks `seq` and repairs from history.
    fn deliver(&self, room: &RoomName, delivery: Delivery);
    /// Called once per relayed signal (see [`PubSub::signal`]): unnumbered,
    /// unstored, best effort. Same rules as `deliver`: never block.
    fn signal(&self, room: &RoomName, payload: Bytes);
}

/// The node's link to the rooms it hears.
#[async_trait]
pub trait PubSub: Send + Sync + 'static {
    /// Starts delivering `room`'s messages to this node. Resolves once the
    /// subscription is active: anything published after it is heard.
    async fn subscribe(&self, room: &RoomName) -> Result<(), BackplaneError>;
    /// Stops delivering `room`'s messages to this node. Resolves once nothing
    /// published after it can reach the node (what was relayed before may
    /// still be on its way).
    async fn unsubscribe(&self, room: &RoomName) -> Result<(), BackplaneError>;
    /// Relays `payload` to every node subscribed to `room` (this one included)
    /// without storing or numbering it: for ephemeral events such as typing,
    /// which may be lost and must not take a place in the room's order.
    async fn signal(&self, room: &RoomName, payload: Bytes) -> Result<(), BackplaneError>;
    /// Whether publishing and subscribing can work right now: for Redis, both
    /// connections are up and the last probe went through pub/sub and back.
    fn is_ready(&self) -> bool;
    /// Whether the store refuses to store anything for lack of memory (Redis
    /// at `maxmemory` with `noeviction`): reads and signals still work.
    fn out_of_memory(&self) -> bool {
        false
    }
    /// Closes this node's connections; every later call of any part fails.
    async fn shutdown(&self);
}

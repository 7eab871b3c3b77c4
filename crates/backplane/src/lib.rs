//! The backplane orders, stores and relays room messages between gateway nodes.
//!
//! Publishing is one atomic step: the room's next sequence number is assigned,
//! the message is appended to the room's bounded history and relayed to every
//! subscribed node, each delivery carrying `(epoch, seq)`. Nodes deliver to
//! their local members only what comes back from their subscriptions, in
//! sequence order, and fill any gap from the history ([`Backplane::read`]).
//!
//! Two implementations: [`RedisBackplane`] (a Stream per room for history, a
//! pub/sub channel per room for relaying, a Lua script tying them together) and
//! [`MemoryBus`] (in-process; a single node, or several nodes in one process).

mod changes;
mod channel;
mod history;
mod memory;
mod redis;
mod tls;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;

pub use changes::{
    Change, ChangeOp, ChangeRefusal, Changed, MAX_EMOJI_PER_MESSAGE, MAX_USERS_PER_EMOJI, Overlay,
    Reader,
};
pub use channel::ChannelNames;
pub use history::{
    Dedup, Delivery, HistorySettings, Outgoing, Page, Position, Published, Read, Stored,
};
pub use memory::{MemoryBackplane, MemoryBus};
pub use redis::{RedisBackplane, RedisSettings};

/// Receives what the backplane reads from subscribed rooms.
pub trait Inbound: Send + Sync + 'static {
    /// Called once per relayed message. Must not block or await: it runs on the
    /// backplane's reader, which every room of the node shares. Deliveries of one
    /// room usually arrive in sequence order, but may repeat, skip (a lost relay)
    /// or jump to a new epoch; the receiver checks `seq` and repairs from history.
    fn deliver(&self, room: &str, delivery: Delivery);
    /// Called once per relayed signal (see [`Backplane::signal`]): unnumbered,
    /// unstored, best effort. Same rules as `deliver`: never block.
    fn signal(&self, room: &str, payload: Bytes);
}

/// Why a backplane operation failed. Nothing was stored or delivered; the caller may retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackplaneError {
    /// The backplane could not be reached or refused the command.
    #[error("backplane unavailable: {0}")]
    Unavailable(String),
    /// The configuration cannot work (for example an unparseable Redis URL).
    #[error("invalid backplane configuration: {0}")]
    Config(String),
    /// A read named a message id that is not in the room's history.
    #[error("no message with that id in the room's history")]
    UnknownMessage,
}

/// One local user present in a room, for [`Backplane::presence_up`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEntry {
    /// The user's id.
    pub user: String,
    /// Relayed when this makes the user present in the room.
    pub join: Bytes,
    /// Kept, and relayed when the user's last entry goes (or expires).
    pub leave: Bytes,
}

/// What [`Backplane::mark_read`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The marker moved forward to this sequence number; the receipt was relayed.
    Moved(u64),
    /// The marker already stood at this sequence number or later: nothing changed.
    Unchanged(u64),
    /// The sequence number is past the room's last message (the position given).
    BeyondHead(Position),
    /// The room is in another epoch now (the position given): numbering restarted.
    OtherEpoch(Position),
}

/// A way for nodes to order, keep and relay room messages.
#[async_trait]
pub trait Backplane: Send + Sync + 'static {
    /// Stores `message` as `room`'s next message and relays it to every node
    /// subscribed to `room`, this one included; or, when its dedup key was seen
    /// within the window, does nothing and returns the original acceptance.
    async fn publish(
        &self,
        room: &RoomName,
        message: Outgoing,
    ) -> Result<Published, BackplaneError>;
    /// Relays `payload` to every node subscribed to `room` (this one included)
    /// without storing or numbering it: for ephemeral events such as typing,
    /// which may be lost and must not take a place in the room's order.
    async fn signal(&self, room: &RoomName, payload: Bytes) -> Result<(), BackplaneError>;
    /// Moves `user`'s read marker in `room` forward to `mark` (never back, never
    /// past the room's last message) and, when it moved, relays `signal` like
    /// [`Backplane::signal`].
    async fn mark_read(
        &self,
        room: &RoomName,
        user: &str,
        mark: Position,
        signal: Bytes,
    ) -> Result<Marked, BackplaneError>;
    /// `user`'s read marker in `room`, if any (possibly of an older epoch).
    async fn read_marker(
        &self,
        room: &RoomName,
        user: &str,
    ) -> Result<Option<Position>, BackplaneError>;
    /// The room's read markers, furthest first (at most 1,000).
    async fn read_markers(
        &self,
        room: &RoomName,
    ) -> Result<Vec<(String, Position)>, BackplaneError>;
    /// Saves `user`'s unsent text for `room` (empty: deletes it); `false`, and
    /// nothing saved, when the user already has `max` other drafts.
    async fn save_draft(
        &self,
        user: &str,
        room: &RoomName,
        text: &str,
        max: usize,
    ) -> Result<bool, BackplaneError>;
    /// `user`'s drafts: (room, text), by room name.
    async fn drafts(&self, user: &str) -> Result<Vec<(String, String)>, BackplaneError>;
    /// Marks `entries` present in `room` from `node` for `ttl` (a refresh
    /// extends them); also ends, with their leave signals, entries of any node
    /// that were not refreshed in time.
    async fn presence_up(
        &self,
        room: &RoomName,
        node: &str,
        entries: Vec<PresenceEntry>,
        ttl: Duration,
    ) -> Result<(), BackplaneError>;
    /// Ends `users`' presence in `room` from `node`.
    async fn presence_down(
        &self,
        room: &RoomName,
        node: &str,
        users: Vec<String>,
    ) -> Result<(), BackplaneError>;
    /// How many users are present in `room`, and the leave signals of at most
    /// `max` of them (one per user).
    async fn presence_list(
        &self,
        room: &RoomName,
        max: usize,
    ) -> Result<(u64, Vec<Bytes>), BackplaneError>;
    /// Applies `change` to the message it targets and stores and relays the
    /// change as `room`'s next entry (see [`Change`]), in one atomic step.
    async fn change(&self, room: &RoomName, change: Change) -> Result<Changed, BackplaneError>;
    /// Reads a page of `room`'s history, with the room's current position.
    async fn read(&self, room: &RoomName, read: Read) -> Result<Page, BackplaneError>;
    /// Like [`Backplane::read`], with `user`'s read marker and unread count
    /// ([`Page::reader`]) from the same instant.
    async fn read_as(
        &self,
        room: &RoomName,
        read: Read,
        user: &str,
    ) -> Result<Page, BackplaneError>;
    /// Sets `user`'s status (`online` or `away`), kept as long as room state.
    async fn set_status(&self, user: &str, status: &str) -> Result<(), BackplaneError>;
    /// The statuses of `users`, in the order given (`None`: never set).
    async fn statuses(&self, users: &[String]) -> Result<Vec<Option<String>>, BackplaneError>;
    /// The current position of each room, in the order given.
    async fn positions(&self, rooms: &[RoomName]) -> Result<Vec<Position>, BackplaneError>;
    /// Starts delivering `room`'s messages to this node. Resolves once the subscription is active.
    async fn subscribe(&self, room: &RoomName) -> Result<(), BackplaneError>;
    /// Stops delivering `room`'s messages to this node.
    async fn unsubscribe(&self, room: &RoomName) -> Result<(), BackplaneError>;
    /// Whether publishing and subscribing can work right now: for Redis, both
    /// connections are up and the last probe went through pub/sub and back.
    fn is_ready(&self) -> bool;
    /// Announces this node (`status`, opaque JSON) to the cluster for `ttl`; a node
    /// repeats it well before the TTL runs out, and disappears when it stops.
    async fn announce(
        &self,
        node_id: &str,
        status: String,
        ttl: Duration,
    ) -> Result<(), BackplaneError>;
    /// The statuses of every node whose announcement has not run out (this one included).
    async fn nodes(&self) -> Result<Vec<String>, BackplaneError>;
    /// Removes this node's announcement at once (a clean exit).
    async fn withdraw(&self, node_id: &str) -> Result<(), BackplaneError>;
    /// Closes connections; later calls fail.
    async fn shutdown(&self);
}

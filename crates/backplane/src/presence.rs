//! Who is in which room, across nodes.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;

use crate::BackplaneError;

/// One local user present in a room, for [`PresenceStore::up`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEntry {
    /// The user's id.
    pub user: String,
    /// Relayed when this makes the user present in the room.
    pub join: Bytes,
    /// Kept, and relayed when the user's last entry goes (or expires).
    pub leave: Bytes,
}

/// Entries per (room, node, user) that live for a TTL unless refreshed. A
/// user's first entry in a room relays their join signal to the room; their
/// last entry gone, removed or expired, relays their leave signal. Every call
/// first ends the room's expired entries, so a node that died leaves no ghosts.
#[async_trait]
pub trait PresenceStore: Send + Sync + 'static {
    /// Marks `entries` present in `room` from `node` for `ttl` (a refresh
    /// extends them). Returns the join and leave signals this call relayed,
    /// in order (leaves of expired entries included): each is relayed by
    /// exactly one call.
    async fn up(
        &self,
        room: &RoomName,
        node: &str,
        entries: Vec<PresenceEntry>,
        ttl: Duration,
    ) -> Result<Vec<Bytes>, BackplaneError>;
    /// Ends `users`' entries in `room` from `node`; returns the signals
    /// relayed, as [`Self::up`].
    async fn down(
        &self,
        room: &RoomName,
        node: &str,
        users: Vec<String>,
    ) -> Result<Vec<Bytes>, BackplaneError>;
    /// How many users are present in `room`, and the leave signals of at most
    /// `max` of them (one per user).
    async fn list(&self, room: &RoomName, max: usize) -> Result<(u64, Vec<Bytes>), BackplaneError>;
}

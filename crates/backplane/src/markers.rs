//! Read markers: how far each user has read in each room.

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;

use crate::{BackplaneError, Position};

/// Most markers one [`ReadMarkers::markers`] call returns.
pub const MARKERS_MAX: usize = 1000;

/// What [`ReadMarkers::mark`] did.
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

/// Per room and user, the last sequence number read. Markers live as long as
/// the room's state and move forward only.
#[async_trait]
pub trait ReadMarkers: Send + Sync + 'static {
    /// Moves `user`'s marker in `room` forward to `mark` (never back, never
    /// past the room's last message) and, when it moved, relays `signal` to
    /// the room like [`crate::PubSub::signal`], in the same step.
    async fn mark(
        &self,
        room: &RoomName,
        user: &str,
        mark: Position,
        signal: Bytes,
    ) -> Result<Marked, BackplaneError>;
    /// `user`'s marker in `room`, if any (possibly of an older epoch).
    async fn marker(&self, room: &RoomName, user: &str)
    -> Result<Option<Position>, BackplaneError>;
    /// The room's markers, furthest first, then by user (at most [`MARKERS_MAX`]).
    async fn markers(&self, room: &RoomName) -> Result<Vec<(String, Position)>, BackplaneError>;
}

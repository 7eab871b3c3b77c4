//! Where a room stands: its epoch and last sequence number.

/// A room's place in its total order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Identifies one continuous numbering of the room. A new epoch (a larger number:
    /// microseconds since the Unix epoch when it began) means the previous history was lost.
    pub epoch: u64,
    /// Sequence number of the room's last message (0 when it has none in this epoch).
    pub seq: u64,
}

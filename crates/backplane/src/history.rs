//! What the backplane stores and reads: positions, history pages, and the
//! bounds that keep every room's history finite.

use std::time::Duration;

use bytes::Bytes;

use crate::{Overlay, Position};

/// How much history every room keeps, and for how long dedup keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistorySettings {
    /// Most messages kept per room (older ones are trimmed, approximately for Redis).
    pub max_len: u64,
    /// Messages older than this are trimmed; a room idle this long loses its history.
    pub max_age: Duration,
    /// How long a `client_msg_id` is remembered for idempotent retries.
    pub dedup_window: Duration,
    /// How long a room's epoch and sequence counter outlive its last message.
    /// Past it the room starts a new epoch (clients resuming are told `recovered: false`).
    pub state_ttl: Duration,
    /// When rooms are archived (not 0): entries the archive does not hold yet
    /// are kept past `max_len` and `max_age`, up to this many per room (Redis).
    pub unarchived_max: u64,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            max_len: 10_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            dedup_window: Duration::from_secs(10 * 60),
            state_ttl: Duration::from_secs(30 * 24 * 3600),
            unarchived_max: 0,
        }
    }
}

/// A relayed message as a node receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The room's epoch when the message was stored.
    pub epoch: u64,
    /// Its sequence number in that epoch.
    pub seq: u64,
    /// The encoded envelope.
    pub payload: Bytes,
}

/// A message read back from history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its sequence number.
    pub seq: u64,
    /// The encoded envelope.
    pub payload: Bytes,
    /// For a message that was edited, deleted or reacted to: its current state.
    pub overlay: Option<Overlay>,
}

/// Makes a publish idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    /// Unique per sender and client message id (the room is implied).
    pub key: String,
    /// What to hand back to a retry: opaque to the backplane, at most a few hundred bytes.
    pub reply: Bytes,
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The encoded envelope.
    pub payload: Bytes,
    /// The message id, so a history page can start from it.
    pub id: String,
    /// Acceptance time in milliseconds since the Unix epoch, for trimming by age.
    pub ts: u64,
    /// The sender's user id, kept with the message to check later edits and deletes.
    pub sender: String,
    /// Idempotency, when the client gave a message id.
    pub dedup: Option<Dedup>,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Stored and relayed at this position.
    New(Position),
    /// The dedup key was seen: nothing stored; the original acceptance.
    Duplicate {
        /// The room's current epoch.
        epoch: u64,
        /// The original message's sequence number.
        seq: u64,
        /// The reply stored with the original.
        reply: Bytes,
    },
}

/// Which part of a room's history to read. Every page is returned oldest first.
/// Reading backwards (`Latest`, `Before*`) returns messages only (a change is
/// in the overlay of its message); reading forwards (`After`, for resuming and
/// repairs) returns every entry, changes included, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The newest `limit` messages.
    Latest { limit: usize },
    /// Up to `limit` messages after `seq` (exclusive), oldest first.
    After { seq: u64, limit: usize },
    /// Up to `limit` messages before `seq` (exclusive), the newest of them.
    Before { seq: u64, limit: usize },
    /// Up to `limit` messages older than the message with this id.
    BeforeId { id: String, limit: usize },
}

impl Read {
    /// The page size asked for.
    pub fn limit(&self) -> usize {
        match self {
            Self::Latest { limit }
            | Self::After { limit, .. }
            | Self::Before { limit, .. }
            | Self::BeforeId { limit, .. } => *limit,
        }
    }
}

/// A page of history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The room's position when the page was read.
    pub position: Position,
    /// The messages, oldest first.
    pub entries: Vec<Stored>,
    /// Whether more messages lie beyond the page in the direction read
    /// (older for `Latest`/`Before*`, newer for `After`).
    pub more: bool,
    /// For a read made for a user ([`crate::RoomLog::read_as`]): their place.
    pub reader: Option<Reader>,
}

/// A reader's place in a room, returned with a history read made for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    /// Their read marker (possibly of an older epoch).
    pub marker: Option<Position>,
    /// Messages (not changes) after the marker in the current epoch: all of
    /// them when the marker is absent or of an older epoch.
    pub unread: u64,
}

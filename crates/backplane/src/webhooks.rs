//! The durable queue webhooks are delivered from: events appended to one of
//! [`WEBHOOK_PARTITIONS`] partitions (by room, so a room's events keep their
//! order), each partition delivered by the one node that holds its lease,
//! which records per endpoint how far it got (fenced by the lease), and
//! per-endpoint dead letters.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::BackplaneError;

/// Partitions of the webhook queue: at most this many nodes deliver at once.
pub const WEBHOOK_PARTITIONS: u32 = 8;

/// Most events a partition keeps (older ones are trimmed, approximately).
pub const WEBHOOK_QUEUE_MAX: usize = 100_000;

/// Most dead letters kept per endpoint (the oldest go first).
pub const DEAD_LETTERS_MAX: usize = 10_000;

/// One queued event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    /// Its place in the partition (Redis Stream id, or a counter in memory).
    pub id: String,
    /// The event, as the webhook sender encoded it.
    pub event: Bytes,
    /// Set on a replayed dead letter: only this endpoint gets it.
    pub only: Option<String>,
}

/// The webhook queue, shared by the cluster.
#[async_trait]
pub trait WebhookQueue: Send + Sync + 'static {
    /// Appends `event` to `partition` (for `only` one endpoint, when replayed).
    async fn append(
        &self,
        partition: u32,
        event: Bytes,
        only: Option<&str>,
    ) -> Result<(), BackplaneError>;
    /// Takes or extends the lease of `partition` for `node` for `ttl`;
    /// `false` when another node holds it.
    async fn lease(
        &self,
        partition: u32,
        node: &str,
        ttl: Duration,
    ) -> Result<bool, BackplaneError>;
    /// Events of `partition` after `after` ("0": from the start), at most `count`.
    async fn read(
        &self,
        partition: u32,
        after: &str,
        count: usize,
    ) -> Result<Vec<QueuedEvent>, BackplaneError>;
    /// How far `endpoint` got in `partition` ("0": nowhere yet).
    async fn cursor(&self, partition: u32, endpoint: &str) -> Result<String, BackplaneError>;
    /// Records that `endpoint` got everything of `partition` up to `id`, if
    /// `node` still holds the lease; `false` (nothing recorded) if not.
    async fn advance(
        &self,
        partition: u32,
        endpoint: &str,
        (node, id): (&str, &str),
    ) -> Result<bool, BackplaneError>;
    /// Keeps an event `endpoint` gave up on (bounded by [`DEAD_LETTERS_MAX`]).
    async fn bury(&self, endpoint: &str, event: Bytes) -> Result<(), BackplaneError>;
    /// `endpoint`'s dead letters, oldest first, at most `max`.
    async fn dead_letters(&self, endpoint: &str, max: usize) -> Result<Vec<Bytes>, BackplaneError>;
    /// Removes and returns `endpoint`'s oldest dead letters, at most `max`.
    async fn exhume(&self, endpoint: &str, max: usize) -> Result<Vec<Bytes>, BackplaneError>;
    /// How many events `partition` holds after `after` (the lag), bounded
    /// by [`WEBHOOK_QUEUE_MAX`].
    async fn behind(&self, partition: u32, after: &str) -> Result<u64, BackplaneError>;
}

/// The partition of `room`'s events.
pub fn webhook_partition(room: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in room.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % WEBHOOK_PARTITIONS
}

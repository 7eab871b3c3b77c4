//! What every client of a worker records: counters, and latency histograms
//! sharded so that receivers rarely wait for each other.

use std::sync::{Arc, Mutex, atomic::AtomicU64};

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Histogram shards, so receivers rarely wait for each other.
pub const SHARDS: usize = 16;

/// What every client of a worker shares.
pub struct Recorder {
    /// Delivery latency, sharded by client.
    pub latency: Vec<Mutex<Histogram<u64>>>,
    /// Connect latency.
    pub connect_latency: Mutex<Histogram<u64>>,
    /// Messages received.
    pub delivered: AtomicU64,
    /// Connections up (joined).
    pub connected: AtomicU64,
    /// Connections that failed.
    pub connect_errors: AtomicU64,
    /// Connections lost during the run.
    pub dropped: AtomicU64,
    /// Error events received.
    pub server_errors: AtomicU64,
    /// Messages sent, by room.
    pub sent: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Sends so far (for progress).
    pub sent_total: AtomicU64,
    /// When the first and the last connection completed.
    pub connect_span: Mutex<Option<(Instant, Instant)>>,
    /// Reconnect storm: from the kill to each dropped client being back in
    /// its room, µs.
    pub back_latency: Mutex<Histogram<u64>>,
    /// Reconnect storm: clients back in their room after a drop.
    pub reconnected: AtomicU64,
    /// Reconnect storm: of those, resumed with exactly the missed messages.
    pub recovered: AtomicU64,
    /// Reconnect storm: attempts that failed before a client got back.
    pub reconnect_errors: AtomicU64,
    /// Deliveries seen twice (same room sequence), not counted as delivered.
    pub duplicates: AtomicU64,
    /// Soak: reconnects the clients made by themselves.
    pub churned: AtomicU64,
    /// Soak: sends sent again after a reconnect.
    pub resent: AtomicU64,
    /// Room sequence numbers a client's stream jumped over.
    pub skipped: AtomicU64,
    /// The first few jumps, described.
    pub gaps: Mutex<Vec<crate::stats::Gap>>,
    /// Each client's last sequence number, by room.
    pub ends: Mutex<std::collections::BTreeMap<String, Vec<u64>>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            latency: (0..SHARDS)
                .map(|_| Mutex::new(crate::stats::histogram()))
                .collect(),
            connect_latency: Mutex::new(crate::stats::histogram()),
            delivered: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            sent: Mutex::new(Default::default()),
            sent_total: AtomicU64::new(0),
            connect_span: Mutex::new(None),
            back_latency: Mutex::new(crate::stats::histogram()),
            reconnected: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
            reconnect_errors: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            churned: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            gaps: Mutex::new(Vec::new()),
            ends: Mutex::new(Default::default()),
        })
    }

    /// All delivery latencies merged.
    pub fn latency(&self) -> Histogram<u64> {
        let mut all = crate::stats::histogram();
        for shard in &self.latency {
            let _ = all.add(&*shard.lock().unwrap());
        }
        all
    }
}

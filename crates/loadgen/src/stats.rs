//! What a worker measured, in a form that crosses process boundaries (JSON)
//! and merges: counters, and HDR histograms as (value, count) pairs.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Microseconds, 1 µs to 100 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// A histogram as recorded values and counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recorded(pub Vec<(u64, u64)>);

impl Recorded {
    /// The histogram's recorded values.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        Self(
            histogram
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    /// Adds these values to `histogram`.
    pub fn add_to(&self, histogram: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            let _ = histogram.record_n(value, count);
        }
    }
}

/// One worker's (or, merged, the whole run's) results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Connections that completed the handshake and joined.
    pub connected: u64,
    /// Connections that failed (refused, timed out, rejected).
    pub connect_errors: u64,
    /// Connections the server closed (or that broke) during the run.
    pub dropped: u64,
    /// Connect + upgrade + join time, µs.
    pub connect_latency: Recorded,
    /// Seconds from the first to the last connection completing.
    pub connect_seconds: f64,
    /// Messages sent, by room.
    pub sent: BTreeMap<String, u64>,
    /// Messages received (every member's copy counts).
    pub delivered: u64,
    /// Scheduled send time to receipt, µs.
    pub latency: Recorded,
    /// Error events the server answered with.
    pub server_errors: u64,
    /// Deliveries seen twice (same room sequence) and not counted.
    #[serde(default)]
    pub duplicates: u64,
    /// Reconnect storm: clients back in their room after a drop.
    #[serde(default)]
    pub reconnected: u64,
    /// Reconnect storm: of those, resumed with exactly the missed messages.
    #[serde(default)]
    pub recovered: u64,
    /// Reconnect storm: attempts that failed before a client got back.
    #[serde(default)]
    pub reconnect_errors: u64,
    /// Reconnect storm: from the kill to each client being back, µs.
    #[serde(default)]
    pub back_latency: Recorded,
    /// Soak: reconnects the clients made by themselves (not counted as dropped).
    #[serde(default)]
    pub churned: u64,
    /// Soak: sends sent again after a reconnect, not acknowledged before it.
    #[serde(default)]
    pub resent: u64,
    /// Room sequence numbers a client's stream jumped over (messages it never got).
    #[serde(default)]
    pub skipped: u64,
    /// The first few of those jumps, each described, to find where they happen.
    #[serde(default)]
    pub gaps: Vec<Gap>,
    /// Each client's last sequence number, by room (how far behind it ended).
    #[serde(default)]
    pub ends: BTreeMap<String, Vec<u64>>,
}

/// Gaps kept per worker: enough to see a pattern, bounded in a long run.
pub const GAPS_KEPT: usize = 20;

/// One jump over room sequence numbers in a client's stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Gap {
    /// The client's index.
    pub client: usize,
    /// Its room.
    pub room: String,
    /// The last sequence number it had, and the one that came next.
    pub from: u64,
    pub to: u64,
    /// Deliveries on this connection before the jump (0: the first after a resume).
    pub into_connection: u64,
    /// Connections the client had had before this one.
    pub reconnects: u64,
    /// The URL the client was connected to.
    pub url: String,
}

impl Measured {
    /// Sequence numbers clients were short of their room's last one when the run closed.
    pub fn behind(&self) -> u64 {
        self.ends
            .values()
            .map(|ends| {
                let last = ends.iter().copied().max().unwrap_or(0);
                ends.iter().map(|end| last - end).sum::<u64>()
            })
            .sum()
    }

    /// Adds another worker's results.
    pub fn merge(&mut self, other: &Measured) {
        self.connected += other.connected;
        self.connect_errors += other.connect_errors;
        self.dropped += other.dropped;
        self.connect_latency.0.extend(&other.connect_latency.0);
        self.connect_seconds = self.connect_seconds.max(other.connect_seconds);
        for (room, n) in &other.sent {
            *self.sent.entry(room.clone()).or_default() += n;
        }
        self.delivered += other.delivered;
        self.latency.0.extend(&other.latency.0);
        self.server_errors += other.server_errors;
        self.duplicates += other.duplicates;
        self.reconnected += other.reconnected;
        self.recovered += other.recovered;
        self.reconnect_errors += other.reconnect_errors;
        self.back_latency.0.extend(&other.back_latency.0);
        self.churned += other.churned;
        self.resent += other.resent;
        self.skipped += other.skipped;
        let space = GAPS_KEPT.saturating_sub(self.gaps.len());
        self.gaps.extend(other.gaps.iter().take(space).cloned());
        for (room, ends) in &other.ends {
            self.ends.entry(room.clone()).or_default().extend(ends);
        }
    }
}

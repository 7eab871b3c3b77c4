//! What nodes tell each other through the cluster view: each node's status
//! (with its load over the last seconds), and the view last read.

use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// What a node tells the cluster about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    /// The node id.
    pub id: String,
    /// The `chorus` version it runs (mixed during a rolling deploy).
    pub version: String,
    /// When it started (ms since the Unix epoch).
    pub started_at: u64,
    /// When this status was taken (ms since the Unix epoch).
    pub heartbeat_at: u64,
    /// WebSocket connections open on it.
    pub connections: i64,
    /// Rooms with members on it.
    pub rooms: i64,
    /// Whether it reports ready.
    pub ready: bool,
    /// Whether it is draining (shutting down).
    pub draining: bool,
    /// Load counters since start, for rates (older nodes omit them).
    #[serde(default)]
    pub totals: Totals,
    /// Latency and fan-out over the last 10 seconds.
    #[serde(default)]
    pub recent: Recent,
}

/// Counters since the node started; a reader derives rates from two statuses.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    /// `send` commands received from clients.
    pub messages_received: u64,
    /// Messages published through the backplane.
    pub messages_published: u64,
    /// Message frames queued to local clients.
    pub frames_delivered: u64,
}

/// Figures over the last 10 seconds or so.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Recent {
    /// Median delivery latency (ms), if anything was delivered.
    pub delivery_p50_ms: Option<f64>,
    /// 99th percentile delivery latency (ms).
    pub delivery_p99_ms: Option<f64>,
    /// Mean local recipients per message.
    pub fanout_mean: Option<f64>,
}

/// The last view read from the backplane.
#[derive(Debug, Default)]
pub struct ClusterView {
    /// Peers (this node included), by id, and when they were read.
    latest: RwLock<Snapshot>,
    /// This node's figures over the last heartbeat interval.
    recent: RwLock<Recent>,
}

impl ClusterView {
    /// This node's figures over the last heartbeat interval.
    pub fn recent(&self) -> Recent {
        *self.recent.read()
    }
}

/// Cumulative histogram buckets `(upper bound, count)`, as Prometheus keeps them.
type Buckets = Vec<(f64, u64)>;

/// How far back the "recent" figures look.
const RECENT_SPAN: Duration = Duration::from_secs(10);

/// The histograms at one heartbeat.
struct Sample {
    /// Delivery latency buckets.
    latency: Buckets,
    /// Fan-out sum and count.
    fanout: (f64, u64),
}

/// The histograms at the last heartbeats, to compute figures over the last
/// [`RECENT_SPAN`] (steadier than one interval, and still there just after a burst).
pub struct Window {
    /// Oldest first; one more than the span holds.
    samples: std::collections::VecDeque<Sample>,
    /// Heartbeats in the span.
    span: usize,
}

impl Window {
    pub fn new(interval: Duration) -> Self {
        let span = (RECENT_SPAN.as_secs_f64() / interval.as_secs_f64()).ceil() as usize;
        Self {
            samples: std::collections::VecDeque::new(),
            span: span.max(1),
        }
    }

    /// Takes a sample and returns the figures since the oldest one kept.
    pub fn advance(&mut self, metrics: &crate::metrics::Metrics) -> Recent {
        let now = Sample {
            latency: buckets(&metrics.delivery_latency),
            fanout: (
                metrics.fanout.get_sample_sum(),
                metrics.fanout.get_sample_count(),
            ),
        };
        let zero = (0.0, 0);
        let (since, sum, messages) = match self.samples.front() {
            Some(old) => (
                now.latency
                    .iter()
                    .zip(old.latency.iter().chain(std::iter::repeat(&zero)))
                    .map(|((bound, n), (_, before))| (*bound, n - before))
                    .collect::<Buckets>(),
                now.fanout.0 - old.fanout.0,
                now.fanout.1 - old.fanout.1,
            ),
            None => (now.latency.clone(), now.fanout.0, now.fanout.1),
        };
        self.samples.push_back(now);
        if self.samples.len() > self.span {
            self.samples.pop_front();
        }
        Recent {
            delivery_p50_ms: quantile(&since, 0.5).map(|s| s * 1e3),
            delivery_p99_ms: quantile(&since, 0.99).map(|s| s * 1e3),
            fanout_mean: (messages > 0).then(|| sum / messages as f64),
        }
    }
}

fn buckets(histogram: &prometheus::Histogram) -> Buckets {
    use prometheus::core::Metric;
    histogram
        .metric()
        .get_histogram()
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect()
}

/// The `q` quantile of cumulative buckets, interpolated inside its bucket.
fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(bound, count) in buckets {
        if count as f64 >= rank {
            let inside = (count - lower.1).max(1) as f64;
            return Some(lower.0 + (bound - lower.0) * ((rank - lower.1 as f64) / inside));
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

/// The view of the cluster as last read.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// The nodes alive at the last read.
    pub nodes: Vec<NodeStatus>,
    /// When the last successful read happened (ms since the Unix epoch; 0: never).
    pub read_at: u64,
    /// Whether the last heartbeat reached the backplane.
    pub fresh: bool,
}

impl ClusterView {
    /// Keeps this node's figures over the last heartbeat interval.
    pub fn set_recent(&self, recent: Recent) {
        *self.recent.write() = recent;
    }

    /// The last view read.
    pub fn snapshot(&self) -> Snapshot {
        self.latest.read().clone()
    }

    /// Keeps the nodes just read (at `read_at`); returns the ids read before.
    pub fn read(&self, nodes: Vec<NodeStatus>, read_at: u64) -> Vec<String> {
        let mut latest = self.latest.write();
        let before = latest.nodes.iter().map(|n| n.id.clone()).collect();
        *latest = Snapshot {
            nodes,
            read_at,
            fresh: true,
        };
        before
    }

    /// Marks the view stale (a heartbeat failed); `true` if it was fresh.
    pub fn stale(&self) -> bool {
        std::mem::replace(&mut self.latest.write().fresh, false)
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        // 10 samples up to 1 ms, 80 more up to 2 ms, 10 more up to 4 ms.
        let buckets = [(0.001, 10), (0.002, 90), (0.004, 100), (f64::INFINITY, 100)];
        assert_eq!(quantile(&buckets, 0.5), Some(0.0015));
        let p99 = quantile(&buckets, 0.99).unwrap();
        assert!((p99 - 0.0038).abs() < 1e-9, "{p99}");
        assert_eq!(quantile(&[(0.001, 0), (f64::INFINITY, 0)], 0.5), None);
    }
}

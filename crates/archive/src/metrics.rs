//! The archive's metrics, registered on the node's registry: entries
//! archived (and skipped, and lost to trimming before they were archived),
//! errors, batch latency, lag per partition, searches and their latency.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounterVec, Opts, Registry, core::Collector,
};

/// Latency buckets for database work, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The archive's counters and gauges.
#[derive(Clone)]
pub struct ArchiveMetrics {
    /// Log entries by outcome: `written`, `skipped` (already archived), `lost`
    /// (trimmed from Redis before they were archived).
    pub entries: IntCounterVec,
    /// Failures by operation: `archive` (a batch), `page` (history), `search`,
    /// `retention` (a sweep), `erase` (a user's messages), `export`.
    pub errors: IntCounterVec,
    /// Time to archive one room's page of entries (one transaction).
    pub batch_seconds: Histogram,
    /// Per partition this node holds: how old its oldest note not yet
    /// archived is (0 when caught up).
    pub lag_seconds: GaugeVec,
    /// Searches answered.
    pub searches: IntCounterVec,
    /// Time of one search in the database.
    pub search_seconds: Histogram,
}

impl Default for ArchiveMetrics {
    fn default() -> Self {
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec())).unwrap()
        };
        let counters = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).unwrap()
        };
        let metrics = Self {
            entries: counters(
                "chorus_archive_entries_total",
                "Log entries the archiver handled, by outcome (written, skipped, lost).",
                "outcome",
            ),
            errors: counters(
                "chorus_archive_errors_total",
                "Archive operations that failed, by operation (archive, page, search, retention, erase, export).",
                "op",
            ),
            batch_seconds: histogram(
                "chorus_archive_batch_seconds",
                "Time to archive one page of a room's entries (one transaction).",
            ),
            lag_seconds: GaugeVec::new(
                Opts::new(
                    "chorus_archive_lag_seconds",
                    "Age of the oldest note not yet archived, per partition this node holds.",
                ),
                &["partition"],
            )
            .unwrap(),
            searches: counters(
                "chorus_archive_searches_total",
                "Searches, by outcome (ok, error).",
                "outcome",
            ),
            search_seconds: histogram(
                "chorus_archive_search_seconds",
                "Time of one search in the database.",
            ),
        };
        for outcome in ["written", "skipped", "lost"] {
            metrics.entries.with_label_values(&[outcome]);
        }
        for op in ["archive", "page", "search", "retention", "erase", "export"] {
            metrics.errors.with_label_values(&[op]);
        }
        for outcome in ["ok", "error"] {
            metrics.searches.with_label_values(&[outcome]);
        }
        for partition in 0..chorus_backplane::WEBHOOK_PARTITIONS {
            metrics.lag(partition).set(0.0);
        }
        metrics
    }
}

impl ArchiveMetrics {
    /// Registers every metric on `registry` (once per registry).
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let all: [Box<dyn Collector>; 6] = [
            Box::new(self.entries.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.batch_seconds.clone()),
            Box::new(self.lag_seconds.clone()),
            Box::new(self.searches.clone()),
            Box::new(self.search_seconds.clone()),
        ];
        all.into_iter()
            .try_for_each(|metric| registry.register(metric))
    }

    /// The lag gauge of `partition`.
    pub fn lag(&self, partition: u32) -> Gauge {
        self.lag_seconds
            .with_label_values(&[&partition.to_string()])
    }
}

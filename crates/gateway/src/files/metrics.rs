//! File metrics: uploads by outcome (a fixed set of reasons), bytes stored,
//! store errors and latency by operation (`open`, `put`, `get`, `delete`).

use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// Upload outcomes, the values of the `outcome` label.
pub const OUTCOMES: [&str; 11] = [
    "stored",
    "invalid",
    "too_large",
    "rate_limited",
    "forbidden",
    "unauthorized",
    "image_too_large",
    "truncated",
    "empty",
    "store_error",
    "busy",
];

/// Uploads, bytes and the store's health.
#[derive(Clone)]
pub struct FileMetrics {
    /// Uploads by outcome.
    uploads: IntCounterVec,
    /// Bytes of the uploads stored.
    pub bytes: IntCounter,
    /// Store failures by operation.
    errors: IntCounterVec,
    /// Store latency by operation.
    seconds: HistogramVec,
    /// Time to make a thumbnail.
    pub thumbnail_seconds: Histogram,
}

impl FileMetrics {
    /// Registers the metrics in `registry`, every outcome's series at 0.
    pub fn new(registry: &Registry) -> Self {
        let uploads = IntCounterVec::new(
            Opts::new("chorus_uploads_total", "File uploads by outcome."),
            &["outcome"],
        )
        .unwrap();
        for outcome in OUTCOMES {
            uploads.with_label_values(&[outcome]);
        }
        let bytes =
            IntCounter::new("chorus_upload_bytes_total", "Bytes of the uploads stored.").unwrap();
        let errors = IntCounterVec::new(
            Opts::new(
                "chorus_file_store_errors_total",
                "File store failures by operation (open, put, get, delete).",
            ),
            &["op"],
        )
        .unwrap();
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "chorus_file_store_seconds",
                "File store latency by operation (put: a whole upload's data; get: one read).",
            )
            .buckets(vec![0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0, 60.0]),
            &["op"],
        )
        .unwrap();
        let thumbnail_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "chorus_thumbnail_seconds",
                "Time to decode an uploaded image and make its thumbnail.",
            )
            .buckets(vec![0.005, 0.02, 0.1, 0.5, 2.0, 10.0]),
        )
        .unwrap();
        for metric in [
            Box::new(uploads.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(bytes.clone()),
            Box::new(errors.clone()),
            Box::new(seconds.clone()),
            Box::new(thumbnail_seconds.clone()),
        ] {
            registry.register(metric).unwrap();
        }
        Self {
            uploads,
            bytes,
            errors,
            seconds,
            thumbnail_seconds,
        }
    }

    /// Counts an upload's outcome (one of [`OUTCOMES`]).
    pub fn upload(&self, outcome: &'static str) {
        debug_assert!(OUTCOMES.contains(&outcome));
        self.uploads.with_label_values(&[outcome]).inc();
    }

    /// Counts a store failure in `op`.
    pub fn store_error(&self, op: &'static str) {
        self.errors.with_label_values(&[op]).inc();
    }

    /// Records how long a store `op` took.
    pub fn store_seconds(&self, op: &'static str, took: Duration) {
        self.seconds
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
    }
}

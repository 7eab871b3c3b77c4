//! Webhook metrics, labelled by endpoint (at most 16 names) and partition
//! (at most 8).

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::config::WebhooksConfig;

/// Deliveries, failures, retries, dead letters and lag per endpoint.
pub struct WebhookMetrics {
    /// Events an endpoint answered 2xx.
    pub delivered: IntCounterVec,
    /// Attempts that failed (no answer, or not 2xx).
    pub failed: IntCounterVec,
    /// Events given up and kept as dead letters.
    pub dead: IntCounterVec,
    /// Events queued after an endpoint's cursor, per partition this node delivers.
    pub lag: IntGaugeVec,
    /// Endpoint names, to reset the lag of a partition that moved away.
    endpoints: Vec<String>,
}

impl WebhookMetrics {
    /// Registers the metrics in `registry`, every endpoint's series at 0.
    pub fn new(registry: &Registry, config: &WebhooksConfig) -> Self {
        let counter = |name: &str, help: &str| {
            let vec = IntCounterVec::new(Opts::new(name, help), &["endpoint"]).unwrap();
            registry.register(Box::new(vec.clone())).unwrap();
            vec
        };
        let delivered = counter(
            "chorus_webhook_deliveries_total",
            "Webhook events an endpoint accepted (2xx).",
        );
        let failed = counter(
            "chorus_webhook_failures_total",
            "Webhook attempts that failed (no answer, or not 2xx); each is retried until the give-up time.",
        );
        let dead = counter(
            "chorus_webhook_dead_letters_total",
            "Webhook events given up after --webhook-give-up-after and kept as dead letters.",
        );
        let lag = IntGaugeVec::new(
            Opts::new(
                "chorus_webhook_lag",
                "Events queued after an endpoint's cursor, per partition this node delivers (counted up to 10,000).",
            ),
            &["endpoint", "partition"],
        )
        .unwrap();
        registry.register(Box::new(lag.clone())).unwrap();
        let endpoints: Vec<String> = config.endpoints.iter().map(|e| e.name.clone()).collect();
        for name in &endpoints {
            for vec in [&delivered, &failed, &dead] {
                vec.with_label_values(&[name]).reset();
            }
        }
        Self {
            delivered,
            failed,
            dead,
            lag,
            endpoints,
        }
    }

    /// A partition moved to another node: its lag is that node's to report.
    pub fn forget(&self, partition: u32) {
        let partition = partition.to_string();
        for name in &self.endpoints {
            let _ = self.lag.remove_label_values(&[name, &partition]);
        }
    }
}

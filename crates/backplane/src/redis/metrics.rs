//! Counters of the Redis connections' health, registered with the node's
//! metrics, and the task that keeps them.

use fred::{clients::Client, interfaces::EventInterface};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use super::reply::config_error;
use crate::BackplaneError;

/// The probe's metrics.
#[derive(Clone)]
pub(super) struct ProbeMetrics {
    /// 1 while Redis refuses the probe's write for lack of memory.
    pub(super) out_of_memory: IntGauge,
    /// Round trips of successful probes.
    pub(super) round_trip: Histogram,
    /// Probes that failed or timed out.
    pub(super) failures: IntCounter,
}

/// Counters of backplane health.
#[derive(Clone)]
pub(super) struct RedisMetrics {
    /// Connection errors by connection role.
    errors: IntCounterVec,
    /// Successful reconnects by connection role.
    reconnects: IntCounterVec,
    /// Messages fred dropped because our reader fell behind.
    pub(super) lagged: IntCounter,
    /// The readiness probe's round trips and failures.
    pub(super) probe: ProbeMetrics,
    /// 1 when Redis's `maxmemory-policy` may evict Chorus's keys.
    pub(super) unsafe_policy: IntGauge,
    /// Messages per publish script call (how much the batching gathers).
    pub(super) publish_batch: Histogram,
}

impl RedisMetrics {
    pub(super) fn register(registry: &Registry) -> Result<Self, BackplaneError> {
        let errors = IntCounterVec::new(
            Opts::new(
                "chorus_backplane_errors_total",
                "Redis connection errors, by connection role.",
            ),
            &["role"],
        )
        .map_err(config_error)?;
        let reconnects = IntCounterVec::new(
            Opts::new(
                "chorus_backplane_reconnects_total",
                "Redis reconnections, by connection role.",
            ),
            &["role"],
        )
        .map_err(config_error)?;
        let lagged = IntCounter::new(
            "chorus_backplane_lagged_messages_total",
            "Pub/sub messages lost because the node's reader fell behind.",
        )
        .map_err(config_error)?;
        let probe = ProbeMetrics {
            out_of_memory: IntGauge::new(
                "chorus_backplane_out_of_memory",
                "1 while Redis refuses writes for lack of memory (maxmemory reached with noeviction).",
            )
            .map_err(config_error)?,
            round_trip: Histogram::with_opts(
                HistogramOpts::new(
                    "chorus_backplane_probe_seconds",
                    "Round trip of the readiness probe through Redis pub/sub.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
            )
            .map_err(config_error)?,
            failures: IntCounter::new(
                "chorus_backplane_probe_failures_total",
                "Readiness probes that did not come back through Redis pub/sub in time.",
            )
            .map_err(config_error)?,
        };
        let unsafe_policy = IntGauge::new(
            "chorus_backplane_evicting_policy",
            "1 when Redis's maxmemory-policy may evict keys (history and room state could vanish); set noeviction.",
        )
        .map_err(config_error)?;
        let publish_batch = Histogram::with_opts(
            HistogramOpts::new(
                "chorus_backplane_publish_batch_size",
                "Messages stored and relayed by one publish script call.",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .map_err(config_error)?;
        // `writer`: the publishes' own connection, with `--redis-wait-replicas`.
        for role in ["publisher", "subscriber", "writer"] {
            errors.with_label_values(&[role]);
            reconnects.with_label_values(&[role]);
        }
        for metric in [
            Box::new(errors.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconnects.clone()),
            Box::new(lagged.clone()),
            Box::new(probe.round_trip.clone()),
            Box::new(probe.failures.clone()),
            Box::new(probe.out_of_memory.clone()),
            Box::new(unsafe_policy.clone()),
            Box::new(publish_batch.clone()),
        ] {
            registry.register(metric).map_err(config_error)?;
        }
        Ok(Self {
            errors,
            reconnects,
            lagged,
            probe,
            unsafe_policy,
            publish_batch,
        })
    }

    /// Logs and counts `client`'s connection errors and reconnects (as `role`).
    pub(super) fn watch(&self, client: &Client, role: &'static str) -> JoinHandle<()> {
        let mut errors = client.error_rx();
        let mut reconnects = client.reconnect_rx();
        let metrics = self.clone();
        tokio::spawn(async move {
            // fred reports the first connection like a reconnect; only later ones count.
            let mut first = true;
            loop {
                tokio::select! {
                    error = errors.recv() => match error {
                        Ok((error, server)) => {
                            metrics.errors.with_label_values(&[role]).inc();
                            tracing::warn!(role, %error, server = ?server.map(|s| s.to_string()), "Redis connection lost; reconnecting");
                        }
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    },
                    server = reconnects.recv() => match server {
                        Ok(server) if std::mem::take(&mut first) => {
                            tracing::info!(role, server = %server, "Redis connection established");
                        }
                        Ok(server) => {
                            metrics.reconnects.with_label_values(&[role]).inc();
                            tracing::info!(role, server = %server, "Redis connection re-established");
                        }
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    },
                }
            }
        })
    }
}

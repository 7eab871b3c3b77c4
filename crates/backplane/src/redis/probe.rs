//! Readiness that proves the whole relay path, not just open sockets: every
//! interval the node publishes a number on a channel of its own and waits for
//! its subscriber to read it back. A subscription that silently died, a reader
//! that fell behind, or a publisher that cannot write all fail the probe, and
//! the node reports not-ready until a probe succeeds again.
//!
//! A failed probe also re-subscribes every channel the subscriber should hold,
//! so a subscription lost without a reconnect event heals itself.
//!
//! Each probe also stores its number (a key with a short expiry): when Redis
//! is out of memory it refuses that write, and the node reports it (not
//! ready, `backplane_out_of_memory`) until a write goes through again.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fred::{
    clients::{Client, SubscriberClient},
    interfaces::{KeysInterface, PubsubInterface},
    prelude::Value,
    types::Expiration,
};

use tokio::{sync::Notify, task::JoinHandle};

use super::metrics::ProbeMetrics;

/// Shortest probe timeout, whatever the interval: a Redis link slower than this
/// cannot carry chat anyway.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// What the prober and the subscriber's reader share.
pub(super) struct Probe {
    /// This node's probe channel (unique per process and node).
    channel: String,
    /// Highest probe number read back from the subscription.
    echoed: AtomicU64,
    /// Wakes the prober when a number comes back.
    arrived: Notify,
    /// Whether the last probe came back in time.
    healthy: AtomicBool,
    /// Whether the last probe's write was refused for lack of memory.
    full: AtomicBool,
}

impl Probe {
    pub(super) fn new(prefix: &str) -> Arc<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            channel: format!("{prefix}:probe:{}:{nanos}:{unique}", std::process::id()),
            echoed: AtomicU64::new(0),
            arrived: Notify::new(),
            healthy: AtomicBool::new(false),
            full: AtomicBool::new(false),
        })
    }

    /// Whether `channel` is this probe's (the reader hands it here instead of to a room).
    pub(super) fn is_probe(&self, channel: &str) -> bool {
        channel == self.channel
    }

    /// Records a probe number read back from the subscription.
    pub(super) fn echo(&self, value: &Value) {
        if let Some(n) = value.as_u64() {
            self.echoed.fetch_max(n, Ordering::AcqRel);
            self.arrived.notify_waiters();
        }
    }

    /// Whether the last probe came back in time.
    pub(super) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Whether Redis refused the last probe's write for lack of memory.
    pub(super) fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// Stores probe number `n` and records whether Redis is out of memory.
    async fn write(&self, publisher: &Client, n: u64, ttl: Duration, metrics: &ProbeMetrics) {
        let expiry = Expiration::PX(ttl.as_millis().max(1) as i64);
        let key = format!("{}:w", self.channel);
        let stored: Result<(), _> = publisher.set(key, n, Some(expiry), None, false).await;
        let full = stored.is_err_and(|e| e.details().starts_with("OOM "));
        metrics.out_of_memory.set(i64::from(full));
        if self.full.swap(full, Ordering::AcqRel) != full {
            if full {
                tracing::error!(
                    "Redis is out of memory (maxmemory reached): messages are refused until memory is freed; node not ready"
                );
            } else {
                tracing::info!("Redis stores again: node ready");
            }
        }
    }

    async fn echoed(&self, n: u64) {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.echoed.load(Ordering::Acquire) >= n {
                return;
            }
            arrived.await;
        }
    }
}

/// Probes every `interval` until aborted; re-subscribing is bounded by `command_timeout`.
pub(super) fn spawn(
    probe: Arc<Probe>,
    publisher: Client,
    subscriber: SubscriberClient,
    (interval, command_timeout): (Duration, Duration),
    metrics: ProbeMetrics,
) -> JoinHandle<()> {
    let timeout = interval.max(MIN_TIMEOUT);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut subscribed = false;
        let mut n = 0u64;
        loop {
            ticks.tick().await;
            if !subscribed {
                subscribed = resubscribe(&probe, &subscriber, command_timeout).await;
                if !subscribed {
                    fail(&probe, &metrics);
                    continue;
                }
            }
            n += 1;
            let started = Instant::now();
            let round_trip = tokio::time::timeout(timeout, async {
                publisher
                    .publish::<Value, _, _>(probe.channel.as_str(), n)
                    .await
                    .ok()?;
                probe.echoed(n).await;
                Some(())
            })
            .await;
            if let Ok(Some(())) = round_trip {
                metrics.round_trip.observe(started.elapsed().as_secs_f64());
                probe.write(&publisher, n, 2 * timeout, &metrics).await;
                if !probe.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!("backplane probe went through pub/sub; node ready");
                }
            } else {
                fail(&probe, &metrics);
                subscribed = false;
            }
        }
    })
}

fn fail(probe: &Probe, metrics: &ProbeMetrics) {
    metrics.failures.inc();
    if probe.healthy.swap(false, Ordering::AcqRel) {
        tracing::warn!("backplane probe did not come back through pub/sub; node not ready");
    }
}

/// Subscribes the probe channel and every channel the subscriber tracks.
async fn resubscribe(probe: &Probe, subscriber: &SubscriberClient, timeout: Duration) -> bool {
    let mut channels = tracked_channels(subscriber);
    if !channels.iter().any(|c| probe.is_probe(c)) {
        channels.push(probe.channel.clone());
    }
    matches!(
        tokio::time::timeout(timeout, subscriber.subscribe(channels)).await,
        Ok(Ok(()))
    )
}

/// Every channel the subscriber should hold (fred tracks what was subscribed).
pub(super) fn tracked_channels(subscriber: &SubscriberClient) -> Vec<String> {
    subscriber
        .tracked_channels()
        .iter()
        .map(|c| c.to_string())
        .collect()
}

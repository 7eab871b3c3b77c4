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
//!
//! In a Redis Cluster the probe goes through every shard: one channel (and
//! one stored key) in a slot of each primary, chosen again when the primaries
//! change, and a round succeeds only when every shard echoed it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use fred::{
    clients::{Client, SubscriberClient},
    interfaces::{ClusterInterface, KeysInterface},
    prelude::Value,
    types::Expiration,
};

use parking_lot::Mutex;
use tokio::{sync::Notify, task::JoinHandle};

use super::{
    metrics::ProbeMetrics,
    sharding::{Sharding, slot_of},
};

/// Shortest probe timeout, whatever the interval: a Redis link slower than this
/// cannot carry chat anyway.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// What the prober and the subscriber's reader share.
pub(super) struct Probe {
    /// This node's probe channel (unique per process and node); in a cluster
    /// the stem of one channel per shard.
    channel: String,
    /// The probe number of the round under way.
    round: AtomicU64,
    /// Echoes of this round read back so far (one per probe channel).
    echoed: AtomicUsize,
    /// Wakes the prober when a number comes back.
    arrived: Notify,
    /// Whether the last probe came back in time.
    healthy: AtomicBool,
    /// Whether the last probe's write was refused for lack of memory.
    full: AtomicBool,
    /// In a cluster: the primaries' first slots the probe channels were
    /// chosen for, and those channels (chosen again only when they change).
    shard_channels: Mutex<(Vec<u16>, Vec<String>)>,
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
            round: AtomicU64::new(0),
            echoed: AtomicUsize::new(0),
            arrived: Notify::new(),
            healthy: AtomicBool::new(false),
            full: AtomicBool::new(false),
            shard_channels: Mutex::new((Vec::new(), Vec::new())),
        })
    }

    /// Whether `channel` is one of this probe's (the reader hands it here
    /// instead of to a room).
    pub(super) fn is_probe(&self, channel: &str) -> bool {
        channel
            .strip_prefix(self.channel.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(":{"))
    }

    /// The probe channels of a round: this node's one, or in a cluster one
    /// in a slot of each primary `publisher` knows.
    fn channels(&self, publisher: &Client, sharding: Sharding) -> Vec<String> {
        let state = match sharding {
            Sharding::Single => None,
            Sharding::Cluster => publisher.cached_cluster_state(),
        };
        let Some(state) = state else {
            return vec![self.channel.clone()];
        };
        let slots = state.unique_hash_slots();
        let mut cached = self.shard_channels.lock();
        if cached.0 != slots {
            let channels = slots
                .iter()
                .map(|&slot| format!("{}:{{{}}}", self.channel, tag_in(slot)))
                .collect();
            *cached = (slots, channels);
        }
        cached.1.clone()
    }

    /// Records a probe number read back from the subscription.
    pub(super) fn echo(&self, value: &Value) {
        if value.as_u64() == Some(self.round.load(Ordering::Acquire)) {
            self.echoed.fetch_add(1, Ordering::AcqRel);
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

    /// Stores probe number `n` (on every shard) and records whether Redis
    /// (any shard) is out of memory.
    async fn write(
        &self,
        publisher: &Client,
        (n, channels): (u64, &[String]),
        ttl: Duration,
        metrics: &ProbeMetrics,
    ) {
        let expiry = Expiration::PX(ttl.as_millis().max(1) as i64);
        let writes = channels.iter().map(|channel| {
            let key = format!("{channel}:w");
            publisher.set::<(), _, _>(key, n, Some(expiry.clone()), None, false)
        });
        let stored = futures_util::future::join_all(writes).await;
        let full = stored.iter().any(|stored| {
            stored
                .as_ref()
                .is_err_and(|e| e.details().starts_with("OOM "))
        });
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

    /// Waits until `count` echoes of the round came back.
    async fn echoed(&self, count: usize) {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.echoed.load(Ordering::Acquire) >= count {
                return;
            }
            arrived.await;
        }
    }
}

/// A hash tag whose slot is `slot` (found by trying numbers: about 16,384
/// CRC16s, done when the primaries change).
fn tag_in(slot: u16) -> u32 {
    (0..)
        .find(|n| slot_of(&format!("{{{n}}}")) == slot)
        .unwrap_or(0)
}

/// Probes every `interval` until aborted; re-subscribing is bounded by `command_timeout`.
pub(super) fn spawn(
    probe: Arc<Probe>,
    (publisher, subscriber): (Client, SubscriberClient),
    (interval, command_timeout): (Duration, Duration),
    metrics: ProbeMetrics,
    sharding: Sharding,
) -> JoinHandle<()> {
    let timeout = interval.max(MIN_TIMEOUT);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut subscribed: Vec<String> = Vec::new();
        let mut n = 0u64;
        loop {
            ticks.tick().await;
            let channels = probe.channels(&publisher, sharding);
            if subscribed != channels {
                let link = (&subscriber, sharding);
                if !resubscribe(&channels, link, command_timeout).await {
                    subscribed.clear();
                    fail(&probe, &metrics);
                    continue;
                }
                subscribed.clone_from(&channels);
            }
            n += 1;
            probe.round.store(n, Ordering::Release);
            probe.echoed.store(0, Ordering::Release);
            let started = Instant::now();
            let round_trip = tokio::time::timeout(timeout, async {
                for channel in &channels {
                    let payload = n.to_string().into();
                    sharding
                        .publish(&publisher, channel.clone(), payload)
                        .await
                        .ok()?;
                }
                probe.echoed(channels.len()).await;
                Some(())
            })
            .await;
            if let Ok(Some(())) = round_trip {
                metrics.round_trip.observe(started.elapsed().as_secs_f64());
                let round = (n, channels.as_slice());
                probe.write(&publisher, round, 2 * timeout, &metrics).await;
                if !probe.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!("backplane probe went through pub/sub; node ready");
                }
            } else {
                fail(&probe, &metrics);
                subscribed.clear();
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

/// Subscribes the probe's `channels` and every channel the subscriber tracks.
async fn resubscribe(
    channels: &[String],
    (subscriber, sharding): (&SubscriberClient, Sharding),
    timeout: Duration,
) -> bool {
    let mut all = sharding.tracked(subscriber);
    all.extend(
        channels
            .iter()
            .filter(|c| !all.contains(c))
            .cloned()
            .collect::<Vec<_>>(),
    );
    matches!(
        tokio::time::timeout(timeout, sharding.subscribe(subscriber, all)).await,
        Ok(Ok(()))
    )
}

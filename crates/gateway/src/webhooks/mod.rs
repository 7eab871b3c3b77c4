//! Webhooks: the events `chat` queues (see `chat/events.rs`) delivered to the
//! configured endpoints, signed in the Standard Webhooks form
//! ([`crate::auth::signature`]).
//!
//! The queue has [`WEBHOOK_PARTITIONS`] partitions; each is delivered by the
//! one node holding its lease (taken and renewed here every
//! [`LEASE_RENEW`], lasting [`LEASE_TTL`]), so every event is sent by one
//! node of the cluster, in its room's order. For each partition it holds, a
//! node runs one worker per endpoint ([`deliver`]): it reads events after
//! the endpoint's cursor, sends each (retrying with exponential backoff and
//! full jitter until `--webhook-give-up-after`, then burying it as a dead
//! letter) and advances the cursor, fenced by the lease. A node that dies
//! mid-delivery loses its leases within [`LEASE_TTL`]; the next holder
//! starts from the cursors, so an event may be sent twice (same
//! `webhook-id`), never lost.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chorus_backplane::WEBHOOK_PARTITIONS;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod deliver;
mod metrics;

use crate::chat::Chat;

/// How long a lease lasts unless renewed: a dead node's partitions wait this long.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// How often a node takes or renews its leases.
pub const LEASE_RENEW: Duration = Duration::from_secs(2);

/// Starts delivering webhooks, if any endpoint is configured, until `stopped`.
pub fn start(chat: Arc<Chat>, stopped: CancellationToken) {
    let Some(config) = chat.config().webhooks.clone() else {
        return;
    };
    if config.endpoints.is_empty() {
        return;
    }
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .user_agent(concat!("chorus-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds");
    let metrics = metrics::WebhookMetrics::new(&chat.metrics().registry, &config);
    let shared = Arc::new(deliver::Shared {
        chat,
        config,
        client,
        metrics,
    });
    tokio::spawn(keep_leases(shared, stopped));
}

/// Takes and renews this node's leases; runs each held partition's workers
/// and stops them when its lease is lost (or may have run out).
async fn keep_leases(shared: Arc<deliver::Shared>, stopped: CancellationToken) {
    let node = shared.chat.config().node_id.clone();
    let queue = shared.chat.backplane().webhooks.clone();
    // Per partition: its workers while held, and until when the lease is sure.
    let mut held: Vec<Option<(JoinSet<()>, Instant)>> =
        (0..WEBHOOK_PARTITIONS).map(|_| None).collect();
    let mut ticks = tokio::time::interval(LEASE_RENEW);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stopped.cancelled() => return,
        }
        for partition in 0..WEBHOOK_PARTITIONS {
            let asked = Instant::now();
            let slot = &mut held[partition as usize];
            match queue.lease(partition, &node, LEASE_TTL).await {
                Ok(true) => {
                    // Sure until the TTL from when it was asked, less a renewal.
                    let sure_until = asked + LEASE_TTL - LEASE_RENEW;
                    match slot {
                        Some((_, until)) => *until = sure_until,
                        None => {
                            tracing::info!(partition, "webhook partition taken");
                            let workers = deliver::spawn(&shared, partition, &stopped);
                            *slot = Some((workers, sure_until));
                        }
                    }
                }
                Ok(false) => release(slot, &shared, partition),
                Err(error) => {
                    tracing::debug!(%error, partition, "webhook lease not renewed");
                    if slot
                        .as_ref()
                        .is_some_and(|(_, until)| Instant::now() >= *until)
                    {
                        release(slot, &shared, partition);
                    }
                }
            }
        }
    }
}

fn release(slot: &mut Option<(JoinSet<()>, Instant)>, shared: &deliver::Shared, partition: u32) {
    if let Some((mut workers, _)) = slot.take() {
        tracing::info!(partition, "webhook partition lost to another node");
        workers.abort_all();
        shared.metrics.forget(partition);
    }
}

//! One partition's deliveries to one endpoint, in order: read after the
//! cursor, send each event until it is taken or given up, advance the
//! cursor (only while this node holds the partition's lease).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chorus_backplane::{QueuedEvent, WebhookQueue};
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::metrics::WebhookMetrics;
use crate::{
    auth::signature,
    chat::Chat,
    config::{Endpoint, WebhooksConfig},
};

/// Events read at once.
const BATCH: usize = 100;

/// How often an idle worker looks for new events.
const POLL: Duration = Duration::from_millis(250);

/// How often a worker counts its lag (counting scans up to 10,000 entries).
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Events sent between two cursor writes (and at the end of each batch):
/// a node that dies sends at most this many again, besides the one in flight.
const ADVANCE_EVERY: usize = 20;

/// First retry delay; each later one doubles, up to [`RETRY_MAX`], with full jitter.
const RETRY_FIRST: Duration = Duration::from_millis(500);

/// Longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What every worker of the node shares.
pub struct Shared {
    /// The node (its id, its backplane).
    pub chat: Arc<Chat>,
    /// The endpoints and retry bounds.
    pub config: WebhooksConfig,
    /// Sends the requests (one connection pool for every endpoint).
    pub client: reqwest::Client,
    /// Deliveries, failures, dead letters, lag.
    pub metrics: WebhookMetrics,
}

/// The fields of an event the sender reads.
#[derive(Deserialize)]
struct Head {
    /// `webhook-id`.
    id: String,
    /// The event type, for the endpoint's filter.
    #[serde(rename = "type")]
    kind: String,
    /// `data.room`, for the endpoint's filter.
    data: Room,
}

#[derive(Deserialize)]
struct Room {
    /// Absent from `user.connected` and `user.disconnected`.
    #[serde(default)]
    room: Option<String>,
}

/// Starts one worker per endpoint for `partition`.
pub fn spawn(shared: &Arc<Shared>, partition: u32, stopped: &CancellationToken) -> JoinSet<()> {
    let mut workers = JoinSet::new();
    for index in 0..shared.config.endpoints.len() {
        let (shared, stopped) = (shared.clone(), stopped.clone());
        workers.spawn(async move {
            tokio::select! {
                () = run(&shared, partition, index) => {}
                () = stopped.cancelled() => {}
            }
        });
    }
    workers
}

async fn run(shared: &Shared, partition: u32, index: usize) {
    let endpoint = &shared.config.endpoints[index];
    let queue = shared.chat.backplane().webhooks.clone();
    let node = shared.chat.config().node_id.clone();
    let lag = shared
        .metrics
        .lag
        .with_label_values(&[&endpoint.name, &partition.to_string()]);
    let mut cursor = loop {
        match queue.cursor(partition, &endpoint.name).await {
            Ok(cursor) => break cursor,
            Err(error) => {
                tracing::debug!(%error, partition, "webhook cursor not read");
                tokio::time::sleep(POLL).await;
            }
        }
    };
    let mut lag_counted = Instant::now() - LAG_EVERY;
    loop {
        let events = match queue.read(partition, &cursor, BATCH).await {
            Ok(events) => events,
            Err(error) => {
                tracing::debug!(%error, partition, "webhook events not read");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if lag_counted.elapsed() >= LAG_EVERY {
            lag_counted = Instant::now();
            if let Ok(behind) = queue.behind(partition, &cursor).await {
                lag.set(i64::try_from(behind).unwrap_or(i64::MAX));
            }
        }
        if events.is_empty() {
            lag.set(0);
            tokio::time::sleep(POLL).await;
            continue;
        }
        let last = events.len() - 1;
        for (i, event) in events.into_iter().enumerate() {
            send_or_bury(shared, endpoint, queue.as_ref(), &event).await;
            cursor = event.id;
            if i == last || (i + 1) % ADVANCE_EVERY == 0 {
                // Fenced by the lease: a node that lost it records nothing.
                match queue
                    .advance(partition, &endpoint.name, (&node, &cursor))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return,
                    // Sent but not recorded: the next holder may send them again.
                    Err(error) => tracing::debug!(%error, partition, "webhook cursor not advanced"),
                }
            }
        }
    }
}

/// Sends `event` to `endpoint` until it is taken or given up (then buried).
async fn send_or_bury(
    shared: &Shared,
    endpoint: &Endpoint,
    queue: &dyn WebhookQueue,
    event: &QueuedEvent,
) {
    if event
        .only
        .as_deref()
        .is_some_and(|only| only != endpoint.name)
    {
        return;
    }
    let Ok(head) = serde_json::from_slice::<Head>(&event.event) else {
        tracing::warn!(endpoint = %endpoint.name, "skipping an undecodable webhook event");
        return;
    };
    if event.only.is_none() && !endpoint.wants(&head.kind, head.data.room.as_deref()) {
        return;
    }
    let name = endpoint.name.as_str();
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        match post(shared, endpoint, &head.id, &event.event).await {
            Ok(()) => {
                shared.metrics.delivered.with_label_values(&[name]).inc();
                return;
            }
            Err(why) => {
                shared.metrics.failed.with_label_values(&[name]).inc();
                tracing::debug!(endpoint = name, id = %head.id, attempt, %why, "webhook not taken");
            }
        }
        if started.elapsed() >= shared.config.give_up_after {
            break;
        }
        let wait = backoff(attempt).min(
            shared
                .config
                .give_up_after
                .saturating_sub(started.elapsed()),
        );
        tokio::time::sleep(wait).await;
        attempt = attempt.saturating_add(1);
    }
    tracing::warn!(endpoint = name, id = %head.id, "webhook given up: kept as a dead letter");
    shared.metrics.dead.with_label_values(&[name]).inc();
    // Kept until the queue answers: giving up must not lose the event.
    while let Err(error) = queue.bury(name, event.event.clone()).await {
        tracing::debug!(%error, "dead letter not kept yet");
        tokio::time::sleep(POLL).await;
    }
}

/// One attempt: POST the event, signed; 2xx is taken.
async fn post(shared: &Shared, endpoint: &Endpoint, id: &str, body: &[u8]) -> Result<(), String> {
    let timestamp = chorus_protocol::unix_micros() / 1_000_000;
    let signed = signature(&endpoint.secret, id, timestamp, body);
    let answer = shared
        .client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signed)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    match answer.status().is_success() {
        true => Ok(()),
        false => Err(format!("answered {}", answer.status())),
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(max, first·2^attempt)].
fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_FIRST
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(RETRY_MAX);
    let fraction = getrandom::u64().unwrap_or(u64::MAX / 2) as f64 / u64::MAX as f64;
    ceiling.mul_f64(fraction)
}

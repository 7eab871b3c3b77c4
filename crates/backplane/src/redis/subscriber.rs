//! The node's pub/sub link to Redis: subscriptions, the reader that hands
//! relayed messages to the node, signals, readiness and shutdown.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chorus_protocol::RoomName;
use fred::{
    clients::{Client, SubscriberClient},
    interfaces::{ClientLike, EventInterface},
    prelude::Value,
};
use prometheus::IntCounter;
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use super::{
    metrics::RedisMetrics, probe, relayed::each_relayed, reply::failed, sharding::Sharding,
};
use crate::{BackplaneError, ChannelNames, Delivery, Inbound, PubSub};

/// What precedes a signal on a room channel, where messages carry `epoch:seq:`.
const SIGNAL_PREFIX: &[u8] = b"0:0:";

/// How the link connects and proves itself.
pub(super) struct Link<'a> {
    /// Prefix of every channel and key (the probe's channel too).
    pub(super) prefix: &'a str,
    /// How long start-up waits for the first connection.
    pub(super) connect_timeout: Duration,
    /// How often the probe goes through pub/sub and back.
    pub(super) probe_interval: Duration,
    /// Bound on one command.
    pub(super) command_timeout: Duration,
    /// Ordinary channels on one Redis, or shard channels in a cluster.
    pub(super) sharding: Sharding,
}

/// Pub/sub on Redis.
pub(super) struct RedisPubSub {
    /// Connection that publishes signals (shared with the other parts).
    publisher: Client,
    /// Connection that holds the room subscriptions.
    subscriber: SubscriberClient,
    /// Room <-> channel naming.
    names: ChannelNames,
    /// The pub/sub round-trip probe behind readiness.
    probe: Arc<probe::Probe>,
    /// Ordinary channels on one Redis, or shard channels in a cluster.
    sharding: Sharding,
    /// Reader, resubscriber, watcher and probe tasks, aborted at shutdown.
    tasks: Vec<JoinHandle<()>>,
}

impl RedisPubSub {
    /// Starts the reader (into `inbound`) and the watchers, connects both
    /// clients (waiting at most the connect timeout), then starts the probe.
    pub(super) async fn start(
        (publisher, subscriber): (Client, SubscriberClient),
        names: ChannelNames,
        inbound: Arc<dyn Inbound>,
        link: Link<'_>,
        metrics: &RedisMetrics,
    ) -> Self {
        let probe = probe::Probe::new(link.prefix);
        // Every watcher subscribes to fred's events before the first connect, so none is missed.
        let mut tasks = vec![
            spawn_reader(
                &subscriber,
                names.clone(),
                inbound,
                probe.clone(),
                metrics.lagged.clone(),
            ),
            spawn_resubscriber(&subscriber, link.sharding),
            metrics.watch(&publisher, "publisher"),
            metrics.watch(&subscriber.to_client(), "subscriber"),
        ];
        for client in [&publisher, &subscriber.to_client()] {
            tasks.push(keep_connected(client.clone()));
        }
        wait_connected(
            [&publisher, &subscriber.to_client()],
            link.connect_timeout,
            link.prefix,
        )
        .await;
        if link.sharding == Sharding::Cluster {
            tasks.push(spawn_slot_follower(&publisher, &subscriber));
        }
        tasks.push(probe::spawn(
            probe.clone(),
            (publisher.clone(), subscriber.clone()),
            (link.probe_interval, link.command_timeout),
            metrics.probe.clone(),
            link.sharding,
        ));
        Self {
            publisher,
            subscriber,
            names,
            probe,
            sharding: link.sharding,
            tasks,
        }
    }
}

impl RedisPubSub {
    /// Waits until Redis has processed what the subscriber sent before on
    /// `channel`'s connection (`op`).
    ///
    /// fred completes SUBSCRIBE and UNSUBSCRIBE (and SUNSUBSCRIBE) once they
    /// are written (Redis's confirmation arrives out of band and is dropped),
    /// so Redis may not have processed them yet: a PUBLISH processed first
    /// would be lost to (or still reach) this node. Redis answers a
    /// connection's commands in order: the PING's answer proves what came
    /// before it was processed. (SSUBSCRIBE is confirmed by its answer.)
    async fn processed(&self, op: &'static str, channel: &str) -> Result<(), BackplaneError> {
        match self.sharding {
            Sharding::Single => self.subscriber.ping::<Value>(None).await.map(|_| ()),
            Sharding::Cluster => self.sharding.processed(&self.subscriber, channel).await,
        }
        .map_err(failed(op))
    }
}

#[async_trait]
impl PubSub for RedisPubSub {
    async fn subscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        let channel = self.names.room_channel(room);
        self.sharding
            .subscribe(&self.subscriber, vec![channel.clone()])
            .await
            .map_err(failed("subscribe"))?;
        match self.sharding {
            Sharding::Single => self.processed("subscribe", &channel).await,
            Sharding::Cluster => Ok(()),
        }
    }

    async fn unsubscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        let channel = self.names.room_channel(room);
        self.sharding
            .unsubscribe(&self.subscriber, channel.clone())
            .await
            .map_err(failed("unsubscribe"))?;
        self.processed("unsubscribe", &channel).await
    }

    async fn signal(&self, room: &RoomName, payload: Bytes) -> Result<(), BackplaneError> {
        let mut relayed = BytesMut::with_capacity(SIGNAL_PREFIX.len() + payload.len());
        relayed.extend_from_slice(SIGNAL_PREFIX);
        relayed.extend_from_slice(&payload);
        self.sharding
            .publish(
                &self.publisher,
                self.names.room_channel(room),
                relayed.freeze(),
            )
            .await
            .map_err(failed("signal"))
    }

    fn is_ready(&self) -> bool {
        self.publisher.is_connected() && self.subscriber.is_connected() && self.probe.is_healthy()
    }

    fn out_of_memory(&self) -> bool {
        self.probe.is_full()
    }

    async fn shutdown(&self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            let _ = self.subscriber.quit().await;
            let _ = self.publisher.quit().await;
        })
        .await;
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn spawn_reader(
    subscriber: &SubscriberClient,
    names: ChannelNames,
    inbound: Arc<dyn Inbound>,
    probe: Arc<probe::Probe>,
    lagged: IntCounter,
) -> JoinHandle<()> {
    let mut rx = subscriber.message_rx();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(message) => {
                    if probe.is_probe(&message.channel) {
                        probe.echo(&message.value);
                        continue;
                    }
                    let Some(room) = names
                        .room_of(&message.channel)
                        .and_then(|room| RoomName::parse_internal(room).ok())
                    else {
                        continue;
                    };
                    let payload = match message.value {
                        Value::Bytes(bytes) => bytes,
                        Value::String(text) => text.into_inner(),
                        _ => Bytes::new(),
                    };
                    let well_formed = each_relayed(payload, |epoch, seq, payload| {
                        // Epochs are server clocks in µs, never 0: 0:0 marks a signal.
                        if (epoch, seq) == (0, 0) {
                            inbound.signal(&room, payload);
                        } else {
                            let delivery = Delivery {
                                epoch,
                                seq,
                                payload,
                            };
                            inbound.deliver(&room, delivery);
                        }
                    });
                    if !well_formed {
                        tracing::warn!(
                            %room,
                            "ignoring a pub/sub payload without epoch and sequence"
                        );
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    lagged.inc_by(missed);
                    tracing::error!(missed, "pub/sub reader fell behind; messages lost");
                }
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// Re-subscribes every tracked channel after a reconnect.
///
/// fred's own `manage_subscriptions` also fires on the *first* connection (fred
/// reports every connection setup as a reconnect) and then sends SUBSCRIBE and an
/// argument-less PSUBSCRIBE that race with the node's first real SUBSCRIBE on the
/// same connection: a join could then be confirmed before Redis held the
/// subscription, and the first messages after it were lost. This skips the first
/// connection and sends only the tracked channels.
fn spawn_resubscriber(subscriber: &SubscriberClient, sharding: Sharding) -> JoinHandle<()> {
    let mut connections = subscriber.reconnect_rx();
    let subscriber = subscriber.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            match connections.recv().await {
                Ok(_) if std::mem::take(&mut first) => {}
                Ok(_) => resubscribe(&subscriber, sharding, "reconnect").await,
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// In a cluster, re-subscribes every tracked shard channel whenever the
/// publisher learns of a change in the cluster (a slot moved, a replica was
/// promoted): Redis drops the subscriptions of a slot that moves away from a
/// shard, telling the client only out of band. Each channel goes to the
/// shard that owns it now; one still in place is not disturbed. What was
/// relayed in between is repaired from history by the node's position checks.
fn spawn_slot_follower(publisher: &Client, subscriber: &SubscriberClient) -> JoinHandle<()> {
    let mut changes = publisher.cluster_change_rx();
    let subscriber = subscriber.clone();
    tokio::spawn(async move {
        // A lagged receiver missed changes: re-subscribing covers them too.
        while !matches!(changes.recv().await, Err(RecvError::Closed)) {
            resubscribe(&subscriber, Sharding::Cluster, "cluster change").await;
        }
    })
}

/// Subscribes every channel the subscriber tracks again, after `why`.
async fn resubscribe(subscriber: &SubscriberClient, sharding: Sharding, why: &'static str) {
    let channels = sharding.tracked(subscriber);
    if channels.is_empty() {
        return;
    }
    match sharding.subscribe(subscriber, channels.clone()).await {
        Ok(()) => tracing::info!(channels = channels.len(), why, "re-subscribed"),
        Err(error) => tracing::error!(%error, why, "re-subscribing failed"),
    }
}

/// Connects `client` and connects it again whenever fred gives up: fred
/// retries a lost connection itself, but not a first one that failed
/// outright, such as a Redis Cluster whose slots are not assigned yet (a
/// node started with its cluster). Ends when the client quits.
pub(super) fn keep_connected(client: Client) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        loop {
            match client.connect().await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "Redis connection given up; connecting again")
                }
                Err(error) => tracing::warn!(%error, "Redis connection task failed"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    })
}

/// Waits (bounded) for both clients' first connection, logging the outcome.
async fn wait_connected(clients: [&Client; 2], timeout: Duration, prefix: &str) {
    let waited = tokio::time::timeout(timeout, async {
        for client in clients {
            client.wait_for_connect().await?;
        }
        Ok::<_, fred::error::Error>(())
    })
    .await;
    match waited {
        Ok(Ok(())) => tracing::info!(prefix, "connected to Redis"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Redis not reachable yet; retrying in the background, node not ready")
        }
        Err(_) => {
            tracing::warn!("Redis not reachable yet; retrying in the background, node not ready")
        }
    }
}

//! The Redis backplane: a history Stream and a pub/sub channel per room, tied
//! together by a publish script (see [`log`]).
//!
//! Two connections per node: a publisher (fred pipelines concurrent scripts
//! on it) and a subscriber whose reader hands each message to [`Inbound`]
//! without awaiting anything, so a slow client can never stall it. Both
//! reconnect forever with backoff; fred re-subscribes every tracked channel
//! after a reconnect. Outages are logged and counted.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chorus_protocol::RoomName;
use fred::{
    clients::{Client, SubscriberClient},
    interfaces::{ClientLike, EventInterface, PubsubInterface},
    prelude::{Builder, Config, ReconnectPolicy, Value},
    types::config::{ConnectionConfig, PerformanceConfig},
};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use crate::{
    Backplane, BackplaneError, Change, Changed, ChannelNames, Delivery, HistorySettings, Inbound,
    Marked, Outgoing, Page, Position, PresenceEntry, Published, Read,
};

mod changes;
mod drafts;
mod log;
mod presence;
mod probe;
mod reads;
mod registry;
mod status;

/// How many messages the subscriber may buffer between fred's socket reader and ours.
/// fred preallocates this many slots in each of a client's event channels, so only
/// the subscriber gets a large buffer.
const SUBSCRIBER_BUFFER: usize = 8 * 1024;
/// Event buffer of the publisher, which reads no messages.
const PUBLISHER_BUFFER: usize = 64;
/// What precedes a signal on a room channel, where messages carry `epoch:seq:`.
const SIGNAL_PREFIX: &[u8] = b"0:0:";

/// What a node needs to join a cluster through Redis.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// PEM bundle of the CAs that sign the Redis server's certificate (for `rediss://`);
    /// without it the system's trusted roots are used.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Prefix of every channel and key, so several clusters can share one Redis.
    pub prefix: String,
    /// Bound on one command (publish, subscribe); past it the caller gets an error.
    pub command_timeout: Duration,
    /// How long start-up waits for the first connection before going on not-ready.
    pub connect_timeout: Duration,
    /// How often a probe goes through pub/sub and back to prove the node can deliver.
    pub probe_interval: Duration,
}

impl std::fmt::Debug for RedisSettings {
    // The URL may carry a password: only its scheme is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("tls", &self.is_tls())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisSettings {
    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }

    /// Checks the URL (and CA file) without connecting, so bad configuration fails at start-up.
    pub fn validate(&self) -> Result<(), BackplaneError> {
        if !(self.url.starts_with("redis://") || self.is_tls()) {
            return Err(BackplaneError::Config(
                "the URL must start with redis:// or rediss:// (cluster and sentinel URLs are not supported yet)".into(),
            ));
        }
        if self.tls_ca.is_some() && !self.is_tls() {
            return Err(BackplaneError::Config(
                "a TLS CA file needs a rediss:// URL".into(),
            ));
        }
        self.fred_config().map(|_| ())
    }

    /// The fred configuration: URL, credentials, and TLS trust when asked for.
    fn fred_config(&self) -> Result<Config, BackplaneError> {
        // fred's parse errors do not echo the URL, so they are safe to show.
        let mut config = Config::from_url(&self.url).map_err(config_error)?;
        if let Some(path) = &self.tls_ca {
            config.tls = Some(crate::tls::connector_trusting(path)?.into());
        }
        Ok(config)
    }
}

/// Counters of backplane health, registered with the node's metrics.
#[derive(Clone)]
struct RedisMetrics {
    /// Connection errors by connection role.
    errors: IntCounterVec,
    /// Successful reconnects by connection role.
    reconnects: IntCounterVec,
    /// Messages fred dropped because our reader fell behind.
    lagged: IntCounter,
    /// The readiness probe's round trips and failures.
    probe: probe::ProbeMetrics,
}

impl RedisMetrics {
    fn register(registry: &Registry) -> Result<Self, BackplaneError> {
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
        let probe = probe::ProbeMetrics {
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
        for role in ["publisher", "subscriber"] {
            errors.with_label_values(&[role]);
            reconnects.with_label_values(&[role]);
        }
        for metric in [
            Box::new(errors.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconnects.clone()),
            Box::new(lagged.clone()),
            Box::new(probe.round_trip.clone()),
            Box::new(probe.failures.clone()),
        ] {
            registry.register(metric).map_err(config_error)?;
        }
        Ok(Self {
            errors,
            reconnects,
            lagged,
            probe,
        })
    }
}

fn config_error(e: impl std::fmt::Display) -> BackplaneError {
    BackplaneError::Config(e.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> BackplaneError {
    BackplaneError::Unavailable(e.to_string())
}

/// A node's connection to the cluster through Redis pub/sub.
pub struct RedisBackplane {
    /// Connection that PUBLISHes (pipelined).
    publisher: Client,
    /// Connection that holds the room subscriptions.
    subscriber: SubscriberClient,
    /// Room <-> channel naming.
    names: ChannelNames,
    /// The room history scripts.
    log: log::RoomLog,
    /// Read markers.
    reads: reads::ReadMarkers,
    /// Users' drafts.
    drafts: drafts::Drafts,
    /// Edits, deletes and reactions.
    changes: changes::Changes,
    /// Users' statuses.
    statuses: status::Statuses,
    /// Who is in which room.
    presence: presence::RoomPresence,
    /// The cluster's node registry.
    registry: registry::Registry,
    /// The pub/sub round-trip probe behind readiness.
    probe: Arc<probe::Probe>,
    /// Reader, resubscriber and event-watcher tasks, aborted at shutdown.
    tasks: Vec<JoinHandle<()>>,
}

impl RedisBackplane {
    /// Connects both clients and starts reading; messages go to `inbound`.
    ///
    /// If Redis is not reachable within `connect_timeout`, this still returns:
    /// the clients keep reconnecting and [`Backplane::is_ready`] stays false until they succeed.
    pub async fn connect(
        settings: &RedisSettings,
        history: HistorySettings,
        inbound: Arc<dyn Inbound>,
        registry: &Registry,
    ) -> Result<Self, BackplaneError> {
        let config = settings.fred_config()?;
        let metrics = RedisMetrics::register(registry)?;
        let mut builder = Builder::from_config(config);
        builder
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .with_performance_config(|perf: &mut PerformanceConfig| {
                perf.default_command_timeout = settings.command_timeout;
                perf.broadcast_channel_capacity = PUBLISHER_BUFFER;
            })
            .with_connection_config(|conn: &mut ConnectionConfig| {
                conn.connection_timeout = settings.connect_timeout;
                conn.internal_command_timeout = settings.command_timeout;
                conn.max_command_attempts = 2;
            });
        let publisher = builder.build().map_err(config_error)?;
        builder.with_performance_config(|perf| perf.broadcast_channel_capacity = SUBSCRIBER_BUFFER);
        let subscriber = builder.build_subscriber_client().map_err(config_error)?;
        let names = ChannelNames::new(&settings.prefix);
        let probe = probe::Probe::new(&settings.prefix);

        // Every watcher subscribes to fred's events before the first connect, so none is missed.
        let mut tasks = vec![
            spawn_reader(
                &subscriber,
                names.clone(),
                inbound,
                probe.clone(),
                metrics.lagged.clone(),
            ),
            spawn_resubscriber(&subscriber),
            watch_events(&publisher, "publisher", &metrics),
            watch_events(&subscriber.to_client(), "subscriber", &metrics),
        ];
        for client in [&publisher, &subscriber.to_client()] {
            let handle = client.connect();
            tasks.push(tokio::spawn(async move {
                let _ = handle.await;
            }));
        }
        let waited = tokio::time::timeout(settings.connect_timeout, async {
            publisher.wait_for_connect().await?;
            subscriber.wait_for_connect().await
        })
        .await;
        match waited {
            Ok(Ok(())) => tracing::info!(prefix = %settings.prefix, "connected to Redis"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis not reachable yet; retrying in the background, node not ready")
            }
            Err(_) => tracing::warn!(
                "Redis not reachable yet; retrying in the background, node not ready"
            ),
        }
        tasks.push(probe::spawn(
            probe.clone(),
            publisher.clone(),
            subscriber.clone(),
            (settings.probe_interval, settings.command_timeout),
            metrics.probe.clone(),
        ));
        Ok(Self {
            publisher,
            subscriber,
            registry: registry::Registry::new(&settings.prefix),
            probe,
            log: log::RoomLog::new(names.clone(), history),
            reads: reads::ReadMarkers::new(names.clone(), history.state_ttl),
            drafts: drafts::Drafts::new(names.clone(), history.state_ttl),
            changes: changes::Changes::new(names.clone(), history),
            statuses: status::Statuses::new(names.clone(), history.state_ttl),
            presence: presence::RoomPresence::new(names.clone()),
            names,
            tasks,
        })
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
                    let Some(room) = names.room_of(&message.channel) else {
                        continue;
                    };
                    let relayed = match message.value {
                        Value::Bytes(bytes) => log::parse_relayed(bytes),
                        Value::String(text) => log::parse_relayed(text.into_inner()),
                        _ => None,
                    };
                    let Some((epoch, seq, payload)) = relayed else {
                        tracing::warn!(
                            room,
                            "ignoring a pub/sub payload without epoch and sequence"
                        );
                        continue;
                    };
                    // Epochs are server clocks in µs, never 0: 0:0 marks a signal.
                    if (epoch, seq) == (0, 0) {
                        inbound.signal(room, payload);
                        continue;
                    }
                    inbound.deliver(
                        room,
                        Delivery {
                            epoch,
                            seq,
                            payload,
                        },
                    );
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
fn spawn_resubscriber(subscriber: &SubscriberClient) -> JoinHandle<()> {
    let mut connections = subscriber.reconnect_rx();
    let subscriber = subscriber.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            match connections.recv().await {
                Ok(_) if std::mem::take(&mut first) => {}
                Ok(_) => {
                    let channels = tracked_channels(&subscriber);
                    if channels.is_empty() {
                        continue;
                    }
                    match subscriber.subscribe(channels.clone()).await {
                        Ok(()) => tracing::info!(
                            channels = channels.len(),
                            "re-subscribed after reconnect"
                        ),
                        Err(error) => {
                            tracing::error!(%error, "re-subscribing after reconnect failed")
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// Every channel the subscriber should hold (fred tracks what was subscribed).
fn tracked_channels(subscriber: &SubscriberClient) -> Vec<String> {
    subscriber
        .tracked_channels()
        .iter()
        .map(|c| c.to_string())
        .collect()
}

fn watch_events(client: &Client, role: &'static str, metrics: &RedisMetrics) -> JoinHandle<()> {
    let mut errors = client.error_rx();
    let mut reconnects = client.reconnect_rx();
    let metrics = metrics.clone();
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

#[async_trait]
impl Backplane for RedisBackplane {
    async fn publish(
        &self,
        room: &RoomName,
        message: Outgoing,
    ) -> Result<Published, BackplaneError> {
        self.log.publish(&self.publisher, room, message).await
    }

    async fn signal(&self, room: &RoomName, payload: Bytes) -> Result<(), BackplaneError> {
        let mut relayed = BytesMut::with_capacity(SIGNAL_PREFIX.len() + payload.len());
        relayed.extend_from_slice(SIGNAL_PREFIX);
        relayed.extend_from_slice(&payload);
        self.publisher
            .publish::<Value, _, _>(self.names.room_channel(room), relayed.freeze())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn read(&self, room: &RoomName, read: Read) -> Result<Page, BackplaneError> {
        self.log.read(&self.publisher, room, read, None).await
    }

    async fn read_as(
        &self,
        room: &RoomName,
        read: Read,
        user: &str,
    ) -> Result<Page, BackplaneError> {
        self.log.read(&self.publisher, room, read, Some(user)).await
    }

    async fn change(&self, room: &RoomName, change: Change) -> Result<Changed, BackplaneError> {
        self.changes.apply(&self.publisher, room, change).await
    }

    async fn set_status(&self, user: &str, status: &str) -> Result<(), BackplaneError> {
        self.statuses.set(&self.publisher, user, status).await
    }

    async fn statuses(&self, users: &[String]) -> Result<Vec<Option<String>>, BackplaneError> {
        self.statuses.get(&self.publisher, users).await
    }

    async fn mark_read(
        &self,
        room: &RoomName,
        user: &str,
        mark: Position,
        signal: Bytes,
    ) -> Result<Marked, BackplaneError> {
        self.reads
            .mark(&self.publisher, room, user, mark, signal)
            .await
    }

    async fn presence_up(
        &self,
        room: &RoomName,
        node: &str,
        entries: Vec<PresenceEntry>,
        ttl: Duration,
    ) -> Result<(), BackplaneError> {
        let args = presence::RoomPresence::up_args(entries);
        self.presence
            .call(&self.publisher, room, "up", node, ttl, args)
            .await
            .map(|_| ())
    }

    async fn presence_down(
        &self,
        room: &RoomName,
        node: &str,
        users: Vec<String>,
    ) -> Result<(), BackplaneError> {
        let args = users.into_iter().map(Value::from).collect();
        self.presence
            .call(&self.publisher, room, "down", node, Duration::ZERO, args)
            .await
            .map(|_| ())
    }

    async fn presence_list(
        &self,
        room: &RoomName,
        max: usize,
    ) -> Result<(u64, Vec<Bytes>), BackplaneError> {
        let answer = self
            .presence
            .call(
                &self.publisher,
                room,
                "list",
                "",
                Duration::ZERO,
                vec![max.to_string().into()],
            )
            .await?;
        let mut answer = answer.into_iter();
        let total = answer
            .next()
            .and_then(|n| std::str::from_utf8(&n).ok()?.parse().ok())
            .ok_or_else(|| BackplaneError::Unavailable("unexpected presence reply".into()))?;
        Ok((total, answer.collect()))
    }

    async fn save_draft(
        &self,
        user: &str,
        room: &RoomName,
        text: &str,
        max: usize,
    ) -> Result<bool, BackplaneError> {
        self.drafts
            .save(&self.publisher, user, room, text, max)
            .await
    }

    async fn drafts(&self, user: &str) -> Result<Vec<(String, String)>, BackplaneError> {
        self.drafts.all(&self.publisher, user).await
    }

    async fn read_marker(
        &self,
        room: &RoomName,
        user: &str,
    ) -> Result<Option<Position>, BackplaneError> {
        self.reads.marker(&self.publisher, room, user).await
    }

    async fn read_markers(
        &self,
        room: &RoomName,
    ) -> Result<Vec<(String, Position)>, BackplaneError> {
        self.reads.markers(&self.publisher, room).await
    }

    async fn positions(&self, rooms: &[RoomName]) -> Result<Vec<Position>, BackplaneError> {
        self.log.positions(&self.publisher, rooms).await
    }

    async fn subscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        self.subscriber
            .subscribe(self.names.room_channel(room))
            .await
            .map_err(unavailable)?;
        // fred completes SUBSCRIBE once it is written (Redis's confirmation arrives out
        // of band and is dropped), so Redis may not hold the subscription yet, and a
        // PUBLISH processed first would be lost to this node. Redis answers a connection's
        // commands in order: the PING's answer proves the SUBSCRIBE was processed.
        self.subscriber
            .ping::<Value>(None)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn unsubscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        self.subscriber
            .unsubscribe(self.names.room_channel(room))
            .await
            .map_err(unavailable)
    }

    fn is_ready(&self) -> bool {
        self.publisher.is_connected() && self.subscriber.is_connected() && self.probe.is_healthy()
    }

    async fn announce(
        &self,
        node_id: &str,
        status: String,
        ttl: Duration,
    ) -> Result<(), BackplaneError> {
        self.registry
            .announce(&self.publisher, node_id, status, ttl)
            .await
    }

    async fn nodes(&self) -> Result<Vec<String>, BackplaneError> {
        self.registry.nodes(&self.publisher).await
    }

    async fn withdraw(&self, node_id: &str) -> Result<(), BackplaneError> {
        self.registry.withdraw(&self.publisher, node_id).await
    }

    async fn shutdown(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.subscriber.quit().await;
            let _ = self.publisher.quit().await;
        })
        .await;
        for task in &self.tasks {
            task.abort();
        }
    }
}

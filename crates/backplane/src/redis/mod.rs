//! The Redis backplane: a history Stream and a pub/sub channel per room, tied
//! together by Lua scripts.
//!
//! Two connections per node: a publisher, which every part pipelines its
//! commands and scripts on, and a subscriber whose reader hands each message
//! to [`Inbound`] without awaiting anything, so a slow client can never stall
//! it. Both reconnect forever with backoff; the subscriber re-subscribes every
//! tracked channel after a reconnect. Outages are logged and counted.
//!
//! | part | file | keys |
//! |---|---|---|
//! | [`crate::RoomLog`] | `log.rs` (`batch.rs`, `read.rs`, `changes.rs`) | `room:{r}:state`, `:log`, `:overlays`, `:changes`, `:dedup:*` |
//! | [`crate::ReadMarkers`] | `markers.rs` | `room:{r}:reads` |
//! | [`crate::PubSub`] | `subscriber.rs` (`relayed.rs`, `probe.rs`) | channels `room:{r}`, the probe's |
//! | [`crate::UserState`] | `users.rs` | `user:{u}:drafts`, `:status` |
//! | [`crate::PresenceStore`] | `presence.rs` | `room:{r}:presence`, `:online`, `:who` |
//! | [`crate::NodeRegistry`] | `registry.rs` | `{nodes}`, `{nodes}:expiry` |

use std::{sync::Arc, time::Duration};

use fred::{
    prelude::{Builder, Config, ReconnectPolicy},
    types::config::{ConnectionConfig, PerformanceConfig},
};
use prometheus::Registry;

use crate::{Backplane, BackplaneError, ChannelNames, HistorySettings, Inbound};
use reply::config_error;

mod batch;
mod changes;
mod log;
mod markers;
mod metrics;
mod policy;
mod presence;
mod probe;
mod read;
mod registry;
mod relayed;
mod reply;
mod sharding;
mod subscriber;
mod topology;
mod users;
mod webhooks;

pub use topology::RedisMode;

/// How many messages the subscriber may buffer between fred's socket reader and ours.
/// fred preallocates this many slots in each of a client's event channels, so only
/// the subscriber gets a large buffer.
const SUBSCRIBER_BUFFER: usize = 8 * 1024;
/// Event buffer of the publisher, which reads no messages.
const PUBLISHER_BUFFER: usize = 64;

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
    /// One server, or the primary a Sentinel group names.
    pub mode: RedisMode,
    /// Replicas that must hold a message before its send is acknowledged
    /// (`WAIT` after the store); 0 acknowledges once the primary stored it.
    pub wait_replicas: u32,
}

impl std::fmt::Debug for RedisSettings {
    // The URL may carry a password: only its scheme is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("tls", &self.is_tls())
            .field("prefix", &self.prefix)
            .field("mode", &self.mode)
            .field("wait_replicas", &self.wait_replicas)
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
                "the URL must start with redis:// or rediss://".into(),
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
        let mut config = topology::fred_config(&self.url, &self.mode)?;
        if let Some(path) = &self.tls_ca {
            config.tls = Some(crate::tls::connector_trusting(path)?.into());
        }
        Ok(config)
    }

    /// Connects both clients and starts reading; relayed messages go to
    /// `inbound`, metrics into `registry`.
    ///
    /// If Redis is not reachable within `connect_timeout`, this still returns:
    /// the clients keep reconnecting and [`crate::PubSub::is_ready`] stays
    /// false until they succeed.
    pub async fn connect(
        &self,
        history: HistorySettings,
        inbound: Arc<dyn Inbound>,
        registry: &Registry,
    ) -> Result<Backplane, BackplaneError> {
        let metrics = metrics::RedisMetrics::register(registry)?;
        let mut builder = Builder::from_config(self.fred_config()?);
        builder
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .with_performance_config(|perf: &mut PerformanceConfig| {
                perf.default_command_timeout = self.command_timeout;
                perf.broadcast_channel_capacity = PUBLISHER_BUFFER;
            })
            .with_connection_config(|conn: &mut ConnectionConfig| {
                conn.connection_timeout = self.connect_timeout;
                conn.internal_command_timeout = self.command_timeout;
                conn.max_command_attempts = 2;
            });
        let publisher = builder.build().map_err(config_error)?;
        // `WAIT` holds up the connection it is sent on until the replicas
        // answer: publishes that wait get a connection of their own.
        let writer = if self.wait_replicas > 0 {
            let writer = builder.build().map_err(config_error)?;
            drop(metrics.watch(&writer, "writer"));
            drop(subscriber::keep_connected(writer.clone()));
            writer
        } else {
            publisher.clone()
        };
        builder.with_performance_config(|perf| perf.broadcast_channel_capacity = SUBSCRIBER_BUFFER);
        let subscriber = builder.build_subscriber_client().map_err(config_error)?;
        let names = ChannelNames::new(&self.prefix);
        let sharding = sharding::Sharding::of(&self.mode);
        let link = subscriber::Link {
            sharding,
            prefix: &self.prefix,
            connect_timeout: self.connect_timeout,
            probe_interval: self.probe_interval,
            command_timeout: self.command_timeout,
        };
        let pubsub = subscriber::RedisPubSub::start(
            (publisher.clone(), subscriber),
            names.clone(),
            inbound,
            link,
            &metrics,
        )
        .await;
        let (client, gauge) = (publisher.clone(), metrics.unsafe_policy.clone());
        tokio::spawn(async move { policy::check(&client, &gauge).await });
        let state_ttl = history.state_ttl;
        Ok(Backplane {
            log: Arc::new(log::RedisLog::new(
                (publisher.clone(), writer),
                names.clone(),
                history,
                (metrics.publish_batch.clone(), self.command_timeout),
                (self.wait_replicas, sharding),
            )),
            markers: Arc::new(markers::RedisMarkers::new(
                publisher.clone(),
                names.clone(),
                (state_ttl, sharding),
            )),
            users: Arc::new(users::RedisUsers::new(
                publisher.clone(),
                names.clone(),
                (state_ttl, sharding),
            )),
            presence: Arc::new(presence::RedisPresence::new(
                publisher.clone(),
                names,
                sharding,
            )),
            webhooks: Arc::new(webhooks::RedisHooks::new(
                publisher.clone(),
                &self.prefix,
                "webhooks",
            )),
            archive_notes: Arc::new(webhooks::RedisHooks::new(
                publisher.clone(),
                &self.prefix,
                "archive",
            )),
            registry: Arc::new(registry::RedisRegistry::new(publisher, &self.prefix)),
            pubsub: Arc::new(pubsub),
        })
    }
}

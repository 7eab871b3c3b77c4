//! Typed configuration, built from flags and environment variables in one
//! place: the flags are in `cli.rs`, the building from them in `from_cli.rs`,
//! and [`Config::validate`] checks how settings relate, whoever built them
//! (the binary, or a test).

use std::time::Duration;

use chorus_backplane::{HistorySettings, MemoryBus, RedisSettings};

mod cli;
mod files;
mod from_cli;
mod ops;
pub mod token_cmd;
mod webhooks;

pub use chorus_archive::ArchiveSettings;
pub use cli::{ApiKeyArgs, Cli, CliCommand, HealthcheckArgs, JwtArgs, MigrateArgs, TokenArgs};
pub use files::{DEFAULT_FILES_DIR, DEFAULT_MAX_UPLOAD_BYTES, FilesConfig, S3Settings};
pub use ops::{Operations, OpsArgs};
pub use webhooks::{EVENT_TYPES, Endpoint, MAX_ENDPOINTS, PublishHookConfig, WebhooksConfig};

use crate::auth::{ApiKeys, AuthConfig, ROOM_NAME_PUNCTUATION, RateLimits, RoomRules};

/// Where the node's backplane lives.
#[derive(Clone)]
pub enum BackplaneConfig {
    /// In-process: a single node, or several nodes in one process sharing the bus.
    InProcess(MemoryBus),
    /// Redis pub/sub: a cluster.
    Redis(RedisSettings),
}

impl std::fmt::Debug for BackplaneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InProcess(_) => f.write_str("InProcess"),
            // The settings' own Debug shows no URL or password.
            Self::Redis(settings) => f.debug_tuple("Redis").field(settings).finish(),
        }
    }
}

/// Validated configuration of one node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Id announced to clients and peers.
    pub node_id: String,
    /// How this node reaches the others.
    pub backplane: BackplaneConfig,
    /// Interval between server pings.
    pub ping_interval: Duration,
    /// Time allowed for the pong.
    pub pong_timeout: Duration,
    /// Largest WebSocket frame accepted.
    pub max_frame_bytes: usize,
    /// Largest message body accepted.
    pub max_body_bytes: usize,
    /// Most rooms per connection.
    pub max_rooms: usize,
    /// Most connections on this node.
    pub max_connections: usize,
    /// Per-connection outbound queue bound.
    pub outbox_bytes: usize,
    /// Per-write bound for one client.
    pub write_timeout: Duration,
    /// Subscription linger after the last local member leaves.
    pub unsubscribe_delay: Duration,
    /// Bound on closing connections at shutdown.
    pub shutdown_timeout: Duration,
    /// Token checks, room grants, origins.
    pub auth: AuthConfig,
    /// Most connections per user on this node.
    pub max_connections_per_user: usize,
    /// Token buckets for sends and joins.
    pub rate_limits: RateLimits,
    /// Room-name length and characters.
    pub room_rules: RoomRules,
    /// History bounds, join and resume sizes, gap checks.
    pub history: HistoryConfig,
    /// Draining and cluster heartbeats.
    pub ops: Operations,
    /// The server API's keys (empty: the API refuses every request).
    pub api_keys: ApiKeys,
    /// Webhook endpoints (`None`: no events are queued).
    pub webhooks: Option<WebhooksConfig>,
    /// Asked before a user's message is stored (`None`: nobody is asked).
    pub publish_hook: Option<PublishHookConfig>,
    /// Where uploaded files are kept, and the upload limits.
    pub files: FilesConfig,
    /// The archive's database (`None`: no archive).
    pub archive: Option<ArchiveSettings>,
}

/// How much history rooms keep and clients get.
#[derive(Debug, Clone, Copy)]
pub struct HistoryConfig {
    /// What the backplane keeps (length, age, dedup window, state TTL).
    pub bounds: HistorySettings,
    /// Messages sent on a fresh join by default.
    pub on_join: usize,
    /// Most messages per history page or join.
    pub page_max: usize,
    /// Most missed messages one resume delivers.
    pub resume_max: usize,
    /// Interval of the position check that finds a lost last message.
    pub position_check: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            bounds: HistorySettings::default(),
            on_join: 50,
            page_max: 200,
            resume_max: 1000,
            position_check: Duration::from_secs(2),
        }
    }
}

/// A configuration that cannot work; the binary prints it and exits with status 2.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Default for Config {
    /// A single in-process node with production defaults.
    fn default() -> Self {
        Self {
            node_id: random_node_id(),
            backplane: BackplaneConfig::InProcess(MemoryBus::new()),
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 8 * 1024,
            max_rooms: 100,
            max_connections: 100_000,
            outbox_bytes: 256 * 1024,
            write_timeout: Duration::from_secs(10),
            unsubscribe_delay: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(10),
            auth: AuthConfig::development(),
            max_connections_per_user: 16,
            rate_limits: RateLimits::default(),
            room_rules: RoomRules::default(),
            history: HistoryConfig::default(),
            ops: Operations::default(),
            api_keys: ApiKeys::default(),
            webhooks: None,
            files: FilesConfig::default(),
            publish_hook: None,
            archive: None,
        }
    }
}

impl Config {
    /// Checks the relations between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            valid_id(&self.node_id),
            "--node-id must be 1-64 letters, digits, - _ .",
        )?;
        check(
            !self.ping_interval.is_zero(),
            "--ping-interval must be positive",
        )?;
        check(
            !self.pong_timeout.is_zero(),
            "--pong-timeout must be positive",
        )?;
        check(
            !self.write_timeout.is_zero(),
            "--write-timeout must be positive",
        )?;
        check(
            self.max_frame_bytes >= 1024,
            "--max-frame-bytes must be at least 1024",
        )?;
        check(
            self.max_body_bytes >= 1,
            "--max-body-bytes must be at least 1",
        )?;
        check(
            self.max_body_bytes + 1024 <= self.max_frame_bytes,
            "--max-body-bytes must leave at least 1 KiB of --max-frame-bytes for the command around it",
        )?;
        check(self.max_rooms >= 1, "--max-rooms must be at least 1")?;
        check(
            self.files.max_upload_bytes >= 1,
            "--max-upload-bytes must be at least 1",
        )?;
        check(
            self.files.max_concurrent_uploads >= 1,
            "--max-concurrent-uploads must be at least 1",
        )?;
        check(
            self.files.unattached_ttl >= Duration::from_secs(1),
            "--unattached-file-ttl must be at least 1s",
        )?;
        check(
            self.max_connections >= 1,
            "--max-connections must be at least 1",
        )?;
        check(
            self.outbox_bytes >= 2 * self.max_frame_bytes,
            "--outbox-bytes must hold at least two frames of --max-frame-bytes",
        )?;
        check(
            !self.auth.auth_timeout.is_zero(),
            "--auth-timeout must be positive",
        )?;
        check(
            self.max_connections_per_user >= 1,
            "--max-connections-per-user must be at least 1",
        )?;
        check(
            self.rate_limits.flood_strikes >= 1,
            "--flood-strikes must be at least 1",
        )?;
        check(
            (1..=chorus_protocol::MAX_ROOM_NAME_BYTES).contains(&self.room_rules.max_bytes),
            "--max-room-name-bytes must be 1-128",
        )?;
        check(
            self.room_rules
                .punctuation
                .chars()
                .all(|c| ROOM_NAME_PUNCTUATION.contains(c)),
            "--room-name-punctuation must be a subset of -_.:@+=",
        )?;
        let history = &self.history;
        check(
            history.bounds.max_len >= 1,
            "--history-max-len must be at least 1",
        )?;
        check(
            history.bounds.max_age >= Duration::from_secs(1),
            "--history-max-age must be at least 1s",
        )?;
        check(
            history.bounds.state_ttl >= history.bounds.max_age,
            "--room-state-ttl must be at least --history-max-age",
        )?;
        check(
            !history.bounds.dedup_window.is_zero(),
            "--dedup-window must be positive",
        )?;
        check(
            (1..=10_000).contains(&history.page_max),
            "--history-page-max must be 1-10000",
        )?;
        check(
            history.on_join <= history.page_max,
            "--history-on-join must be at most --history-page-max",
        )?;
        check(
            (1..=100_000).contains(&history.resume_max),
            "--resume-max must be 1-100000",
        )?;
        check(
            !history.position_check.is_zero(),
            "--position-check-interval must be positive",
        )?;
        if let BackplaneConfig::Redis(settings) = &self.backplane {
            check(
                !settings.probe_interval.is_zero(),
                "--readiness-probe-interval must be positive",
            )?;
        }
        self.ops.validate()
    }
}

fn check(ok: bool, message: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError(message.to_owned()))
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn random_node_id() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("node-{}", &id[id.len() - 8..])
}

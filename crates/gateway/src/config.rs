//! Typed configuration, built from flags and environment variables in one place.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chorus_backplane::{HistorySettings, MemoryBus, RedisSettings};
use clap::{Parser, Subcommand};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

mod ops;

pub use ops::{Operations, OpsArgs};

use crate::{
    auth::{AuthConfig, Minter, Origins, Patterns, RoomPolicy, Verifier, parse_algorithm},
    limits::{ROOM_NAME_PUNCTUATION, Rate, RateLimits, RoomRules},
    token_cmd::TokenArgs,
};

/// Command line of the `chorus` binary. Every flag has an environment variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "chorus",
    version,
    about = "Chorus: a horizontally scaled real-time chat server"
)]
pub struct Cli {
    /// A subcommand instead of serving.
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    /// Address to listen on for WebSocket and HTTP.
    #[arg(long, env = "CHORUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// This node's id (letters, digits, - _ .); defaults to a random one.
    #[arg(long, env = "CHORUS_NODE_ID")]
    pub node_id: Option<String>,
    /// Redis URL (redis://user:password@host:port, or rediss:// for TLS); joins a cluster
    /// through it. Without it the node runs alone with an in-process backplane.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// PEM file of the CAs that sign the Redis server certificate, for a rediss:// URL
    /// (default: the system's trusted roots).
    #[arg(long, env = "CHORUS_REDIS_TLS_CA")]
    pub redis_tls_ca: Option<PathBuf>,
    /// Prefix of every Redis channel and key, so several clusters can share one Redis.
    #[arg(long, env = "CHORUS_REDIS_PREFIX", default_value = "chorus")]
    pub redis_prefix: String,
    /// Bound on one Redis command (publish, subscribe).
    #[arg(long, env = "CHORUS_REDIS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub redis_timeout: Duration,
    /// Interval between server pings.
    #[arg(long, env = "CHORUS_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[arg(long, env = "CHORUS_PONG_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub pong_timeout: Duration,
    /// Largest WebSocket frame accepted; a larger one closes the connection with 1009.
    #[arg(long, env = "CHORUS_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Largest message body accepted; a larger one is refused with `body_too_large`.
    #[arg(long, env = "CHORUS_MAX_BODY_BYTES", default_value_t = 8 * 1024)]
    pub max_body_bytes: usize,
    /// Most rooms one connection may be in.
    #[arg(long, env = "CHORUS_MAX_ROOMS", default_value_t = 100)]
    pub max_rooms: usize,
    /// Most connections this node holds; more are refused with HTTP 503.
    #[arg(long, env = "CHORUS_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,
    /// Bytes queued for one client before it counts as too slow and is disconnected.
    #[arg(long, env = "CHORUS_OUTBOX_BYTES", default_value_t = 256 * 1024)]
    pub outbox_bytes: usize,
    /// How long a write to one client may take before it counts as too slow.
    #[arg(long, env = "CHORUS_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,
    /// How long a room's subscription outlives its last local member (absorbs join/leave churn).
    #[arg(long, env = "CHORUS_UNSUBSCRIBE_DELAY", default_value = "2s", value_parser = humantime::parse_duration)]
    pub unsubscribe_delay: Duration,
    /// Bound on closing connections at shutdown.
    #[arg(long, env = "CHORUS_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Most messages of history kept per room (trimmed approximately in Redis).
    #[arg(long, env = "CHORUS_HISTORY_MAX_LEN", default_value_t = 10_000)]
    pub history_max_len: u64,
    /// Messages older than this leave a room's history.
    #[arg(long, env = "CHORUS_HISTORY_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub history_max_age: Duration,
    /// How long a `client_msg_id` is remembered, so a retried send is not stored twice.
    #[arg(long, env = "CHORUS_DEDUP_WINDOW", default_value = "10m", value_parser = humantime::parse_duration)]
    pub dedup_window: Duration,
    /// How long a room's epoch and sequence counter outlive its last message.
    #[arg(long, env = "CHORUS_ROOM_STATE_TTL", default_value = "30d", value_parser = humantime::parse_duration)]
    pub room_state_ttl: Duration,
    /// Messages of history sent on a fresh join when the client does not say.
    #[arg(long, env = "CHORUS_HISTORY_ON_JOIN", default_value_t = 50)]
    pub history_on_join: usize,
    /// Most messages in one history page (and on a fresh join).
    #[arg(long, env = "CHORUS_HISTORY_PAGE_MAX", default_value_t = 200)]
    pub history_page_max: usize,
    /// Most missed messages a resume delivers; a longer gap answers `recovered: false`.
    #[arg(long, env = "CHORUS_RESUME_MAX", default_value_t = 1000)]
    pub resume_max: usize,
    /// How often each room's position is compared with the backplane's, to find a lost last message.
    #[arg(long, env = "CHORUS_POSITION_CHECK_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub position_check_interval: Duration,
    /// Log format: `text` for people, `json` (one object per line) for log pipelines.
    #[arg(long, env = "CHORUS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Admin port, draining, heartbeats, readiness probe.
    #[command(flatten)]
    pub ops: OpsArgs,

    /// Token secret, algorithm, issuer and audience (shared with `chorus token`).
    /// Without a secret or --jwt-public-key, a single node makes up a random secret
    /// and turns on the dev login.
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// PEM file with the public key that verifies RS256 or ES256 tokens.
    #[arg(long, env = "CHORUS_JWT_PUBLIC_KEY", conflicts_with = "jwt_secret")]
    pub jwt_public_key: Option<PathBuf>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[arg(long, env = "CHORUS_JWT_LEEWAY", default_value = "10s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,
    /// `POST /api/login` hands out guest tokens: auto = on for a single node without
    /// a configured key, off otherwise. Never use on in production.
    #[arg(long, env = "CHORUS_DEV_LOGIN", default_value = "auto", value_parser = ["auto", "on", "off"])]
    pub dev_login: String,
    /// Rooms every authenticated user may join and post to (comma-separated patterns, `*` wildcard).
    #[arg(long, env = "CHORUS_PUBLIC_ROOMS", value_delimiter = ',')]
    pub public_rooms: Vec<String>,
    /// Rooms every authenticated user may join but only `post`-granted users post to.
    #[arg(long, env = "CHORUS_READ_ONLY_ROOMS", value_delimiter = ',')]
    pub read_only_rooms: Vec<String>,
    /// Web origins allowed to open a WebSocket (comma-separated, or `*`); default same-origin.
    #[arg(long, env = "CHORUS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Time a connection may stay unauthenticated before it is closed (4004).
    #[arg(long, env = "CHORUS_AUTH_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub auth_timeout: Duration,
    /// Most connections one user may hold to this node.
    #[arg(long, env = "CHORUS_MAX_CONNECTIONS_PER_USER", default_value_t = 16)]
    pub max_connections_per_user: usize,
    /// Sends per connection, as RATE[:BURST] (e.g. 10/s:30).
    #[arg(long, env = "CHORUS_SEND_RATE", default_value = "10/s:30")]
    pub send_rate: Rate,
    /// Sends per user across their connections on this node.
    #[arg(long, env = "CHORUS_USER_SEND_RATE", default_value = "20/s:60")]
    pub user_send_rate: Rate,
    /// Joins and leaves per connection.
    #[arg(long, env = "CHORUS_JOIN_RATE", default_value = "10/s:100")]
    pub join_rate: Rate,
    /// Joins and leaves per user across their connections on this node.
    #[arg(long, env = "CHORUS_USER_JOIN_RATE", default_value = "20/s:200")]
    pub user_join_rate: Rate,
    /// Refused commands (rate-limited or invalid) a connection may pile up, refilled
    /// one per second, before it is closed as a flood (4006).
    #[arg(long, env = "CHORUS_FLOOD_STRIKES", default_value_t = 20)]
    pub flood_strikes: u32,
    /// Longest room name, in bytes (at most 128).
    #[arg(long, env = "CHORUS_MAX_ROOM_NAME_BYTES", default_value_t = 128)]
    pub max_room_name_bytes: usize,
    /// Punctuation allowed in room names besides letters and digits (a subset of -_.:@+=).
    #[arg(long, env = "CHORUS_ROOM_NAME_PUNCTUATION", default_value = ROOM_NAME_PUNCTUATION)]
    pub room_name_punctuation: String,
}

/// Token settings the server and `chorus token` share, read from the same variables.
#[derive(Debug, Clone, clap::Args)]
pub struct JwtArgs {
    /// Shared HS256 secret (at least 32 bytes).
    #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// The one token algorithm: HS256, RS256 or ES256 (default: HS256 with a secret;
    /// from the key's type otherwise).
    #[arg(long, env = "CHORUS_JWT_ALGORITHM")]
    pub jwt_algorithm: Option<String>,
    /// Token issuer (`iss`): required and checked when set.
    #[arg(long, env = "CHORUS_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Token audience (`aud`): required and checked when set.
    #[arg(long, env = "CHORUS_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
}

/// Subcommands of `chorus`.
#[derive(Debug, Clone, Subcommand)]
pub enum CliCommand {
    /// Mint a token for scripts and load tests, and print it.
    Token(Box<TokenArgs>),
    /// Probe a running node's /readyz (for container health checks without curl);
    /// exits 0 when ready, 1 otherwise.
    Healthcheck(crate::healthcheck::HealthcheckArgs),
}

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
            Self::Redis(s) => f
                .debug_struct("Redis")
                .field("prefix", &s.prefix)
                .finish_non_exhaustive(),
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
        }
    }
}

impl Config {
    /// Builds and validates the configuration from the command line.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let node_id = cli.node_id.clone().unwrap_or_else(random_node_id);
        let history = HistoryConfig {
            bounds: HistorySettings {
                max_len: cli.history_max_len,
                max_age: cli.history_max_age,
                dedup_window: cli.dedup_window,
                state_ttl: cli.room_state_ttl,
            },
            on_join: cli.history_on_join,
            page_max: cli.history_page_max,
            resume_max: cli.resume_max,
            position_check: cli.position_check_interval,
        };
        let backplane = match &cli.redis_url {
            None => BackplaneConfig::InProcess(MemoryBus::with_history(history.bounds)),
            Some(url) => {
                let settings = RedisSettings {
                    url: url.clone(),
                    tls_ca: cli.redis_tls_ca.clone(),
                    prefix: cli.redis_prefix.clone(),
                    command_timeout: cli.redis_timeout,
                    connect_timeout: cli.redis_timeout,
                    probe_interval: cli.ops.readiness_probe_interval,
                };
                settings
                    .validate()
                    .map_err(|e| ConfigError(format!("--redis-url: {e}")))?;
                BackplaneConfig::Redis(settings)
            }
        };
        let config = Self {
            node_id,
            backplane,
            ping_interval: cli.ping_interval,
            pong_timeout: cli.pong_timeout,
            max_frame_bytes: cli.max_frame_bytes,
            max_body_bytes: cli.max_body_bytes,
            max_rooms: cli.max_rooms,
            max_connections: cli.max_connections,
            outbox_bytes: cli.outbox_bytes,
            write_timeout: cli.write_timeout,
            unsubscribe_delay: cli.unsubscribe_delay,
            shutdown_timeout: cli.shutdown_timeout,
            auth: auth_from_cli(cli)?,
            max_connections_per_user: cli.max_connections_per_user,
            rate_limits: RateLimits {
                send: cli.send_rate,
                user_send: cli.user_send_rate,
                join: cli.join_rate,
                user_join: cli.user_join_rate,
                flood_strikes: cli.flood_strikes,
            },
            room_rules: RoomRules {
                max_bytes: cli.max_room_name_bytes,
                punctuation: cli.room_name_punctuation.clone(),
            },
            history,
            ops: Operations::from_args(&cli.ops),
        };
        if let BackplaneConfig::Redis(settings) = &config.backplane {
            check(
                valid_id(&settings.prefix),
                "--redis-prefix must be 1-64 letters, digits, - _ .",
            )?;
        }
        config.validate()?;
        Ok(config)
    }

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

/// Builds the token rules from the JWT flags.
fn auth_from_cli(cli: &Cli) -> Result<AuthConfig, ConfigError> {
    let err = |m: String| ConfigError(m);
    let explicit_algorithm = match &cli.jwt.jwt_algorithm {
        None => None,
        Some(name) => Some(parse_algorithm(name).ok_or_else(|| {
            err(format!(
                "--jwt-algorithm must be HS256, RS256 or ES256, not {name:?}"
            ))
        })?),
    };
    let keyed = cli.jwt.jwt_secret.is_some() || cli.jwt_public_key.is_some();
    let dev_login = match cli.dev_login.as_str() {
        "on" => true,
        "off" => false,
        _ => !keyed && cli.redis_url.is_none(),
    };
    let mut auth = if let Some(secret) = &cli.jwt.jwt_secret {
        check(
            secret.len() >= 32,
            "--jwt-secret must be at least 32 bytes (use a random string)",
        )?;
        check(
            matches!(explicit_algorithm, None | Some(Algorithm::HS256)),
            "--jwt-secret goes with --jwt-algorithm HS256",
        )?;
        let algorithm = Algorithm::HS256;
        AuthConfig {
            verifier: Verifier::new(
                algorithm,
                DecodingKey::from_secret(secret.as_bytes()),
                cli.jwt.jwt_issuer.as_deref(),
                cli.jwt.jwt_audience.as_deref(),
                cli.jwt_leeway,
            ),
            minter: Some(Minter::new(
                algorithm,
                EncodingKey::from_secret(secret.as_bytes()),
                cli.jwt.jwt_issuer.clone(),
                cli.jwt.jwt_audience.clone(),
            )),
            ..AuthConfig::shared_secret(secret.as_bytes())
        }
    } else if let Some(path) = &cli.jwt_public_key {
        let pem = std::fs::read(path)
            .map_err(|e| err(format!("--jwt-public-key {}: {e}", path.display())))?;
        let (algorithm, key) = public_key(&pem, explicit_algorithm)
            .map_err(|e| err(format!("--jwt-public-key {}: {e}", path.display())))?;
        check(
            !dev_login,
            "--dev-login needs --jwt-secret: it signs guest tokens",
        )?;
        AuthConfig {
            verifier: Verifier::new(
                algorithm,
                key,
                cli.jwt.jwt_issuer.as_deref(),
                cli.jwt.jwt_audience.as_deref(),
                cli.jwt_leeway,
            ),
            minter: None,
            ..AuthConfig::development()
        }
    } else if cli.redis_url.is_some() {
        return Err(err(
            "a cluster (--redis-url) needs a key every node shares: --jwt-secret or --jwt-public-key"
                .into(),
        ));
    } else {
        AuthConfig::development()
    };
    auth.dev_login = dev_login;
    auth.auth_timeout = cli.auth_timeout;
    auth.origins =
        Origins::parse(&cli.allowed_origins).map_err(|e| err(format!("--allowed-origins: {e}")))?;
    auth.policy = RoomPolicy {
        public: Patterns::parse(&cli.public_rooms)
            .map_err(|e| err(format!("--public-rooms: {e}")))?,
        read_only: Patterns::parse(&cli.read_only_rooms)
            .map_err(|e| err(format!("--read-only-rooms: {e}")))?,
    };
    Ok(auth)
}

/// Reads a PEM public key as RSA or EC, checking it against an explicit algorithm.
fn public_key(pem: &[u8], explicit: Option<Algorithm>) -> Result<(Algorithm, DecodingKey), String> {
    match explicit {
        Some(Algorithm::HS256) => Err("HS256 needs --jwt-secret, not a public key".into()),
        Some(Algorithm::ES256) => DecodingKey::from_ec_pem(pem)
            .map(|k| (Algorithm::ES256, k))
            .map_err(|e| format!("not an EC public key: {e}")),
        Some(_) => DecodingKey::from_rsa_pem(pem)
            .map(|k| (Algorithm::RS256, k))
            .map_err(|e| format!("not an RSA public key: {e}")),
        None => DecodingKey::from_rsa_pem(pem)
            .map(|k| (Algorithm::RS256, k))
            .or_else(|_| DecodingKey::from_ec_pem(pem).map(|k| (Algorithm::ES256, k)))
            .map_err(|_| "not a PEM RSA or EC (P-256) public key".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let cli =
            Cli::try_parse_from(std::iter::once("chorus").chain(args.iter().copied())).unwrap();
        Config::from_cli(&cli)
    }

    #[test]
    fn defaults_are_a_single_in_process_node() {
        let config = parse(&[]).unwrap();
        assert!(matches!(config.backplane, BackplaneConfig::InProcess(_)));
        assert_eq!(config.ping_interval, Duration::from_secs(25));
        assert!(config.node_id.starts_with("node-"));
    }

    #[test]
    fn flag_defaults_match_config_default() {
        let from_flags = parse(&[]).unwrap();
        let default = Config::default();
        let settings = |c: &Config| {
            (
                c.ping_interval,
                c.pong_timeout,
                c.max_frame_bytes,
                c.max_body_bytes,
                c.max_rooms,
                c.max_connections,
                c.outbox_bytes,
                c.write_timeout,
                c.unsubscribe_delay,
                c.shutdown_timeout,
            )
        };
        let limits = |c: &Config| {
            (
                c.max_connections_per_user,
                c.rate_limits,
                c.room_rules.clone(),
                c.auth.auth_timeout,
                c.auth.dev_login,
                c.auth.origins.clone(),
            )
        };
        assert_eq!(settings(&from_flags), settings(&default));
        assert_eq!(limits(&from_flags), limits(&default));
    }

    #[test]
    fn rejects_bad_values_with_the_flag_name() {
        for (args, flag) in [
            (&["--node-id", "has space"][..], "--node-id"),
            (&["--redis-url", "ftp://nope"][..], "--redis-url"),
            (&["--max-body-bytes", "70000"][..], "--max-body-bytes"),
            (&["--outbox-bytes", "10"][..], "--outbox-bytes"),
            (&["--ping-interval", "0s"][..], "--ping-interval"),
            (&["--jwt-secret", "short"][..], "--jwt-secret"),
            (&["--redis-url", "redis://127.0.0.1:1"][..], "--redis-url"),
            (&["--allowed-origins", "evil.com"][..], "--allowed-origins"),
            (
                &["--room-name-punctuation", "/"][..],
                "--room-name-punctuation",
            ),
            (&["--jwt-algorithm", "none"][..], "--jwt-algorithm"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}

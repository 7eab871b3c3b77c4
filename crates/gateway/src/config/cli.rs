//! The `chorus` command line: every flag (each with its environment
//! variable) and the subcommands' flags, as clap reads them. [`super::Config`]
//! is built from them in one place (`from_cli.rs`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use jsonwebtoken::Algorithm;

use super::OpsArgs;
use crate::auth::{ROOM_NAME_PUNCTUATION, Rate, parse_algorithm};

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
    /// How --redis-url is read: `standalone` (one server), `sentinel` (the URL's
    /// host part lists the sentinels, host:port,host:port; the node follows the
    /// primary they name --redis-sentinel-master across failovers) or `cluster`
    /// (the host part lists seed nodes of a Redis Cluster, 7.0 or later; rooms
    /// use sharded pub/sub).
    #[arg(long, env = "CHORUS_REDIS_MODE", default_value = "standalone", value_parser = ["standalone", "sentinel", "cluster"])]
    pub redis_mode: String,
    /// The name the sentinels monitor the primary under (sentinel mode).
    #[arg(long, env = "CHORUS_REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
    /// The sentinels' password, when they ask for one (the URL's credentials are the primary's).
    #[arg(long, env = "CHORUS_REDIS_SENTINEL_PASSWORD", hide_env_values = true)]
    pub redis_sentinel_password: Option<String>,
    /// Replicas that must hold a message before its send is acknowledged (`WAIT`
    /// after the store); 0 acknowledges once the primary stored it.
    #[arg(long, env = "CHORUS_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
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
    /// The server API's keys (TOML: name, sha256, scopes per key; see
    /// `chorus api-key`). Without it the server API refuses every request.
    #[arg(long, env = "CHORUS_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Webhook endpoints (TOML: name, url, secret, events, rooms per endpoint;
    /// docs/api.md). Without it no events are queued.
    #[arg(long, env = "CHORUS_WEBHOOKS_FILE")]
    pub webhooks_file: Option<PathBuf>,
    /// How long a webhook is retried (exponential backoff with jitter) before
    /// it becomes a dead letter.
    #[arg(long, env = "CHORUS_WEBHOOK_GIVE_UP_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub webhook_give_up_after: Duration,
    /// Bound on one webhook delivery (connect, send, answer).
    #[arg(long, env = "CHORUS_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,
    /// Asked before each user's message is stored: allow, reject with a
    /// reason, or replace the text (docs/api.md, "Publish hook").
    #[arg(long, env = "CHORUS_PUBLISH_HOOK_URL")]
    pub publish_hook_url: Option<String>,
    /// Bound on the publish hook's answer.
    #[arg(long, env = "CHORUS_PUBLISH_HOOK_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub publish_hook_timeout: Duration,
    /// When the publish hook does not answer in time or sensibly: `open`
    /// stores the message, `closed` refuses it with `hook_unavailable`.
    #[arg(long, env = "CHORUS_PUBLISH_HOOK_FAILURE", default_value = "closed", value_parser = ["open", "closed"])]
    pub publish_hook_failure: String,
    /// Signs the publish hook's requests like webhooks (whsec_...).
    #[arg(long, env = "CHORUS_PUBLISH_HOOK_SECRET", hide_env_values = true)]
    pub publish_hook_secret: Option<String>,
    /// Directory of uploaded files (created on the first upload). Every node
    /// of a cluster must see the same files: a shared volume.
    #[arg(long, env = "CHORUS_FILES_DIR", default_value = crate::config::DEFAULT_FILES_DIR)]
    pub files_dir: PathBuf,
    /// Keep files in this S3-compatible bucket instead of --files-dir (every
    /// node of a cluster then serves every file).
    #[arg(long, env = "CHORUS_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// URL of the S3-compatible service (default: AWS S3 in --s3-region).
    #[arg(long, env = "CHORUS_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Region of the bucket.
    #[arg(long, env = "CHORUS_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Access key id (default: AWS_ACCESS_KEY_ID, or the instance's role).
    #[arg(long, env = "CHORUS_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// Secret access key (default: AWS_SECRET_ACCESS_KEY, or the instance's role).
    #[arg(long, env = "CHORUS_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Largest file a user may upload, in bytes.
    #[arg(long, env = "CHORUS_MAX_UPLOAD_BYTES", default_value_t = crate::config::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,
    /// Uploads per user on this node, as RATE[:BURST].
    #[arg(long, env = "CHORUS_UPLOAD_RATE", default_value = "60/h:20")]
    pub upload_rate: Rate,
    /// An uploaded file that no message carries is deleted this long after
    /// its upload.
    #[arg(long, env = "CHORUS_UNATTACHED_FILE_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub unattached_file_ttl: Duration,
    /// Uploads this node takes at once; more get 503 `too_many_uploads`
    /// (each holds up to a 5 MiB part in memory while it streams).
    #[arg(long, env = "CHORUS_MAX_CONCURRENT_UPLOADS", default_value_t = 64)]
    pub max_concurrent_uploads: usize,
    /// Keep every message and change in this PostgreSQL database too
    /// (postgres://user:password@host:port/database; never logged).
    #[arg(long, env = "CHORUS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// CA certificates (PEM) the archive database's TLS certificate must
    /// chain to (with `sslmode=require` in --database-url); the system's
    /// roots without it.
    #[arg(long, env = "CHORUS_DATABASE_CA_FILE", global = true)]
    pub database_ca_file: Option<PathBuf>,
    /// Most connections to the archive's database at once.
    #[arg(long, env = "CHORUS_ARCHIVE_POOL_SIZE", default_value_t = 8)]
    pub archive_pool_size: usize,
    /// The archive's full-text search configuration (english, simple, german ...).
    #[arg(long, env = "CHORUS_ARCHIVE_LANGUAGE", default_value = "english")]
    pub archive_language: String,
    /// Most entries per room Redis keeps past --history-max-len/-age while
    /// the archive is behind (beyond it they are trimmed and counted as lost).
    #[arg(long, env = "CHORUS_ARCHIVE_BACKLOG_MAX", default_value_t = 100_000)]
    pub archive_backlog_max: u64,
    /// How long the archive keeps messages, per room pattern, first match
    /// wins: `support.*=90d,dm:*=1y,*=2y` (rooms matching none: for ever).
    #[arg(long, env = "CHORUS_ARCHIVE_RETENTION")]
    pub archive_retention: Option<String>,
    /// How often one node deletes what is past its retention.
    #[arg(long, env = "CHORUS_ARCHIVE_RETENTION_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub archive_retention_interval: Duration,
    /// Server API requests per key, as RATE[:BURST].
    #[arg(long, env = "CHORUS_API_KEY_RATE", default_value = "100/s:200")]
    pub api_key_rate: Rate,

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
    /// Make a new server API key: prints the key (once) and its entry for --api-keys-file.
    ApiKey(ApiKeyArgs),
    /// Bring the archive's schema in --database-url up to date, and exit
    /// (nodes also do it when they start).
    Migrate(MigrateArgs),
    /// Probe a running node's /readyz (for container health checks without curl);
    /// exits 0 when ready, 1 otherwise.
    Healthcheck(HealthcheckArgs),
}

impl JwtArgs {
    /// The algorithm `--jwt-algorithm` names, if it names one.
    pub fn algorithm(&self) -> Result<Option<Algorithm>, String> {
        match &self.jwt_algorithm {
            None => Ok(None),
            Some(name) => parse_algorithm(name).map(Some).ok_or_else(|| {
                format!("--jwt-algorithm must be HS256, RS256 or ES256, not {name:?}")
            }),
        }
    }
}

/// Flags of `chorus token`. Key flags read the same environment variables as the server.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// User id (the `sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Avatar URL.
    #[arg(long)]
    pub avatar: Option<String>,
    /// Lifetime.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Room patterns the user may join (comma-separated, `*` wildcard).
    #[arg(long, value_delimiter = ',')]
    pub join: Vec<String>,
    /// Room patterns the user may post to (comma-separated, `*` wildcard).
    #[arg(long, value_delimiter = ',')]
    pub post: Vec<String>,
    /// Room patterns where the user may edit and delete anyone's messages.
    #[arg(long, value_delimiter = ',')]
    pub moderate: Vec<String>,
    /// Secret, algorithm, issuer and audience, as the server reads them.
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// PEM private key for RS256 or ES256 (RS256 unless --jwt-algorithm ES256).
    #[arg(long, env = "CHORUS_JWT_PRIVATE_KEY", conflicts_with = "jwt_secret")]
    pub jwt_private_key: Option<PathBuf>,
}

/// Flags of `chorus migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The archive's database, as the nodes take it.
    #[arg(long, env = "CHORUS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// Flags of `chorus api-key`.
#[derive(Debug, Clone, Args)]
pub struct ApiKeyArgs {
    /// The key's name (in logs and metrics; letters, digits, - _ .).
    #[arg(long)]
    pub name: String,
    /// What it may do: publish, moderate, presence, history, users, webhooks (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub scopes: Vec<String>,
}

/// Flags of `chorus healthcheck`.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthcheckArgs {
    /// URL to probe (http only). Default: /readyz on this node's --admin-listen,
    /// or else --listen, with an unspecified address (0.0.0.0) probed on loopback.
    #[arg(long)]
    pub url: Option<String>,
    /// Probe /livez instead of /readyz (the process is up, whatever Redis does).
    #[arg(long, conflicts_with = "url")]
    pub live: bool,
    /// Bound on connecting and on the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

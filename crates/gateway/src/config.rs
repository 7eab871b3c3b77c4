//! Typed configuration, built from flags and environment variables in one place.

use std::{net::SocketAddr, time::Duration};

use chorus_backplane::{MemoryBus, RedisSettings};
use clap::Parser;

/// Command line of the `chorus` binary. Every flag has an environment variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "chorus",
    version,
    about = "Chorus: a horizontally scaled real-time chat server"
)]
pub struct Cli {
    /// Address to listen on for WebSocket and HTTP.
    #[arg(long, env = "CHORUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// This node's id (letters, digits, - _ .); defaults to a random one.
    #[arg(long, env = "CHORUS_NODE_ID")]
    pub node_id: Option<String>,
    /// Redis URL; joins a cluster through it. Without it the node runs alone with an in-process backplane.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
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
    /// Log format.
    #[arg(long, env = "CHORUS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
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
        }
    }
}

impl Config {
    /// Builds and validates the configuration from the command line.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let node_id = cli.node_id.clone().unwrap_or_else(random_node_id);
        let backplane = match &cli.redis_url {
            None => BackplaneConfig::InProcess(MemoryBus::new()),
            Some(url) => {
                let settings = RedisSettings {
                    url: url.clone(),
                    prefix: cli.redis_prefix.clone(),
                    command_timeout: cli.redis_timeout,
                    connect_timeout: cli.redis_timeout,
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
        Ok(())
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
        assert_eq!(settings(&from_flags), settings(&default));
    }

    #[test]
    fn rejects_bad_values_with_the_flag_name() {
        for (args, flag) in [
            (&["--node-id", "has space"][..], "--node-id"),
            (&["--redis-url", "ftp://nope"][..], "--redis-url"),
            (&["--max-body-bytes", "70000"][..], "--max-body-bytes"),
            (&["--outbox-bytes", "10"][..], "--outbox-bytes"),
            (&["--ping-interval", "0s"][..], "--ping-interval"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}

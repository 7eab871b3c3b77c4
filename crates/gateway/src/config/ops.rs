//! Operations settings: the admin port, draining, cluster heartbeats and the
//! readiness probe.

use std::{net::SocketAddr, time::Duration};

use super::{ConfigError, check};

/// Flags for running a node in a fleet.
#[derive(Debug, Clone, clap::Args)]
pub struct OpsArgs {
    /// A second address serving only /metrics, /livez, /readyz and /api/cluster,
    /// for scrapers and probes kept off the public port (the main port serves them too).
    #[arg(long, env = "CHORUS_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Length of the queue of connections the kernel has accepted but the node has
    /// not yet taken (capped by net.core.somaxconn). When it overflows during a
    /// connection storm, clients wait a full SYN retry (1 s, then 3 s...).
    #[arg(long, env = "CHORUS_LISTEN_BACKLOG", default_value_t = 4096)]
    pub listen_backlog: u32,
    /// After SIGTERM: how long the node stays up, not ready, still serving, so load
    /// balancers stop sending it new clients before any is closed.
    #[arg(long, env = "CHORUS_DRAIN_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_grace: Duration,
    /// After the grace period: connections are closed (4000, reconnect) in batches
    /// spread at random over this long, so they do not all reconnect at once.
    #[arg(long, env = "CHORUS_DRAIN_WINDOW", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_window: Duration,
    /// How often the node announces itself (and its load) to the cluster.
    #[arg(long, env = "CHORUS_HEARTBEAT_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// How long an announcement lasts: a node that stops announcing (a crash)
    /// leaves every node's cluster view after this long.
    #[arg(long, env = "CHORUS_NODE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub node_ttl: Duration,
    /// How often a probe goes through Redis pub/sub and back; a probe that does not
    /// return within this long makes the node not ready.
    #[arg(long, env = "CHORUS_READINESS_PROBE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub readiness_probe_interval: Duration,
    /// How long a user's presence in a room lasts unless its node refreshes it
    /// (every third of this): after a node crash, its users leave their rooms
    /// within this long (plus one refresh of a surviving node).
    #[arg(long, env = "CHORUS_PRESENCE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub presence_ttl: Duration,
}

/// How the node drains and takes part in the cluster view.
#[derive(Debug, Clone, Copy)]
pub struct Operations {
    /// Not-ready but serving, after SIGTERM.
    pub drain_grace: Duration,
    /// Connections close spread over this long after the grace period.
    pub drain_window: Duration,
    /// Interval of cluster announcements.
    pub heartbeat_interval: Duration,
    /// Lifetime of one announcement.
    pub node_ttl: Duration,
    /// Lifetime of a presence entry unless refreshed.
    pub presence_ttl: Duration,
}

impl Default for Operations {
    fn default() -> Self {
        Self {
            drain_grace: Duration::from_secs(5),
            drain_window: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            node_ttl: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(30),
        }
    }
}

impl Operations {
    /// The settings the flags give.
    pub fn from_args(args: &OpsArgs) -> Self {
        Self {
            drain_grace: args.drain_grace,
            drain_window: args.drain_window,
            heartbeat_interval: args.heartbeat_interval,
            node_ttl: args.node_ttl,
            presence_ttl: args.presence_ttl,
        }
    }

    /// Checks the relations between the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            !self.heartbeat_interval.is_zero(),
            "--heartbeat-interval must be positive",
        )?;
        check(
            self.node_ttl >= 2 * self.heartbeat_interval,
            "--node-ttl must be at least twice --heartbeat-interval",
        )?;
        check(
            self.presence_ttl >= Duration::from_secs(1),
            "--presence-ttl must be at least 1s",
        )?;
        check(
            self.drain_grace <= Duration::from_secs(3600)
                && self.drain_window <= Duration::from_secs(3600),
            "--drain-grace and --drain-window must be at most 1h",
        )
    }

    /// The longest a node takes from SIGTERM to exit, given the shutdown timeout
    /// (what a container's stop grace period must exceed).
    pub fn exit_bound(&self, shutdown_timeout: Duration) -> Duration {
        self.drain_grace + self.drain_window + shutdown_timeout
    }
}

//! Several in-process nodes sharing one backplane: a real Redis, a real Redis
//! Cluster, or one in-process bus.

use std::time::Duration;

use chorus_backplane::{MemoryBus, RedisMode, RedisSettings};
use chorus_gateway::{
    BackplaneConfig, Config,
    auth::RateLimits,
    config::{HistoryConfig, Operations},
};

use crate::{InProcessNode, RedisCluster, RedisServer};

/// Which backplane a cluster runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackplaneKind {
    /// One in-process bus shared by the nodes.
    InProcess,
    /// A real `redis-server` started for the test.
    Redis,
    /// A Redis Cluster (three primaries with a replica each) started for the
    /// test, the nodes in cluster mode.
    RedisCluster,
}

/// Nodes of one test cluster.
pub struct Cluster {
    /// The nodes, in start order.
    pub nodes: Vec<InProcessNode>,
    /// The Redis server, on [`BackplaneKind::Redis`].
    pub redis: Option<RedisServer>,
    /// The Redis Cluster, on [`BackplaneKind::RedisCluster`].
    pub redis_cluster: Option<RedisCluster>,
}

impl Cluster {
    /// Starts `n` nodes with test defaults.
    pub async fn start(kind: BackplaneKind, n: usize) -> Self {
        Self::start_with(kind, n, |_| {}).await
    }

    /// Starts `n` nodes, letting `tweak` adjust each node's configuration.
    pub async fn start_with(kind: BackplaneKind, n: usize, tweak: impl Fn(&mut Config)) -> Self {
        let redis = match kind {
            BackplaneKind::Redis => Some(RedisServer::start().await),
            _ => None,
        };
        let redis_cluster = match kind {
            BackplaneKind::RedisCluster => Some(RedisCluster::start().await),
            _ => None,
        };
        let mut bus: Option<MemoryBus> = None;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let mut config = test_config(&format!("node-{i}"));
            tweak(&mut config);
            // One bus for all nodes, with the history bounds the tweak chose.
            let bus = bus
                .get_or_insert_with(|| MemoryBus::with_history(config.history.bounds))
                .clone();
            config.backplane = match (&redis, &redis_cluster) {
                (Some(redis), _) => BackplaneConfig::Redis(redis_settings(&redis.url())),
                (_, Some(cluster)) => {
                    let mut settings = redis_settings(&cluster.url());
                    settings.mode = RedisMode::Cluster;
                    BackplaneConfig::Redis(settings)
                }
                (None, None) => BackplaneConfig::InProcess(bus),
            };
            nodes.push(InProcessNode::start(config).await);
        }
        Self {
            nodes,
            redis,
            redis_cluster,
        }
    }

    /// WebSocket URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].ws_url()
    }
}

/// A node configuration for tests: production defaults, short linger, the test
/// secret, no rate limits (tests of the limits set their own), a quick
/// position check, quick heartbeats, and no drain delays (stopping is immediate).
pub fn test_config(node_id: &str) -> Config {
    Config {
        node_id: node_id.into(),
        unsubscribe_delay: Duration::from_millis(200),
        auth: crate::test_auth(),
        rate_limits: RateLimits::unlimited(),
        history: HistoryConfig {
            position_check: Duration::from_millis(250),
            ..HistoryConfig::default()
        },
        ops: Operations {
            drain_grace: Duration::ZERO,
            drain_window: Duration::ZERO,
            heartbeat_interval: Duration::from_millis(200),
            node_ttl: Duration::from_secs(1),
            presence_ttl: Duration::from_secs(3),
        },
        ..Config::default()
    }
}

/// Redis settings for a test server at `url`.
pub fn redis_settings(url: &str) -> RedisSettings {
    RedisSettings {
        url: url.into(),
        tls_ca: None,
        prefix: "chorus".into(),
        command_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        probe_interval: Duration::from_millis(250),
        mode: RedisMode::Standalone,
        wait_replicas: 0,
    }
}

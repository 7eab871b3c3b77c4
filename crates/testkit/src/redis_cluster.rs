//! A Redis Cluster of three primaries and three replicas on loopback, made
//! with `redis-cli --cluster create` from Debian's `redis-server`.

use fred::{
    interfaces::ClientLike,
    prelude::Value,
    types::{ClusterHash, CustomCommand},
};

use crate::redis::{ADMIN_PASSWORD, APP_PASSWORD, APP_USER, RedisServer, free_port};

/// Servers in the cluster: three primaries, each with one replica.
const SERVERS: usize = 6;

/// A running Redis Cluster, killed when dropped.
pub struct RedisCluster {
    /// Its servers; which are primaries is the cluster's choice
    /// (`redis-cli --cluster create` makes the first three the primaries).
    pub servers: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts six servers in cluster mode, joins them (slots spread over the
    /// first three, one replica each) and returns once every server reports
    /// `cluster_state:ok` and every replica is in sync.
    pub async fn start() -> Self {
        let cluster = Self::start_unjoined().await;
        cluster.join().await;
        cluster
    }

    /// Like [`Self::start`], every server with `extra` arguments too.
    pub async fn start_with(extra: &[&str]) -> Self {
        let cluster = Self::unjoined(extra).await;
        cluster.join().await;
        cluster
    }

    /// Starts six servers in cluster mode, not joined yet: no slot is
    /// assigned until [`Self::join`].
    pub async fn start_unjoined() -> Self {
        Self::unjoined(&[]).await
    }

    async fn unjoined(extra: &[&str]) -> Self {
        let mut servers = Vec::with_capacity(SERVERS);
        for _ in 0..SERVERS {
            // The bus port is named: the default (port + 10,000) may be taken.
            let bus = free_port().to_string();
            servers.push(
                RedisServer::start_with(
                    &[
                        &[
                            "--cluster-enabled",
                            "yes",
                            "--cluster-port",
                            &bus,
                            "--cluster-node-timeout",
                            "1000",
                            "--masterauth",
                            ADMIN_PASSWORD,
                            // Replicas sync at once (not after diskless sync's 5 s
                            // wait): a replica that never synced never fails over.
                            "--repl-diskless-sync-delay",
                            "0",
                        ][..],
                        extra,
                    ]
                    .concat(),
                )
                .await,
            );
        }
        Self { servers }
    }

    /// Joins the servers (`redis-cli --cluster create`: slots spread over
    /// the first three, one replica each) and returns once every server
    /// reports `cluster_state:ok` and every replica is in sync.
    pub async fn join(&self) {
        let addresses: Vec<String> = self.servers.iter().map(|s| s.addr().to_string()).collect();
        let mut args = vec!["create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        cluster_cli(&args).await;
        for server in &self.servers {
            crate::eventually(
                "every server to see the cluster ok, every replica in sync",
                || async {
                    let ok = cluster_info(server).await?.contains("cluster_state:ok");
                    let replication = crate::redis::replication_info(server).await?;
                    let synced = !replication.contains("role:slave")
                        || replication.contains("master_link_status:up");
                    (ok && synced).then_some(())
                },
            )
            .await;
        }
    }

    /// The servers' addresses, `host:port,host:port,...`: the seeds a node is given.
    pub fn seeds(&self) -> String {
        let addresses: Vec<String> = self.servers.iter().map(|s| s.addr().to_string()).collect();
        addresses.join(",")
    }

    /// `redis://chorus:<password>@<seeds>`: the nodes' URL (with `--redis-mode cluster`).
    pub fn url(&self) -> String {
        format!("redis://{APP_USER}:{APP_PASSWORD}@{}", self.seeds())
    }

    /// The server that owns `slot` now (as a live server sees it), by index.
    pub async fn owner_of(&self, slot: u16) -> Option<usize> {
        let nodes = self.live_view().await?;
        let line = nodes.lines().find(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            fields.len() > 8
                && fields[2].contains("master")
                && !fields[2].contains("fail")
                && fields[8..].iter().any(|range| owns(range, slot))
        })?;
        let address = line.split(' ').nth(1)?.split('@').next()?;
        self.servers
            .iter()
            .position(|s| s.addr().to_string() == address)
    }

    /// The cluster node id of server `index`.
    pub async fn node_id(&self, index: usize) -> Option<String> {
        let id = cluster_command(&self.servers[index], &["MYID"]).await?;
        id.into_string()
    }

    /// Moves `count` slots from primary `from` to primary `to` with
    /// `redis-cli --cluster reshard` (the lowest slots `from` owns first),
    /// keys and all; returns when redis-cli has moved them (both primaries
    /// know the new owner; the others learn it by gossip).
    pub async fn reshard(&self, from: usize, to: usize, count: u16) {
        let (source, target) = (
            self.node_id(from).await.expect("source id"),
            self.node_id(to).await.expect("target id"),
        );
        let (to_address, count) = (self.servers[to].addr().to_string(), count.to_string());
        cluster_cli(&[
            "reshard",
            &to_address,
            "--cluster-from",
            &source,
            "--cluster-to",
            &target,
            "--cluster-slots",
            &count,
            "--cluster-yes",
        ])
        .await;
    }

    /// `PUBSUB SHARDNUMSUB` and `PUBSUB NUMSUB` of `channel` on server
    /// `index`: its shard-channel and ordinary-channel subscribers there.
    pub async fn subscribers(&self, index: usize, channel: &str) -> (i64, i64) {
        let client = self.servers[index].client().await;
        let mut counts = [0; 2];
        for (count, kind) in counts.iter_mut().zip(["SHARDNUMSUB", "NUMSUB"]) {
            let command = CustomCommand::new_static("PUBSUB", ClusterHash::Random, false);
            let answer: Vec<Value> = client
                .custom(command, vec![kind, channel])
                .await
                .expect("PUBSUB");
            *count = answer.get(1).and_then(Value::as_i64).unwrap_or(-1);
        }
        (counts[0], counts[1])
    }

    /// `CLUSTER NODES` from the first server still running.
    async fn live_view(&self) -> Option<String> {
        for server in self.servers.iter().filter(|s| s.is_running()) {
            if let Some(nodes) = cluster_nodes(server).await {
                return Some(nodes);
            }
        }
        None
    }
}

/// Runs `redis-cli --cluster <args>` as the admin and panics with its output
/// if it fails.
async fn cluster_cli(args: &[&str]) {
    let ran = tokio::process::Command::new("redis-cli")
        .args(["-a", ADMIN_PASSWORD, "--no-auth-warning", "--cluster"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("running redis-cli --cluster");
    assert!(
        ran.status.success(),
        "redis-cli --cluster {} failed: {}",
        args[0],
        String::from_utf8_lossy(&ran.stdout)
    );
}

/// The cluster hash slot of `key` (of its `{tag}` when it has one).
pub fn slot_of(key: &str) -> u16 {
    fred::types::cluster::ClusterRouting::hash_key(key.as_bytes())
}

/// Whether a `CLUSTER NODES` slot field (`n` or `a-b`) holds `slot`.
fn owns(range: &str, slot: u16) -> bool {
    let (low, high) = range.split_once('-').unwrap_or((range, range));
    matches!(
        (low.parse::<u16>(), high.parse::<u16>()),
        (Ok(low), Ok(high)) if (low..=high).contains(&slot)
    )
}

/// `CLUSTER INFO` of one server, as its admin sees it.
pub async fn cluster_info(server: &RedisServer) -> Option<String> {
    cluster_command(server, &["INFO"]).await?.into_string()
}

/// `CLUSTER NODES` of one server: a line per node (id, address, flags, ...).
pub async fn cluster_nodes(server: &RedisServer) -> Option<String> {
    cluster_command(server, &["NODES"]).await?.into_string()
}

/// `CLUSTER <args>` on one server, as its admin.
async fn cluster_command(server: &RedisServer, args: &[&str]) -> Option<Value> {
    let command = CustomCommand::new_static("CLUSTER", ClusterHash::Random, false);
    server
        .client()
        .await
        .custom(command, args.to_vec())
        .await
        .ok()
}

//! A Redis Cluster of three primaries and three replicas on loopback, made
//! with `redis-cli --cluster create` from Debian's `redis-server`.

use fred::{
    interfaces::ClientLike,
    prelude::Value,
    types::{ClusterHash, CustomCommand},
};

use crate::redis::{ADMIN_PASSWORD, RedisServer, free_port};

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
        let mut servers = Vec::with_capacity(SERVERS);
        for _ in 0..SERVERS {
            // The bus port is named: the default (port + 10,000) may be taken.
            let bus = free_port().to_string();
            servers.push(
                RedisServer::start_with(&[
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
                ])
                .await,
            );
        }
        let addresses: Vec<String> = servers.iter().map(|s| s.addr().to_string()).collect();
        let created = tokio::process::Command::new("redis-cli")
            .args([
                "-a",
                ADMIN_PASSWORD,
                "--no-auth-warning",
                "--cluster",
                "create",
            ])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .kill_on_drop(true)
            .output()
            .await
            .expect("running redis-cli --cluster create");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { servers };
        for server in &cluster.servers {
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
        cluster
    }

    /// The servers' addresses, `host:port,host:port,...`: the seeds a node is given.
    pub fn seeds(&self) -> String {
        let addresses: Vec<String> = self.servers.iter().map(|s| s.addr().to_string()).collect();
        addresses.join(",")
    }
}

/// `CLUSTER INFO` of one server, as its admin sees it.
pub async fn cluster_info(server: &RedisServer) -> Option<String> {
    let command = CustomCommand::new_static("CLUSTER", ClusterHash::Random, false);
    let info: Value = server
        .client()
        .await
        .custom(command, vec!["INFO"])
        .await
        .ok()?;
    info.into_string()
}

/// `CLUSTER NODES` of one server: a line per node (id, address, flags, ...).
pub async fn cluster_nodes(server: &RedisServer) -> Option<String> {
    let command = CustomCommand::new_static("CLUSTER", ClusterHash::Random, false);
    let nodes: Value = server
        .client()
        .await
        .custom(command, vec!["NODES"])
        .await
        .ok()?;
    nodes.into_string()
}

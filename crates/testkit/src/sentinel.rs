//! A Redis primary, two replicas and a sentinel watching them, on loopback:
//! the smallest group in which a primary can fail over and the new primary
//! still has a replica.

use std::process::Stdio;

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

use chorus_localcluster::reap::Reaper;

use crate::{
    WAIT,
    redis::{ADMIN_PASSWORD, APP_PASSWORD, APP_USER, RedisServer, free_port},
};

/// The name the sentinel monitors the primary under.
pub const SENTINEL_MASTER: &str = "main";

/// A primary, two replicas and one sentinel (quorum 1), killed when dropped.
pub struct SentinelGroup {
    /// The primary the group started with.
    pub primary: RedisServer,
    /// Its replicas: the sentinel promotes one when the primary dies, and
    /// points the other at it.
    pub replicas: [RedisServer; 2],
    /// The sentinel process.
    _sentinel: Child,
    /// The sentinel's port.
    sentinel_port: u16,
    /// The sentinel's log, a line at a time, for waiting on its events.
    log: mpsc::UnboundedReceiver<String>,
    /// The sentinel's working directory (its config file, which it rewrites).
    _dir: tempfile::TempDir,
    /// Kills the sentinel when the test ends, however it ends.
    _reaper: Reaper,
}

impl SentinelGroup {
    /// Starts the primary, the replicas (in sync before this returns) and the
    /// sentinel (watching all three before this returns). The sentinel declares
    /// the primary down after 500 ms without an answer.
    pub async fn start() -> Self {
        // Replicas sync at once, not after diskless sync's 5 s wait for more.
        let primary = RedisServer::start_with(&[
            "--masterauth",
            ADMIN_PASSWORD,
            "--repl-diskless-sync-delay",
            "0",
        ])
        .await;
        let port = primary.port().to_string();
        let replica_args = [
            "--replicaof",
            "127.0.0.1",
            &port,
            "--masterauth",
            ADMIN_PASSWORD,
        ];
        let replicas = [
            RedisServer::start_with(&replica_args).await,
            RedisServer::start_with(&replica_args).await,
        ];
        // Sentinel clients ask a server its ROLE before trusting it as the primary.
        for server in [&primary, &replicas[0], &replicas[1]] {
            allow_role(server).await;
        }
        for replica in &replicas {
            crate::eventually("the replicas to be in sync", || async {
                let info = crate::redis::replication_info(replica).await?;
                info.contains("master_link_status:up").then_some(())
            })
            .await;
        }
        let dir = tempfile::tempdir().expect("temporary directory for the sentinel");
        let sentinel_port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\nlogfile \"\"\ndir {dir}\n\
                 sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {port} 1\n\
                 sentinel auth-pass {SENTINEL_MASTER} {ADMIN_PASSWORD}\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 500\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 5000\n",
                dir = dir.path().display(),
            ),
        )
        .expect("writing sentinel.conf");
        let reaper = Reaper::new();
        let mut command = Command::new("redis-server");
        reaper
            .mark(&mut command)
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut sentinel = command.spawn().expect("starting redis-server --sentinel");
        let mut lines = BufReader::new(sentinel.stdout.take().expect("piped stdout")).lines();
        let (sender, log) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = sender.send(line);
            }
        });
        let mut group = Self {
            primary,
            replicas,
            _sentinel: sentinel,
            sentinel_port,
            log,
            _dir: dir,
            _reaper: reaper,
        };
        for i in 0..2 {
            let replica = format!("+slave slave 127.0.0.1:{}", group.replicas[i].port());
            group.wait_for(&replica).await;
        }
        group
    }

    /// The URL nodes connect with in sentinel mode: the primary's
    /// credentials, the sentinel's address.
    pub fn url(&self) -> String {
        format!(
            "redis://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}",
            self.sentinel_port
        )
    }

    /// Waits for a line of the sentinel's log containing `needle` (an event
    /// such as `+switch-master`), and returns it.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(WAIT, async {
            while let Some(line) = self.log.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("the sentinel never logged {needle:?}"),
        }
    }
}

/// Lets the nodes' ACL user run `ROLE` (a `@dangerous` command) on `server`.
async fn allow_role(server: &RedisServer) {
    use fred::{
        interfaces::ClientLike,
        prelude::Value,
        types::{ClusterHash, CustomCommand},
    };
    let command = CustomCommand::new_static("ACL", ClusterHash::Random, false);
    let _: Value = server
        .client()
        .await
        .custom(command, vec!["SETUSER", APP_USER, "+role"])
        .await
        .expect("ACL SETUSER");
}

//! The cluster's Redis: one `redis-server` (AOF on); a primary, two replicas
//! and a sentinel that fails the primary over; or a Redis Cluster of three
//! primaries with a replica each.

use std::{net::SocketAddr, path::Path, process::Stdio};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

use crate::{READY_WITHIN, free_port, reap::Reaper};

/// The name the sentinel monitors the primary under.
pub const SENTINEL_MASTER: &str = "chorus";

/// Which Redis the nodes share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Topology {
    /// One server.
    #[default]
    Single,
    /// A primary, two replicas and a sentinel: the nodes in sentinel mode.
    Sentinel,
    /// A Redis Cluster, three primaries with a replica each: the nodes in
    /// cluster mode.
    Cluster,
}

/// Servers of the Redis Cluster: three primaries, then one replica each.
const CLUSTER_SERVERS: usize = 6;

/// The running Redis processes, and how nodes reach them.
pub struct Backplane {
    /// Where nodes connect: the server, the sentinel, or the cluster's first node.
    pub addr: SocketAddr,
    /// Every process (the server; or the primary, replicas and sentinel).
    pub children: Vec<Child>,
    /// The nodes' Redis flags.
    pub node_args: Vec<String>,
}

/// Starts the `topology`, every server with its files under `dir`; returns
/// once they are ready.
pub async fn start(dir: &Path, reaper: &Reaper, topology: Topology) -> Result<Backplane> {
    if topology == Topology::Cluster {
        return start_cluster(dir, reaper).await;
    }
    // Replicas sync at once, not after diskless sync's 5 s wait for more.
    let no_delay = ["--repl-diskless-sync-delay", "0"].map(String::from);
    let (primary, port) = start_server(&dir.join("primary"), reaper, &no_delay, &[]).await?;
    let url = |port: u16| format!("redis://127.0.0.1:{port}");
    if topology == Topology::Single {
        return Ok(Backplane {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            children: vec![primary],
            node_args: vec!["--redis-url".into(), url(port)],
        });
    }
    let mut children = vec![primary];
    let mut replicas = Vec::new();
    for i in 0..2 {
        let replica_of = ["--replicaof", "127.0.0.1", &port.to_string()].map(String::from);
        let synced = ["MASTER <-> REPLICA sync: Finished with success"];
        let (child, replica) = start_server(
            &dir.join(format!("replica-{i}")),
            reaper,
            &replica_of,
            &synced,
        )
        .await?;
        children.push(child);
        replicas.push(replica);
    }
    let (child, sentinel_port) =
        start_sentinel(&dir.join("sentinel"), reaper, port, &replicas).await?;
    children.push(child);
    Ok(Backplane {
        addr: SocketAddr::from(([127, 0, 0, 1], sentinel_port)),
        children,
        node_args: [
            "--redis-url",
            &url(sentinel_port),
            "--redis-mode",
            "sentinel",
            "--redis-sentinel-master",
            SENTINEL_MASTER,
            "--redis-wait-replicas",
            "1",
        ]
        .map(String::from)
        .to_vec(),
    })
}

/// Six servers in cluster mode joined by `redis-cli --cluster create` (the
/// first three primaries, one replica each); returns once every server sees
/// the cluster ok and every replica has synced.
async fn start_cluster(dir: &Path, reaper: &Reaper) -> Result<Backplane> {
    let mut servers = Vec::with_capacity(CLUSTER_SERVERS);
    for i in 0..CLUSTER_SERVERS {
        let args = [
            "--cluster-enabled",
            "yes",
            // Named: the default bus port (port + 10,000) may be taken.
            "--cluster-port",
            &free_port()?.to_string(),
            "--cluster-node-timeout",
            "2000",
            "--repl-diskless-sync-delay",
            "0",
        ]
        .map(String::from);
        let (child, port, lines) =
            start_server_logged(&dir.join(format!("node-{i}")), reaper, &args).await?;
        servers.push((child, port, lines));
    }
    let addresses: Vec<String> = servers
        .iter()
        .map(|(_, port, _)| format!("127.0.0.1:{port}"))
        .collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .kill_on_drop(true)
        .output()
        .await
        .context("running redis-cli --cluster create")?;
    if !created.status.success() {
        bail!(
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
    }
    let mut children = Vec::with_capacity(CLUSTER_SERVERS);
    for (i, (child, port, mut lines)) in servers.into_iter().enumerate() {
        wait_line(&mut lines, "Cluster state changed: ok")
            .await
            .with_context(|| format!("the cluster is not ok on port {port}"))?;
        if i >= CLUSTER_SERVERS / 2 {
            wait_line(&mut lines, "MASTER <-> REPLICA sync: Finished with success")
                .await
                .with_context(|| format!("the replica on port {port} did not sync"))?;
        }
        drain(lines);
        children.push(child);
    }
    Ok(Backplane {
        addr: SocketAddr::from(([127, 0, 0, 1], servers_port(&addresses[0]))),
        children,
        node_args: vec![
            "--redis-url".into(),
            format!("redis://{}", addresses.join(",")),
            "--redis-mode".into(),
            "cluster".into(),
            "--redis-wait-replicas".into(),
            "1".into(),
        ],
    })
}

/// The port of a `127.0.0.1:<port>` address.
fn servers_port(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_default()
}

/// A `redis-server` with AOF (fsync every second) in `dir`, and its port;
/// returns once it accepts connections and has logged each line of `ready`.
async fn start_server(
    dir: &Path,
    reaper: &Reaper,
    extra: &[String],
    ready: &[&str],
) -> Result<(Child, u16)> {
    let (child, port, mut lines) = start_server_logged(dir, reaper, extra).await?;
    for line in ready {
        wait_line(&mut lines, line)
            .await
            .with_context(|| format!("redis-server on port {port} is not ready"))?;
    }
    drain(lines);
    Ok((child, port))
}

/// A `redis-server` with AOF in `dir`, once it accepts connections: the
/// process, its port and the rest of its log (which must be read on).
async fn start_server_logged(
    dir: &Path,
    reaper: &Reaper,
    extra: &[String],
) -> Result<(Child, u16, Lines<BufReader<ChildStdout>>)> {
    std::fs::create_dir_all(dir).context("creating Redis's directory")?;
    let port = free_port()?;
    let mut command = Command::new("redis-server");
    reaper
        .mark(&mut command)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ])
        .arg("--dir")
        .arg(dir)
        .args(["--logfile", ""])
        .args(extra);
    let (child, mut lines) = spawn(command, reaper)?;
    wait_line(&mut lines, "Ready to accept connections")
        .await
        .with_context(|| format!("redis-server did not start on port {port}"))?;
    Ok((child, port, lines))
}

/// A sentinel watching the primary on `primary` (quorum 1, down after
/// 1 s), ready once it knows both `replicas`; and its port.
async fn start_sentinel(
    dir: &Path,
    reaper: &Reaper,
    primary: u16,
    replicas: &[u16],
) -> Result<(Child, u16)> {
    std::fs::create_dir_all(dir).context("creating the sentinel's directory")?;
    let port = free_port()?;
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nlogfile \"\"\ndir {}\n\
             sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 1\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
             sentinel failover-timeout {SENTINEL_MASTER} 10000\n",
            dir.display()
        ),
    )
    .context("writing sentinel.conf")?;
    let mut command = Command::new("redis-server");
    reaper.mark(&mut command).arg(&conf).arg("--sentinel");
    let (child, mut lines) = spawn(command, reaper)?;
    for replica in replicas {
        wait_line(&mut lines, &format!("+slave slave 127.0.0.1:{replica}"))
            .await
            .context("the sentinel did not find the replicas")?;
    }
    drain(lines);
    Ok((child, port))
}

/// Runs `command` in a process group of its own, its log on a pipe.
fn spawn(mut command: Command, reaper: &Reaper) -> Result<(Child, Lines<BufReader<ChildStdout>>)> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("running redis-server (apt-get install redis-server)")?;
    reaper.track_group(&child);
    let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    Ok((child, lines))
}

/// Reads the log until a line contains `needle`, within [`READY_WITHIN`].
async fn wait_line(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> Result<()> {
    let found = tokio::time::timeout(READY_WITHIN, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    if !matches!(found, Ok(true)) {
        bail!("no {needle:?} in the log");
    }
    Ok(())
}

/// Keeps reading the log so the pipe never fills.
fn drain(mut lines: Lines<BufReader<ChildStdout>>) {
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

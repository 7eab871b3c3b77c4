//! A native Chorus cluster on loopback, built from the same parts as the
//! compose and Kubernetes deployments: one `redis-server` (AOF on; or a
//! Sentinel group, or a Redis Cluster: [`Options::redis`]), N `chorus`
//! processes, and nginx running `nginx/nginx.conf` unchanged, with its two
//! include files (`chorus-upstream.conf`, `chorus-server.conf`) generated.
//!
//! The `chorus-cluster` binary and the end-to-end tests both use [`LocalCluster`].
//! Every process runs in its own process group, so a ctrl-c in the terminal
//! reaches only the caller, which then stops them in order (nodes drain first).
//! Every process also carries the cluster's [`reap::Reaper`] marker: dropping
//! the cluster kills them all, and whatever they started (nginx's workers).

use std::{
    net::{SocketAddr, TcpListener as StdListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};

pub mod reap;
mod redis;

pub use redis::{SENTINEL_MASTER, Topology};

use reap::Reaper;

/// Bound on any one part becoming ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Gateway nodes.
    pub nodes: usize,
    /// nginx's port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// The `chorus` binary.
    pub chorus: PathBuf,
    /// The shared nginx configuration (`nginx/nginx.conf`).
    pub nginx_conf: PathBuf,
    /// Extra arguments for every node (the JWT secret comes from the environment).
    pub node_args: Vec<String>,
    /// Extra environment variables for every node.
    pub node_env: Vec<(String, String)>,
    /// One Redis server; a primary, two replicas and a sentinel; or a Redis
    /// Cluster (with replicas, each send waits for one).
    pub redis: Topology,
}

impl Options {
    /// `nodes` nodes of `chorus`, the repository's nginx.conf, any free port.
    pub fn new(chorus: impl Into<PathBuf>, nodes: usize) -> Self {
        Self {
            nodes,
            port: 0,
            chorus: chorus.into(),
            nginx_conf: default_nginx_conf(),
            node_args: Vec::new(),
            node_env: Vec::new(),
            redis: Topology::Single,
        }
    }
}

/// The repository's `nginx/nginx.conf`.
pub fn default_nginx_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nginx/nginx.conf")
}

/// One gateway process.
pub struct Node {
    /// Its node id (`local-<i>`).
    pub id: String,
    /// Its main address (WebSocket and HTTP).
    pub addr: SocketAddr,
    /// Its admin address (metrics and probes).
    pub admin: SocketAddr,
    /// The process; `None` once killed or stopped.
    child: Option<Child>,
}

impl Node {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

/// A running cluster; every process is killed if it is dropped without [`stop`](Self::stop).
pub struct LocalCluster {
    /// nginx's address: the one entry point.
    pub addr: SocketAddr,
    /// Redis's address (the sentinel's, or the Redis Cluster's first node).
    pub redis: SocketAddr,
    /// The gateways, in start order.
    pub nodes: Vec<Node>,
    /// The redis-server processes.
    redis_children: Vec<Child>,
    /// The nodes' Redis flags.
    redis_args: Vec<String>,
    /// nginx.
    nginx: Child,
    /// nginx's prefix (configuration copies, pid, temp files) and Redis's files.
    dir: tempfile::TempDir,
    /// How the nodes were started (for restarts).
    options: Options,
    /// Kills every process of the cluster (and their children) when dropped.
    reaper: Reaper,
}

impl LocalCluster {
    /// Starts Redis, the nodes and nginx, and waits until each is ready.
    pub async fn start(options: &Options) -> Result<Self> {
        if options.nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        let dir = tempfile::Builder::new()
            .prefix("chorus-cluster-")
            .tempdir()
            .context("creating the cluster's directory")?;
        let reaper = Reaper::new();
        let backplane = redis::start(&dir.path().join("redis"), &reaper, options.redis).await?;
        let mut nodes = Vec::with_capacity(options.nodes);
        for i in 0..options.nodes {
            nodes.push(start_node(options, (i, None), &backplane.node_args, &reaper).await?);
        }
        let port = match options.port {
            0 => free_port()?,
            port => port,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let nginx_dir = dir.path().join("nginx");
        write_nginx_files(options, &nginx_dir, &nodes, addr)?;
        check_nginx(&nginx_dir).await?;
        let nginx = start_nginx(&nginx_dir, &reaper)?;
        let cluster = Self {
            addr,
            redis: backplane.addr,
            nodes,
            redis_children: backplane.children,
            redis_args: backplane.node_args,
            nginx,
            dir,
            options: options.clone(),
            reaper,
        };
        wait_for(addr, "/nginx-health", "nginx").await?;
        wait_for(addr, "/readyz", "a gateway through nginx").await?;
        Ok(cluster)
    }

    /// `http://<nginx>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://<nginx>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The directory holding nginx's generated files and Redis's data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILLs node `i`, as a crash would.
    pub async fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill().await;
        }
    }

    /// Restarts node `i` as a rolling deploy would: SIGTERM (it drains, its
    /// clients go elsewhere), then the same binary on the same addresses,
    /// waiting until it is ready.
    pub async fn restart_node(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            if let Some(pid) = child.id() {
                signal(pid, nix::sys::signal::Signal::SIGTERM);
            }
            child
                .wait()
                .await
                .context("waiting for the node to drain")?;
        }
        let at = Some((node.addr, node.admin));
        *node = start_node(&self.options, (i, at), &self.redis_args, &self.reaper).await?;
        Ok(())
    }

    /// Stops everything: SIGTERM to the nodes (they drain), then nginx and Redis.
    pub async fn stop(mut self) -> Result<()> {
        for node in &self.nodes {
            if let Some(pid) = node.pid() {
                signal(pid, nix::sys::signal::Signal::SIGTERM);
            }
        }
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                child.wait().await.context("waiting for a node")?;
            }
        }
        for child in std::iter::once(&mut self.nginx).chain(&mut self.redis_children) {
            if let Some(pid) = child.id() {
                signal(pid, nix::sys::signal::Signal::SIGTERM);
            }
            child.wait().await.context("waiting for nginx or Redis")?;
        }
        Ok(())
    }
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// A free port on 127.0.0.1 (closed again at once; taken by the caller right after).
pub(crate) fn free_port() -> Result<u16> {
    let listener = StdListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts node `i` on `at` (its main and admin addresses), or on free ports.
async fn start_node(
    options: &Options,
    (i, at): (usize, Option<(SocketAddr, SocketAddr)>),
    redis_args: &[String],
    reaper: &Reaper,
) -> Result<Node> {
    let id = format!("local-{i}");
    let (listen, admin) = match at {
        Some((listen, admin)) => (listen.to_string(), admin.to_string()),
        None => ("127.0.0.1:0".into(), "127.0.0.1:0".into()),
    };
    let mut child = reaper
        .mark(&mut Command::new(&options.chorus))
        .args(["--listen", &listen, "--admin-listen", &admin])
        .args(["--node-id", &id])
        .args(redis_args)
        .args(&options.node_args)
        .envs(options.node_env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running {}", options.chorus.display()))?;
    reaper.track_group(&child);
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut addresses = Vec::new();
    while addresses.len() < 2 {
        let line = tokio::time::timeout(READY_WITHIN, lines.next_line())
            .await
            .with_context(|| format!("{id} did not print its addresses"))??
            .with_context(|| format!("{id} exited at start"))?;
        if let Some(addr) = line.split("http://").nth(1) {
            addresses.push(addr.parse::<SocketAddr>()?);
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    wait_for(addresses[1], "/readyz", &id).await?;
    Ok(Node {
        id,
        addr: addresses[0],
        admin: addresses[1],
        child: Some(child),
    })
}

/// Copies nginx.conf unchanged and writes its two includes.
fn write_nginx_files(
    options: &Options,
    dir: &Path,
    nodes: &[Node],
    listen: SocketAddr,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::copy(&options.nginx_conf, dir.join("nginx.conf"))
        .with_context(|| format!("copying {}", options.nginx_conf.display()))?;
    let mut upstream = String::from(
        "# Generated by chorus-cluster.\nupstream chorus_gateways {\n    least_conn;\n",
    );
    for node in nodes {
        upstream.push_str(&format!(
            "    server {} max_fails=1 fail_timeout=5s;\n",
            node.addr
        ));
    }
    upstream.push_str("    keepalive 32;\n}\n");
    std::fs::write(dir.join("chorus-upstream.conf"), upstream)?;
    std::fs::write(
        dir.join("chorus-server.conf"),
        format!("# Generated by chorus-cluster.\nlisten {listen} backlog=4096;\n"),
    )?;
    Ok(())
}

fn nginx(dir: &Path) -> Command {
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-e", "stderr"]);
    command
}

/// `nginx -t` on the generated directory.
async fn check_nginx(dir: &Path) -> Result<()> {
    let output = nginx(dir)
        .arg("-t")
        .output()
        .await
        .context("running nginx (apt-get install nginx)")?;
    if !output.status.success() {
        bail!(
            "nginx -t failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn start_nginx(dir: &Path, reaper: &Reaper) -> Result<Child> {
    let child = reaper
        .mark(&mut nginx(dir))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("running nginx (apt-get install nginx)")?;
    // Its workers outlive a SIGKILLed master: the reaper kills the group.
    reaper.track_group(&child);
    Ok(child)
}

/// Waits until `GET path` on `addr` answers 200.
async fn wait_for(addr: SocketAddr, path: &str, what: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        if get_status(addr, path).await == Some(200) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what} was not ready within {READY_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

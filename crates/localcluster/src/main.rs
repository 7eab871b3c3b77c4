//! `chorus-cluster`: a native Chorus cluster on loopback with one command.
//! Starts redis-server, N chorus nodes and nginx (the shared nginx.conf),
//! prints the URL, and stops everything cleanly on ctrl-c or SIGTERM.

use std::{path::PathBuf, process::ExitCode};

use chorus_localcluster::{LocalCluster, Options, Topology, default_nginx_conf};
use clap::Parser;

/// Command line of `chorus-cluster`.
#[derive(Debug, Parser)]
#[command(name = "chorus-cluster", version, about)]
struct Cli {
    /// Gateway nodes to start.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// nginx's port on 127.0.0.1 (the URL to open).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The chorus binary (default: the one next to this program, else `chorus` on PATH).
    #[arg(long)]
    chorus: Option<PathBuf>,
    /// The shared nginx configuration.
    #[arg(long, default_value_os_t = default_nginx_conf())]
    nginx_conf: PathBuf,
    /// Restart one node this often, in turn (as rolling deploys would), until
    /// stopped: it drains, and comes back on the same addresses.
    #[arg(long, value_parser = humantime::parse_duration)]
    restart_every: Option<std::time::Duration>,
    /// With --restart-every: restart only this node (0-based) instead of each in turn.
    #[arg(long)]
    restart_node: Option<usize>,
    /// Redis as a primary, two replicas and a sentinel instead of one
    /// server: the nodes follow failovers, and each send waits for a replica.
    #[arg(long, conflicts_with = "redis_cluster")]
    redis_sentinel: bool,
    /// Redis as a Redis Cluster of three primaries with a replica each: rooms
    /// spread over the shards, and each send waits for a replica.
    #[arg(long)]
    redis_cluster: bool,
    /// Extra arguments for every node, after `--`.
    #[arg(last = true)]
    node_args: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let chorus = cli.chorus.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .map(|exe| exe.with_file_name("chorus"))
            .filter(|path| path.exists())
            .unwrap_or_else(|| PathBuf::from("chorus"))
    });
    if std::env::var_os("CHORUS_JWT_SECRET").is_none() {
        eprintln!(
            "chorus-cluster: set CHORUS_JWT_SECRET (32+ bytes) so every node verifies the same \
             tokens, e.g. export CHORUS_JWT_SECRET=$(head -c 32 /dev/urandom | base64)"
        );
        return ExitCode::from(2);
    }
    let options = Options {
        nodes: cli.nodes,
        port: cli.port,
        chorus,
        nginx_conf: cli.nginx_conf,
        node_args: cli.node_args,
        redis: match (cli.redis_sentinel, cli.redis_cluster) {
            (true, _) => Topology::Sentinel,
            (_, true) => Topology::Cluster,
            _ => Topology::Single,
        },
        // A laptop cluster stops quickly; flags after `--` (or the environment) win.
        node_env: [("CHORUS_DRAIN_GRACE", "1s"), ("CHORUS_DRAIN_WINDOW", "2s")]
            .into_iter()
            .filter(|(key, _)| std::env::var_os(key).is_none())
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
    };
    let mut cluster = match LocalCluster::start(&options).await {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("chorus-cluster: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Chorus cluster: {}  (WebSocket {})",
        cluster.url(),
        cluster.ws_url()
    );
    let topology = match options.redis {
        Topology::Single => "",
        Topology::Sentinel => " (sentinel)",
        Topology::Cluster => " (Redis Cluster: 3 primaries, 3 replicas)",
    };
    println!("  redis   {}{topology}", cluster.redis);
    for node in &cluster.nodes {
        println!(
            "  {}  http://{}  admin http://{}  pid {}",
            node.id,
            node.addr,
            node.admin,
            node.pid().unwrap_or(0)
        );
    }
    println!("  files   {}", cluster.dir().display());
    println!("ctrl-c stops everything");
    let stop = wait_for_stop();
    tokio::pin!(stop);
    if let Some(every) = cli.restart_every {
        let mut restarts = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        for turn in 0.. {
            tokio::select! {
                () = &mut stop => break,
                _ = restarts.tick() => {}
            }
            let i = cli.restart_node.unwrap_or(turn % cluster.nodes.len());
            println!("restarting {}", cluster.nodes[i].id);
            match cluster.restart_node(i).await {
                Ok(()) => println!(
                    "  {} back, pid {}",
                    cluster.nodes[i].id,
                    cluster.nodes[i].pid().unwrap_or(0)
                ),
                Err(error) => {
                    eprintln!("chorus-cluster: restarting node {i}: {error:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
    } else {
        stop.await;
    }
    println!("stopping (nodes drain first)");
    match cluster.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chorus-cluster: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

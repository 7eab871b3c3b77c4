//! `chorus-loadgen`: load for Chorus (and the peers it is compared with).
//!
//! `run` reads a scenario file, starts worker processes (each holding part of
//! the connections, so a run can exceed one process's file limit), starts the
//! measured phase in all of them at once, watches the server processes' CPU and
//! memory, and writes a summary, a JSON result and an SVG latency chart.
//! `compare` puts several results side by side.

mod client;
mod recorder;
mod report;
mod scenario;
mod sequence;
mod server;
mod soak;
mod stats;
mod tokens;
mod wire;
mod worker;

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
};

use crate::{
    report::{Derived, RunResult},
    scenario::{Kind, Scenario},
    server::ProcessCost,
    stats::Measured,
    worker::{Plan, Report, Start},
};

/// File descriptors a worker keeps for itself besides its connections.
const SPARE_FDS: u64 = 256;

/// Memory is last sampled this long before the clients close.
const HELD_MARGIN: Duration = Duration::from_millis(250);

#[derive(Parser)]
#[command(name = "chorus-loadgen", version, about = "Load generator for Chorus")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario file.
    Run {
        /// The scenario (TOML; see loadtest/scenarios/).
        scenario: PathBuf,
        /// Override a scenario parameter: `--set clients=2000 --set rate=200`.
        #[arg(long = "set")]
        overrides: Vec<String>,
        /// Server processes to measure (CPU seconds, RSS).
        #[arg(long)]
        pid: Vec<u32>,
        /// Reconnect storm: the node process to kill (SIGKILL) `kill_after`
        /// into the phase; it must be the one behind the scenario's first URL.
        /// Ignored by the other scenarios.
        #[arg(long)]
        kill_pid: Option<i32>,
        /// A label for the target in reports.
        #[arg(long, default_value = "chorus")]
        label: String,
        /// Where to write the JSON result.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where to write the SVG latency chart.
        #[arg(long)]
        chart: Option<PathBuf>,
        /// The nodes' HS256 secret, to mint the clients' tokens.
        #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
        secret: String,
    },
    /// Compare result files: one table, one chart.
    Compare {
        /// JSON results of `run --out`.
        results: Vec<PathBuf>,
        /// Where to write the SVG chart.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
    /// Internal: one worker process (JSON lines on stdin/stdout).
    #[command(hide = true)]
    Worker,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Worker => {
            raise_fd_limit()?;
            worker::serve_stdio().await
        }
        Cmd::Run {
            scenario,
            overrides,
            pid,
            kill_pid,
            label,
            out,
            chart,
            secret,
        } => {
            let scenario = Scenario::load(&scenario, &overrides)?;
            let kill = match (scenario.kind, kill_pid) {
                (Kind::ReconnectStorm, None) => {
                    bail!("reconnect_storm needs --kill-pid: the node behind the first url")
                }
                (Kind::ReconnectStorm, Some(pid)) => Some(pid),
                _ => None,
            };
            let result = run(scenario, pid, kill, label, secret).await?;
            print!("{}", result.summary());
            if let Some(path) = out {
                std::fs::write(&path, serde_json::to_string_pretty(&result)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = chart {
                std::fs::write(&path, report::latency_chart(std::slice::from_ref(&result)))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Cmd::Compare { results, chart } => {
            let runs = results
                .iter()
                .map(|path| {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", path.display()))
                })
                .collect::<Result<Vec<RunResult>>>()?;
            print!("{}", report::comparison_table(&runs));
            if let Some(path) = chart {
                std::fs::write(&path, report::latency_chart(&runs))?;
            }
            Ok(())
        }
    }
}

/// Raises the soft open-files limit to the hard one; returns the limit.
fn raise_fd_limit() -> Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// One worker process and the way to talk to it.
struct WorkerProcess {
    /// Its stdin (plan, then start).
    stdin: ChildStdin,
    /// The process.
    _child: Child,
}

async fn run(
    scenario: Scenario,
    pids: Vec<u32>,
    kill: Option<i32>,
    label: String,
    secret: String,
) -> Result<RunResult> {
    let limit = raise_fd_limit()?;
    let per_worker = scenario.clients.div_ceil(scenario.workers) as u64;
    if per_worker + SPARE_FDS > limit {
        let needed = (scenario.clients as u64).div_ceil(limit.saturating_sub(SPARE_FDS).max(1));
        bail!(
            "{} clients in {} worker(s) is {per_worker} connections per process, but a process may \
             hold {limit} files here: use at least {needed} workers (--set workers={needed})",
            scenario.clients,
            scenario.workers
        );
    }
    let rss_before: BTreeMap<u32, u64> = pids.iter().map(|&p| (p, server::rss_bytes(p))).collect();
    let (stop_sampling, sampling) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(server::sample_peaks(pids.clone(), sampling));

    let (reports, mut inbox) = mpsc::unbounded_channel::<(usize, Report)>();
    let mut workers = Vec::new();
    let exe = std::env::current_exe()?;
    for w in 0..scenario.workers {
        let from = w * scenario.clients / scenario.workers;
        let to = (w + 1) * scenario.clients / scenario.workers;
        let plan = Plan {
            scenario: scenario.clone(),
            from,
            to,
            secret: secret.clone(),
        };
        let mut child = Command::new(&exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker")?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut line = serde_json::to_vec(&plan)?;
        line.push(b'\n');
        stdin.write_all(&line).await?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let reports = reports.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(report) = serde_json::from_str::<Report>(&line) {
                    let _ = reports.send((w, report));
                }
            }
        });
        workers.push(WorkerProcess {
            stdin,
            _child: child,
        });
    }
    drop(reports);

    // Every worker connects its clients.
    let (mut ready, mut connected, mut errors) = (0, 0, 0);
    while ready < workers.len() {
        match inbox.recv().await {
            Some((
                _,
                Report::Ready {
                    connected: c,
                    errors: e,
                },
            )) => {
                ready += 1;
                connected += c;
                errors += e;
            }
            Some(_) => {}
            None => bail!("a worker exited before connecting its clients"),
        }
    }
    eprintln!("connected {connected} clients ({errors} errors); starting the measured phase");

    let start_us = client::unix_micros() + 1_000_000;
    let kill_us = match kill {
        Some(_) => Some(start_us + scenario.kill_after()?.as_micros() as u64),
        None => None,
    };
    let start = Start { start_us, kill_us };
    let mut line = serde_json::to_vec(&start)?;
    line.push(b'\n');
    for worker in &mut workers {
        worker.stdin.write_all(&line).await?;
        worker.stdin.flush().await?;
    }
    tokio::time::sleep(Duration::from_micros(
        start_us.saturating_sub(client::unix_micros()),
    ))
    .await;
    let cpu_before: BTreeMap<u32, f64> =
        pids.iter().map(|&p| (p, server::cpu_seconds(p))).collect();
    // Memory is sampled while the clients are connected: until just before
    // they close, at the end of the measured phase.
    let held_for = (scenario.duration()? + scenario.settle()?).saturating_sub(HELD_MARGIN);
    tokio::spawn(async move {
        tokio::time::sleep(held_for).await;
        let _ = stop_sampling.send(true);
    });
    if let (Some(pid), Some(at)) = (kill, kill_us) {
        tokio::spawn(async move {
            let wait = at.saturating_sub(client::unix_micros());
            tokio::time::sleep(Duration::from_micros(wait)).await;
            use nix::{sys::signal, unistd::Pid};
            match signal::kill(Pid::from_raw(pid), signal::SIGKILL) {
                Ok(()) => eprintln!("killed node {pid}"),
                Err(e) => eprintln!("could not kill node {pid}: {e}"),
            }
        });
    }

    let mut progress: BTreeMap<usize, (u64, u64, u64)> = BTreeMap::new();
    let mut results: Vec<Measured> = Vec::new();
    let mut last_print = tokio::time::Instant::now();
    while results.len() < workers.len() {
        match inbox.recv().await {
            Some((
                w,
                Report::Progress {
                    sent,
                    delivered,
                    dropped,
                },
            )) => {
                progress.insert(w, (sent, delivered, dropped));
                if last_print.elapsed() >= Duration::from_secs(1) {
                    last_print = tokio::time::Instant::now();
                    let (s, d, x) = progress
                        .values()
                        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
                    eprintln!("  sent {s}  delivered {d}  dropped {x}");
                }
            }
            Some((_, Report::Done(measured))) => results.push(*measured),
            Some(_) => {}
            None => bail!("a worker exited before reporting"),
        }
    }
    let cpu_after: BTreeMap<u32, f64> = pids.iter().map(|&p| (p, server::cpu_seconds(p))).collect();
    let sampled = sampler.await?;

    let mut measured = Measured::default();
    for result in &results {
        measured.merge(result);
    }
    let servers: BTreeMap<u32, ProcessCost> = pids
        .iter()
        .map(|&p| {
            (
                p,
                ProcessCost {
                    // A killed node reads as 0 afterwards: count nothing for it.
                    cpu_seconds: (cpu_after[&p] - cpu_before[&p]).max(0.0),
                    rss_before: rss_before[&p],
                    rss_peak: sampled.peaks.get(&p).copied().unwrap_or(0),
                    rss_held: sampled.last.get(&p).copied().unwrap_or(0),
                },
            )
        })
        .collect();
    Ok(result_of(label, scenario, measured, servers))
}

fn result_of(
    target: String,
    scenario: Scenario,
    measured: Measured,
    servers: BTreeMap<u32, ProcessCost>,
) -> RunResult {
    let mut members: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..scenario.clients {
        if let Some(room) = scenario.role(i).room {
            *members.entry(room).or_default() += 1;
        }
    }
    let expected: u64 = measured
        .sent
        .iter()
        .map(|(room, sent)| sent * members.get(room).copied().unwrap_or(0))
        .sum();
    let duration = scenario.duration().map(|d| d.as_secs_f64()).unwrap_or(1.0);
    let cpu: f64 = servers.values().map(|s| s.cpu_seconds).sum();
    let rss_growth: f64 = servers
        .values()
        .map(|s| s.rss_peak.saturating_sub(s.rss_before) as f64)
        .sum();
    let rss_held: f64 = servers
        .values()
        .map(|s| s.rss_held.saturating_sub(s.rss_before) as f64)
        .sum();
    let derived = Derived {
        deliveries_per_second: measured.delivered as f64 / duration,
        missing: expected.saturating_sub(measured.delivered),
        cpu_us_per_delivery: (!servers.is_empty() && measured.delivered > 0)
            .then(|| cpu * 1e6 / measured.delivered as f64),
        rss_per_connection: (!servers.is_empty() && measured.connected > 0)
            .then(|| rss_growth / measured.connected as f64),
        rss_held_per_connection: (!servers.is_empty() && measured.connected > 0)
            .then(|| rss_held / measured.connected as f64),
        connects_per_second: if measured.connect_seconds > 0.0 {
            measured.connected as f64 / measured.connect_seconds
        } else {
            measured.connected as f64
        },
    };
    RunResult {
        target,
        duration_seconds: duration,
        expected,
        latency_ms: report::quantiles_ms(&measured.latency),
        connect_ms: report::quantiles_ms(&measured.connect_latency),
        back_ms: report::quantiles_ms(&measured.back_latency),
        scenario,
        measured,
        servers,
        derived,
    }
}

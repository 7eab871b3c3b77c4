//! A worker: the clients `[from, to)` of a scenario, in one process. The
//! coordinator runs workers as child processes (`chorus-loadgen worker`),
//! talking JSON lines over stdin/stdout:
//!
//! 1. coordinator → worker: the [`Plan`];
//! 2. worker → coordinator: `{"ready": ...}` once its clients are connected,
//!    then `{"progress": ...}` every second;
//! 3. coordinator → worker: `{"start_us": ...}`, when every worker is ready;
//! 4. worker → coordinator: `{"done": Measured}` after the settle time.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    sync::{Semaphore, watch},
    time::Instant,
};

use crate::{
    client::{self, Phase, Recorder, Spec},
    scenario::{Kind, Scenario},
    stats::{Measured, Recorded},
};

/// One worker's share of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The scenario.
    pub scenario: Scenario,
    /// First client index.
    pub from: usize,
    /// One past the last client index.
    pub to: usize,
    /// HS256 secret to mint the clients' tokens with.
    pub secret: String,
}

/// What a worker says to the coordinator.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Clients connected (and failed).
    Ready { connected: u64, errors: u64 },
    /// Counters so far.
    Progress {
        sent: u64,
        delivered: u64,
        dropped: u64,
    },
    /// The final results.
    Done(Box<Measured>),
}

/// The coordinator's start signal.
#[derive(Debug, Serialize, Deserialize)]
pub struct Start {
    /// When sending starts, µs since the Unix epoch.
    pub start_us: u64,
    /// Reconnect storm: when the node is killed, µs since the Unix epoch.
    pub kill_us: Option<u64>,
}

/// Runs a worker on stdin/stdout (the `worker` subcommand).
pub async fn serve_stdio() -> Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let plan: Plan = serde_json::from_str(&lines.next_line().await?.context("no plan")?)?;
    let mut stdout = tokio::io::stdout();
    let worker = Worker::connect(&plan).await?;
    say(&mut stdout, &worker.ready()).await?;
    let start: Start = serde_json::from_str(&lines.next_line().await?.context("no start")?)?;
    let done = worker.run(&plan.scenario, &start);
    tokio::pin!(done);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            measured = &mut done => {
                say(&mut stdout, &Report::Done(Box::new(measured?))).await?;
                return Ok(());
            }
            _ = ticks.tick() => say(&mut stdout, &worker.progress()).await?,
        }
    }
}

async fn say(stdout: &mut tokio::io::Stdout, report: &Report) -> Result<()> {
    let mut line = serde_json::to_vec(report)?;
    line.push(b'\n');
    stdout.write_all(&line).await?;
    stdout.flush().await?;
    Ok(())
}

/// A worker's connected clients.
pub struct Worker {
    /// Shared counters and histograms.
    recorder: Arc<Recorder>,
    /// Tells the clients when the phase runs.
    phase: watch::Sender<Option<Phase>>,
    /// The client tasks, kept (a JoinSet aborts its tasks when dropped).
    _tasks: tokio::task::JoinSet<()>,
}

impl Worker {
    /// Connects the plan's clients, `connect_concurrency` at a time.
    pub async fn connect(plan: &Plan) -> Result<Self> {
        let scenario = &plan.scenario;
        let recorder = Recorder::new();
        let (phase, phase_rx) = watch::channel(None);
        let permits = Arc::new(Semaphore::new(scenario.connect_concurrency.max(1)));
        let minter = crate::tokens::Minter::new(&plan.secret);
        let mut tasks = tokio::task::JoinSet::new();
        let (connected_tx, mut connected_rx) = tokio::sync::mpsc::unbounded_channel();
        for index in plan.from..plan.to {
            let (url_index, source) = scenario.endpoint(index);
            let role = scenario.role(index);
            let spec = Spec {
                index,
                urls: scenario.urls.clone(),
                url_index,
                source: source
                    .map(|s| s.parse())
                    .transpose()
                    .context("a source address")?,
                token: minter.token(index)?,
                room: role.room,
                send_every: role.send_every,
                body: scenario.body,
                target: scenario.target,
                reconnect: matches!(scenario.kind, Kind::ReconnectStorm | Kind::Soak),
                soak: match scenario.kind {
                    Kind::Soak => Some((scenario.churn()?, scenario.chatter()?)),
                    _ => None,
                },
            };
            let permit = permits.clone().acquire_owned().await?;
            let (recorder, phase_rx, connected_tx) =
                (recorder.clone(), phase_rx.clone(), connected_tx.clone());
            tasks.spawn(async move {
                let connected = client::connect(&spec, &recorder).await;
                drop(permit);
                let _ = connected_tx.send(());
                if let Some(connected) = connected {
                    client::run(spec, connected, phase_rx, recorder).await;
                }
            });
        }
        drop(connected_tx);
        // Every client has tried once.
        for _ in plan.from..plan.to {
            connected_rx.recv().await;
        }
        Ok(Self {
            recorder,
            phase,
            _tasks: tasks,
        })
    }

    /// The `ready` report.
    pub fn ready(&self) -> Report {
        Report::Ready {
            connected: self.recorder.connected.load(Ordering::Relaxed),
            errors: self.recorder.connect_errors.load(Ordering::Relaxed),
        }
    }

    /// A `progress` report.
    pub fn progress(&self) -> Report {
        Report::Progress {
            sent: self.recorder.sent_total.load(Ordering::Relaxed),
            delivered: self.recorder.delivered.load(Ordering::Relaxed),
            dropped: self.recorder.dropped.load(Ordering::Relaxed),
        }
    }

    /// Runs the measured phase from `start_us` and returns what was measured.
    pub async fn run(&self, scenario: &Scenario, start: &Start) -> Result<Measured> {
        let Start { start_us, kill_us } = *start;
        let now_us = client::unix_micros();
        let start = Instant::now() + Duration::from_micros(start_us.saturating_sub(now_us));
        let end = start + scenario.duration()?;
        let close = end + scenario.settle()?;
        let _ = self.phase.send(Some(Phase {
            start,
            end,
            close,
            start_us,
            kill_us,
        }));
        tokio::time::sleep_until(close + Duration::from_secs(3)).await;
        Ok(self.measured())
    }

    fn measured(&self) -> Measured {
        let r = &self.recorder;
        let connect_seconds = r
            .connect_span
            .lock()
            .unwrap()
            .map(|(first, last)| (last - first).as_secs_f64())
            .unwrap_or(0.0);
        Measured {
            connected: r.connected.load(Ordering::Relaxed),
            connect_errors: r.connect_errors.load(Ordering::Relaxed),
            dropped: r.dropped.load(Ordering::Relaxed),
            connect_latency: Recorded::of(&r.connect_latency.lock().unwrap()),
            connect_seconds,
            sent: r.sent.lock().unwrap().clone(),
            delivered: r.delivered.load(Ordering::Relaxed),
            latency: Recorded::of(&r.latency()),
            server_errors: r.server_errors.load(Ordering::Relaxed),
            duplicates: r.duplicates.load(Ordering::Relaxed),
            reconnected: r.reconnected.load(Ordering::Relaxed),
            recovered: r.recovered.load(Ordering::Relaxed),
            reconnect_errors: r.reconnect_errors.load(Ordering::Relaxed),
            back_latency: Recorded::of(&r.back_latency.lock().unwrap()),
            churned: r.churned.load(Ordering::Relaxed),
            resent: r.resent.load(Ordering::Relaxed),
            skipped: r.skipped.load(Ordering::Relaxed),
            gaps: r.gaps.lock().unwrap().clone(),
            ends: r.ends.lock().unwrap().clone(),
        }
    }
}

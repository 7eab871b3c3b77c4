//! Publish-path throughput: how many sends per second one node accepts.
//!
//! N senders, each in a room of its own (so fan-out is one delivery per send;
//! `--rooms` makes them share fewer rooms),
//! keep `--window` sends outstanding each (closed loop) for `--duration`; the
//! figure is accepted sends per second, with the send-to-`sent` latency and the
//! node's and Redis's CPU. Run it against builds before and after a change of
//! the publish path.
//!
//! cargo run --release -p chorus-testkit --example publish_rate -- \
//!     --url ws://127.0.0.1:8081/ws --senders 64 --window 4 --duration 15s --pid <node> --pid <redis>

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::{connect_async, tungstenite::Message};

#[derive(Parser)]
struct Args {
    /// The node's WebSocket URL.
    #[arg(long)]
    url: String,
    /// Sending connections.
    #[arg(long, default_value_t = 64)]
    senders: usize,
    /// Rooms the senders share (sender i sends to room i mod rooms); the
    /// default, one room per sender, makes fan-out one delivery per send.
    #[arg(long)]
    rooms: Option<usize>,
    /// Sends outstanding per connection.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// How long to send.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 100)]
    body: usize,
    /// Attach a client_msg_id to every send (idempotent sends).
    #[arg(long)]
    idempotent: bool,
    /// Pids to measure CPU for (the node, Redis).
    #[arg(long)]
    pid: Vec<u32>,
    /// The node's HS256 secret, to mint tokens.
    #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    secret: String,
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let body = "x".repeat(args.body);
    let deadline_after = args.duration;
    let mut tasks = Vec::new();
    let rooms = args.rooms.unwrap_or(args.senders).max(1);
    let start_cpu: Vec<u64> = args.pid.iter().map(|p| cpu_ticks(*p)).collect();
    let started = Instant::now();
    for i in 0..args.senders {
        let token = chorus_testkit::token_with_secret(&args.secret, &format!("pub-{i}"));
        let url = format!("{}?token={token}", args.url);
        let body = body.clone();
        let (window, idempotent) = (args.window, args.idempotent);
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = connect_async(url).await.expect("connecting");
            let room = format!("pub-{}", i % rooms);
            let join = serde_json::json!({"type": "join", "room": room, "history": 0});
            ws.send(Message::Text(join.to_string().into())).await.unwrap();
            let mut latency = Histogram::<u64>::new(3).unwrap();
            let mut sent_at = std::collections::HashMap::new();
            let mut next = 0u64;
            let mut accepted = 0u64;
            let deadline = started + deadline_after;
            let mut joined = false;
            loop {
                while joined && sent_at.len() < window && Instant::now() < deadline {
                    next += 1;
                    let mut send = serde_json::json!({"type": "send", "room": room, "body": body, "ref": next.to_string()});
                    if idempotent {
                        send["client_msg_id"] = serde_json::json!(format!("{i}-{next}"));
                    }
                    ws.send(Message::Text(send.to_string().into())).await.unwrap();
                    sent_at.insert(next, Instant::now());
                }
                if Instant::now() >= deadline && sent_at.is_empty() {
                    break;
                }
                let Some(Ok(Message::Text(text))) = ws.next().await else {
                    break;
                };
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                match event["type"].as_str() {
                    Some("joined") => joined = true,
                    Some("sent") => {
                        let n: u64 = event["ref"].as_str().unwrap().parse().unwrap();
                        if let Some(at) = sent_at.remove(&n) {
                            latency.record(at.elapsed().as_micros() as u64).unwrap();
                            accepted += 1;
                        }
                    }
                    Some("error") => panic!("send refused: {event}"),
                    _ => {}
                }
            }
            (accepted, latency)
        }));
    }
    let mut total = 0;
    let mut latency = Histogram::<u64>::new(3).unwrap();
    for task in tasks {
        let (accepted, histogram) = task.await.unwrap();
        total += accepted;
        latency.add(histogram).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ticks_per_sec = 100.0;
    println!(
        "accepted {total} sends in {elapsed:.1}s: {:.0} msg/s; send->sent p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        total as f64 / elapsed,
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
    );
    for (pid, before) in args.pid.iter().zip(start_cpu) {
        let cpu = (cpu_ticks(*pid) - before) as f64 / ticks_per_sec;
        println!(
            "pid {pid}: {:.0}% of a core, {:.1} µs per send",
            100.0 * cpu / elapsed,
            1e6 * cpu / total.max(1) as f64
        );
    }
}

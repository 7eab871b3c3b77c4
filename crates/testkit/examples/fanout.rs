//! A first fan-out measurement: N clients spread over several nodes join one
//! room; one sender publishes at a fixed rate (open loop); every delivery's
//! latency (send time in the body to receive time) goes into an HDR histogram.
//! Server CPU is read from /proc for the given pids. The full load generator
//! (issue 7) grows out of this.
//!
//! cargo run --release -p chorus-testkit --example fanout -- \
//!     --url ws://127.0.0.1:8081/ws --url ws://127.0.0.1:8082/ws --clients 1000 --rate 50 --duration 20s --pid 123 --pid 124
//!
//! Tokens are minted with `CHORUS_JWT_SECRET` (the nodes' secret); run the nodes
//! with a `--send-rate` above `--rate`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::{connect_async_with_config, tungstenite::Message};

#[derive(Parser)]
struct Args {
    /// Node WebSocket URLs; clients are spread over them round-robin.
    #[arg(long, required = true)]
    url: Vec<String>,
    /// Receiving clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Messages per second from the sender.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// How long to send.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Message body size in bytes (at least 20).
    #[arg(long, default_value_t = 100)]
    body: usize,
    /// Server pids to measure CPU for.
    #[arg(long)]
    pid: Vec<u32>,
    /// The nodes' HS256 secret, to mint a token per client.
    #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
    secret: String,
}

/// `url?token=...` for a new user that may join and post to the bench room.
fn authed_url(url: &str, secret: &str, i: usize) -> String {
    let token = chorus_testkit::token_with_secret(secret, &format!("bench-{i}"));
    format!("{url}?token={token}")
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let expected = args.rate * args.duration.as_secs();
    let mut receivers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(args.clients);
    for i in 0..args.clients {
        let url = authed_url(&args.url[i % args.url.len()], &args.secret, i);
        let ready = ready_tx.clone();
        receivers.push(tokio::spawn(async move {
            let (mut ws, _) = connect_async_with_config(url.as_str(), None, true)
                .await
                .expect("connect");
            ws.send(Message::Text(r#"{"type":"join","room":"bench"}"#.into()))
                .await
                .unwrap();
            let mut histogram = Histogram::<u64>::new(3).unwrap();
            let mut received = 0u64;
            while let Some(Ok(frame)) = ws.next().await {
                let Message::Text(text) = frame else { continue };
                if text.contains(r#""type":"joined""#) {
                    ready.send(()).await.unwrap();
                    continue;
                }
                if text.contains(r#""body":"end""#) {
                    break;
                }
                if let Some(start) = text.find(r#""body":""#) {
                    let digits: String = text[start + 8..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Ok(sent) = digits.parse::<u64>() {
                        histogram.record(now_micros().saturating_sub(sent)).unwrap();
                        received += 1;
                    }
                }
            }
            (received, histogram)
        }));
    }
    for _ in 0..args.clients {
        ready_rx.recv().await.unwrap();
    }
    eprintln!(
        "{} clients joined; sending {} msg/s for {:?}",
        args.clients, args.rate, args.duration
    );

    let sender_url = authed_url(&args.url[0], &args.secret, args.clients);
    let (mut sender, _) = connect_async_with_config(sender_url.as_str(), None, true)
        .await
        .unwrap();
    sender
        .send(Message::Text(r#"{"type":"join","room":"bench"}"#.into()))
        .await
        .unwrap();
    // The sender's own events are read and discarded so its queue never overflows.
    let (mut sender, mut sender_events) = sender.split();
    tokio::spawn(async move { while sender_events.next().await.is_some() {} });
    let cpu_before: Vec<f64> = args.pid.iter().map(|&p| cpu_seconds(p)).collect();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate));
    for _ in 0..expected {
        ticker.tick().await;
        let body = format!("{:016}{}", now_micros(), "x".repeat(args.body.max(20) - 16));
        let command = format!(r#"{{"type":"send","room":"bench","body":"{body}"}}"#);
        sender.send(Message::Text(command.into())).await.unwrap();
    }
    sender
        .send(Message::Text(
            r#"{"type":"send","room":"bench","body":"end"}"#.into(),
        ))
        .await
        .unwrap();
    let mut total = Histogram::<u64>::new(3).unwrap();
    let mut delivered = 0;
    for receiver in receivers {
        let (received, histogram) = receiver.await.unwrap();
        delivered += received;
        total.add(histogram).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu: f64 = args
        .pid
        .iter()
        .zip(&cpu_before)
        .map(|(&p, before)| cpu_seconds(p) - before)
        .sum();
    println!(
        "clients {} nodes {} rate {}/s duration {:.1}s",
        args.clients,
        args.url.len(),
        args.rate,
        elapsed
    );
    println!(
        "delivered {delivered} of {} expected ({:.0} deliveries/s)",
        expected * args.clients as u64,
        delivered as f64 / elapsed
    );
    println!(
        "latency ms: p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        total.value_at_quantile(0.5) as f64 / 1e3,
        total.value_at_quantile(0.9) as f64 / 1e3,
        total.value_at_quantile(0.99) as f64 / 1e3,
        total.value_at_quantile(0.999) as f64 / 1e3,
        total.max() as f64 / 1e3
    );
    if !args.pid.is_empty() && delivered > 0 {
        println!(
            "server CPU {cpu:.2}s total ({:.0}% of one core), {:.1} µs per delivered message",
            100.0 * cpu / elapsed,
            cpu * 1e6 / delivered as f64
        );
    }
}

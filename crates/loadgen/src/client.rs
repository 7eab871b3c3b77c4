//! One simulated chat client: connect (from a chosen source address), join a
//! room, then send on a fixed schedule (open loop) and time every message it
//! receives from the scheduled send time carried in the body.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::{
    net::{TcpSocket, lookup_host},
    sync::watch,
    time::{Instant, sleep_until, timeout},
};
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{Message, protocol::WebSocketConfig},
};

/// Bound on connecting, upgrading and joining.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Histogram shards, so receivers rarely wait for each other.
const SHARDS: usize = 16;

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What every client of a worker shares.
pub struct Recorder {
    /// Delivery latency, sharded by client.
    latency: Vec<Mutex<Histogram<u64>>>,
    /// Connect latency.
    pub connect_latency: Mutex<Histogram<u64>>,
    /// Messages received.
    pub delivered: AtomicU64,
    /// Connections up (joined).
    pub connected: AtomicU64,
    /// Connections that failed.
    pub connect_errors: AtomicU64,
    /// Connections lost during the run.
    pub dropped: AtomicU64,
    /// Error events received.
    pub server_errors: AtomicU64,
    /// Messages sent, by room.
    pub sent: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Sends so far (for progress).
    pub sent_total: AtomicU64,
    /// When the first and the last connection completed.
    pub connect_span: Mutex<Option<(Instant, Instant)>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            latency: (0..SHARDS)
                .map(|_| Mutex::new(crate::stats::histogram()))
                .collect(),
            connect_latency: Mutex::new(crate::stats::histogram()),
            delivered: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            sent: Mutex::new(Default::default()),
            sent_total: AtomicU64::new(0),
            connect_span: Mutex::new(None),
        })
    }

    /// All delivery latencies merged.
    pub fn latency(&self) -> Histogram<u64> {
        let mut all = crate::stats::histogram();
        for shard in &self.latency {
            let _ = all.add(&*shard.lock().unwrap());
        }
        all
    }
}

/// One client's settings.
pub struct Spec {
    /// Its index in the whole run.
    pub index: usize,
    /// `ws://host:port/path`.
    pub url: String,
    /// Local address to connect from.
    pub source: Option<IpAddr>,
    /// Its token.
    pub token: String,
    /// The room it joins.
    pub room: Option<String>,
    /// How often it sends, if it does.
    pub send_every: Option<Duration>,
    /// Body size.
    pub body: usize,
    /// The server's protocol.
    pub target: crate::scenario::Target,
}

/// When the measured phase runs (set once, by the coordinator's start signal).
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Sending starts.
    pub start: Instant,
    /// Sending stops.
    pub end: Instant,
    /// The connection closes (after the settle time).
    pub close: Instant,
    /// `start` in µs since the Unix epoch (the coordinator's clock).
    pub start_us: u64,
}

/// Connects and joins; returns the socket, or counts the failure.
pub async fn connect(spec: &Spec, recorder: &Recorder) -> Option<Socket> {
    let started = Instant::now();
    match timeout(CONNECT_TIMEOUT, open(spec)).await {
        Ok(Ok(socket)) => {
            let micros = started.elapsed().as_micros() as u64;
            let _ = recorder
                .connect_latency
                .lock()
                .unwrap()
                .record(micros.max(1));
            recorder.connected.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            let mut span = recorder.connect_span.lock().unwrap();
            *span = Some(span.map_or((started, now), |(first, _)| (first, now)));
            Some(socket)
        }
        _ => {
            recorder.connect_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A client's WebSocket.
pub type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(spec: &Spec) -> Result<Socket> {
    let rest = spec
        .url
        .strip_prefix("ws://")
        .context("only ws:// URLs are supported")?;
    let host = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = lookup_host(host)
        .await?
        .next()
        .ok_or_else(|| anyhow!("{host}: no address"))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(source) = spec.source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let gorilla = spec.target == crate::scenario::Target::Gorilla;
    let url = if gorilla {
        spec.url.clone()
    } else {
        format!("{}?token={}", spec.url, spec.token)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let (mut ws, _) = client_async_with_config(url, stream, Some(config)).await?;
    if let Some(room) = spec.room.as_ref().filter(|_| !gorilla) {
        let join = format!(r#"{{"type":"join","room":"{room}","history":0}}"#);
        ws.send(Message::Text(join.into())).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) if text.contains(r#""type":"joined""#) => break,
                Some(Ok(Message::Text(text))) if text.contains(r#""type":"error""#) => {
                    return Err(anyhow!("join refused: {text}"));
                }
                Some(Ok(_)) => {}
                _ => return Err(anyhow!("closed while joining")),
            }
        }
    }
    Ok(ws)
}

/// Runs a connected client through the measured phase, then closes it.
pub async fn run(
    spec: Spec,
    mut ws: Socket,
    mut phase: watch::Receiver<Option<Phase>>,
    recorder: Arc<Recorder>,
) {
    // Until the phase is known, only keep the connection alive (answer pings).
    let phase = loop {
        if let Some(phase) = *phase.borrow_and_update() {
            break phase;
        }
        tokio::select! {
            changed = phase.changed() => if changed.is_err() { return },
            frame = ws.next() => if !matches!(frame, Some(Ok(_))) {
                recorder.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            },
        }
    };
    let shard = &recorder.latency[spec.index % SHARDS];
    let padding = "x".repeat(spec.body.saturating_sub(40));
    // Senders are spread over the first interval so they do not all send at once.
    let offset = spec
        .send_every
        .map(|every| every.mul_f64((spec.index as f64 * 0.618_034) % 1.0));
    let mut next = offset.map(|offset| phase.start + offset);
    let start_us = phase.start_us;
    let mut sent = 0u64;
    loop {
        let due = next.filter(|at| *at < phase.end);
        tokio::select! {
            () = sleep_until(due.unwrap_or(phase.close)), if due.is_some() => {
                let at = due.unwrap();
                let scheduled = start_us + at.saturating_duration_since(phase.start).as_micros() as u64;
                let room = spec.room.as_deref().unwrap_or_default();
                let body = format!("{scheduled:016}:{:08}:{sent:010}:{padding}", spec.index);
                let command = match spec.target {
                    crate::scenario::Target::Chorus => {
                        format!(r#"{{"type":"send","room":"{room}","body":"{body}"}}"#)
                    }
                    crate::scenario::Target::Gorilla => body,
                };
                if ws.send(Message::Text(command.into())).await.is_err() {
                    recorder.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                sent += 1;
                recorder.sent_total.fetch_add(1, Ordering::Relaxed);
                next = Some(at + spec.send_every.unwrap_or_default());
            }
            () = sleep_until(phase.close) => break,
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) if spec.target == crate::scenario::Target::Gorilla => {
                    // The hub joins queued messages with newlines into one frame.
                    let now = unix_micros();
                    let mut histogram = shard.lock().unwrap();
                    for line in text.split('\n') {
                        if let Some(at) = line.get(..16).and_then(|t| t.parse::<u64>().ok()) {
                            let _ = histogram.record(now.saturating_sub(at).max(1));
                            recorder.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if let Some(at) = body_time(&text) {
                        let latency = unix_micros().saturating_sub(at).max(1);
                        let _ = shard.lock().unwrap().record(latency);
                        recorder.delivered.fetch_add(1, Ordering::Relaxed);
                    } else if text.contains(r#""type":"error""#) {
                        recorder.server_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    recorder.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            },
        }
    }
    if sent > 0 {
        let room = spec.room.clone().unwrap_or_default();
        *recorder.sent.lock().unwrap().entry(room).or_default() += sent;
    }
    let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// The scheduled send time in a `message` event's body, without parsing the JSON.
fn body_time(text: &str) -> Option<u64> {
    if !text.contains(r#""type":"message""#) {
        return None;
    }
    let start = text.find(r#""body":""#)? + 8;
    text.get(start..start + 16)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::body_time;

    #[test]
    fn reads_the_send_time_from_a_message_event() {
        let event = r#"{"type":"message","id":"x","room":"big","from":{"id":"u"},"ts":1,"body":"0001732380000123:00000007:0000000003:xxxx","seq":4}"#;
        assert_eq!(body_time(event), Some(1_732_380_000_123));
        assert_eq!(body_time(r#"{"type":"sent","body":"0001"}"#), None);
    }
}

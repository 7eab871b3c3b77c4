//! One simulated chat client: connect (from a chosen source address), join a
//! room, then send on a fixed schedule (open loop) and time every message it
//! receives from the scheduled send time carried in the body. In a reconnect
//! storm it also comes back when its node dies: to the next URL, resuming the
//! room after the last sequence it saw.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::{TcpSocket, lookup_host},
    sync::watch,
    time::{Instant, sleep, sleep_until, timeout},
};
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{Message, protocol::WebSocketConfig},
};

pub use crate::recorder::Recorder;
use crate::{
    recorder::SHARDS,
    scenario::Target,
    sequence::{Link, Stream},
    soak::{Ack, Soak},
    wire::{self, Incoming, Position},
};

/// Bound on connecting, upgrading and joining.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One client's settings.
pub struct Spec {
    /// Its index in the whole run.
    pub index: usize,
    /// Every target URL (`ws://host:port/path`); a reconnect moves to the next.
    pub urls: Vec<String>,
    /// The one it connects to first.
    pub url_index: usize,
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
    pub target: Target,
    /// Whether it comes back (and resumes) when its connection drops.
    pub reconnect: bool,
    /// Soak: how often it reconnects by itself, and does something besides sending.
    pub soak: Option<(Duration, Duration)>,
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
    /// Reconnect storm: when the coordinator kills the node, µs since the epoch.
    pub kill_us: Option<u64>,
}

/// A connected, joined client.
pub struct Connected {
    /// Its WebSocket.
    pub ws: Socket,
    /// Where it is in its room (Chorus).
    pub position: Option<Position>,
}

/// Connects and joins; returns the socket, or counts the failure.
pub async fn connect(spec: &Spec, recorder: &Recorder) -> Option<Connected> {
    let started = Instant::now();
    let url = &spec.urls[spec.url_index];
    match timeout(CONNECT_TIMEOUT, open(spec, url, None)).await {
        Ok(Ok((ws, joined))) => {
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
            Some(Connected {
                ws,
                position: joined.position,
            })
        }
        _ => {
            recorder.connect_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A client's WebSocket.
pub type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(spec: &Spec, url: &str, resume: Option<Position>) -> Result<(Socket, wire::Joined)> {
    let rest = url
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
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let upgrade = wire::upgrade_url(spec.target, url, &spec.token);
    let (mut ws, _) = client_async_with_config(upgrade, stream, Some(config)).await?;
    let joined = wire::handshake(
        &mut ws,
        spec.target,
        &spec.token,
        spec.room.as_deref(),
        resume,
    )
    .await?;
    Ok((ws, joined))
}

/// Why a connection's session ended.
enum Ended {
    /// The run is over.
    Closed,
    /// The connection broke or the server closed it.
    Dropped,
    /// Soak: the client's own reconnect was due.
    Churn,
}

/// The client's send schedule and what it has sent.
struct Schedule {
    /// The next scheduled send, if it sends.
    next: Option<Instant>,
    /// Sends made (numbering the bodies).
    number: u64,
    /// Messages sent, as the run counts them: when written, or (soak) once acknowledged.
    sent: u64,
    /// Body padding after the send time and the indices.
    padding: String,
    /// Soak: the client's own reconnect and its next action besides sending.
    soak: Option<Chatter>,
}

/// Soak: what a client does besides its schedule of sends.
struct Chatter {
    /// Its state (pending sends, side room, ...).
    state: Soak,
    /// When it reconnects by itself next.
    churn_at: Instant,
    /// When its next action is due.
    action_at: Instant,
    /// Its reconnect period.
    churn: Duration,
    /// Its action period.
    every: Duration,
}

/// Runs a connected client through the measured phase, then closes it.
pub async fn run(
    spec: Spec,
    connected: Connected,
    mut phase: watch::Receiver<Option<Phase>>,
    recorder: Arc<Recorder>,
) {
    let Connected {
        mut ws,
        mut position,
    } = connected;
    // Until the phase is known, only keep the connection alive (answer pings).
    let phase = loop {
        if let Some(phase) = *phase.borrow_and_update() {
            break phase;
        }
        tokio::select! {
            changed = phase.changed() => if changed.is_err() { return },
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) if wire::read(spec.target, &text) == Incoming::Ping => {
                    let _ = ws.send(Message::Text(wire::PONG.into())).await;
                }
                Some(Ok(_)) => {}
                _ => {
                    recorder.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        }
    };
    // Senders are spread over the first interval so they do not all send at once.
    let offset = spec
        .send_every
        .map(|every| every.mul_f64((spec.index as f64 * 0.618_034) % 1.0));
    let spread = (spec.index as f64 * 0.618_034) % 1.0;
    let mut schedule = Schedule {
        next: offset.map(|offset| phase.start + offset),
        number: 0,
        sent: 0,
        padding: "x".repeat(spec.body.saturating_sub(40)),
        soak: spec.soak.map(|(churn, every)| Chatter {
            state: Soak::new(spec.index, spec.room.clone().unwrap_or_default()),
            churn_at: phase.start + churn.mul_f64(spread),
            action_at: phase.start + every.mul_f64(spread),
            churn,
            every,
        }),
    };
    let mut url_index = spec.url_index;
    let mut reconnects = 0;
    loop {
        let link = Link {
            url_index,
            reconnects,
        };
        match session(
            &spec,
            &mut ws,
            &phase,
            &mut schedule,
            &mut position,
            &recorder,
            link,
        )
        .await
        {
            Ended::Closed => break,
            ended => {
                if let Ended::Churn = ended {
                    recorder.churned.fetch_add(1, Ordering::Relaxed);
                    let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
                } else {
                    recorder.dropped.fetch_add(1, Ordering::Relaxed);
                }
                if !spec.reconnect {
                    break;
                }
                match come_back(&spec, &mut url_index, position, &phase, &recorder).await {
                    Some(back) => {
                        reconnects += 1;
                        ws = back.ws;
                        position = back.position.or(position);
                    }
                    None => break,
                }
                if let Some(chatter) = &mut schedule.soak {
                    chatter.state.reconnected();
                    for frame in chatter.state.unacknowledged() {
                        recorder.resent.fetch_add(1, Ordering::Relaxed);
                        let _ = ws.send(Message::Text(frame.into())).await;
                    }
                }
            }
        }
    }
    let room = spec.room.clone().unwrap_or_default();
    if schedule.sent > 0 {
        *recorder
            .sent
            .lock()
            .unwrap()
            .entry(room.clone())
            .or_default() += schedule.sent;
    }
    if let Some(at) = position {
        recorder
            .ends
            .lock()
            .unwrap()
            .entry(room)
            .or_default()
            .push(at.seq);
    }
    let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// Sends on schedule and records deliveries until the run closes or the
/// connection drops.
async fn session(
    spec: &Spec,
    ws: &mut Socket,
    phase: &Phase,
    schedule: &mut Schedule,
    position: &mut Option<Position>,
    recorder: &Recorder,
    link: Link,
) -> Ended {
    let shard = &recorder.latency[spec.index % SHARDS];
    let room = spec.room.as_deref().unwrap_or_default();
    let mut stream = Stream {
        recorder,
        spec,
        link,
        room,
        into_connection: 0,
    };
    loop {
        let due = schedule.next.filter(|at| *at < phase.end);
        let churn = schedule
            .soak
            .as_ref()
            .map(|c| c.churn_at)
            .filter(|at| *at < phase.end);
        let action = schedule
            .soak
            .as_ref()
            .map(|c| c.action_at)
            .filter(|at| *at < phase.end);
        tokio::select! {
            () = sleep_until(due.unwrap_or(phase.close)), if due.is_some() => {
                let at = due.unwrap();
                let scheduled = phase.start_us + at.saturating_duration_since(phase.start).as_micros() as u64;
                let body = format!("{scheduled:016}:{:08}:{:010}:{}", spec.index, schedule.number, schedule.padding);
                let frame = match &mut schedule.soak {
                    Some(chatter) => chatter.state.send(schedule.number, &body),
                    None => wire::chat(spec.target, room, &body),
                };
                if ws.send(Message::Text(frame.into())).await.is_err() {
                    return Ended::Dropped;
                }
                schedule.number += 1;
                if schedule.soak.is_none() {
                    schedule.sent += 1;
                }
                recorder.sent_total.fetch_add(1, Ordering::Relaxed);
                schedule.next = Some(at + spec.send_every.unwrap_or_default());
            }
            () = sleep_until(churn.unwrap_or(phase.close)), if churn.is_some() => {
                let chatter = schedule.soak.as_mut().expect("a soak client");
                chatter.churn_at += chatter.churn;
                return Ended::Churn;
            }
            () = sleep_until(action.unwrap_or(phase.close)), if action.is_some() => {
                let chatter = schedule.soak.as_mut().expect("a soak client");
                chatter.action_at += chatter.every;
                for frame in chatter.state.action() {
                    if ws.send(Message::Text(frame.into())).await.is_err() {
                        return Ended::Dropped;
                    }
                }
            }
            () = sleep_until(phase.close) => return Ended::Closed,
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) if schedule.soak.as_mut().is_some_and(|c| c.state.reply(&text) != Ack::Other) => {
                    // A send was answered: acknowledged sends are the ones expected.
                    if text.contains(r#""type":"sent""#) {
                        schedule.sent += 1;
                    } else {
                        recorder.server_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Message::Text(text))) => match wire::read(spec.target, &text) {
                    Incoming::Messages(deliveries) => {
                        let now = unix_micros();
                        let mut histogram = shard.lock().unwrap();
                        for delivery in deliveries {
                            if let (Some(seq), Some(at)) = (delivery.seq, position.as_mut()) {
                                if !stream.next(at, seq) {
                                    continue;
                                }
                                if let Some(chatter) = &mut schedule.soak {
                                    chatter.state.delivered(seq);
                                }
                            }
                            if let Some(sent_us) = delivery.sent_us {
                                let _ = histogram.record(now.saturating_sub(sent_us).max(1));
                            }
                            recorder.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Incoming::Change { seq } => {
                        if let Some(at) = position.as_mut() {
                            stream.next(at, seq);
                        }
                    }
                    Incoming::Ping => {
                        if ws.send(Message::Text(wire::PONG.into())).await.is_err() {
                            return Ended::Dropped;
                        }
                    }
                    Incoming::Error => {
                        recorder.server_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Incoming::Other => {}
                },
                Some(Ok(_)) => {}
                _ => return Ended::Dropped,
            },
        }
    }
}

/// After a drop: tries the other URLs in turn until one takes the client back
/// into its room (resuming after `position`), or the run closes. The first
/// try skips ahead by the client's index, so the clients of a dead node spread
/// over all the survivors, as behind a load balancer.
async fn come_back(
    spec: &Spec,
    url_index: &mut usize,
    position: Option<Position>,
    phase: &Phase,
    recorder: &Recorder,
) -> Option<Connected> {
    let mut pause = Duration::from_millis(50);
    let urls = spec.urls.len();
    let mut step = 1 + spec.index % urls.saturating_sub(1).max(1);
    while Instant::now() < phase.close {
        *url_index = (*url_index + step) % urls;
        step = 1;
        let url = &spec.urls[*url_index];
        match timeout(CONNECT_TIMEOUT, open(spec, url, position)).await {
            Ok(Ok((ws, joined))) => {
                recorder.reconnected.fetch_add(1, Ordering::Relaxed);
                if joined.recovered {
                    recorder.recovered.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(kill_us) = phase.kill_us {
                    let back = unix_micros().saturating_sub(kill_us).max(1);
                    let _ = recorder.back_latency.lock().unwrap().record(back);
                }
                return Some(Connected {
                    ws,
                    // Same numbering: keep counting from what this client saw.
                    position: joined.position.map(|new| match position {
                        Some(old) if old.epoch == new.epoch => old,
                        _ => new,
                    }),
                });
            }
            _ => {
                recorder.reconnect_errors.fetch_add(1, Ordering::Relaxed);
                sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
    None
}

//! The life of one WebSocket connection, in one task.
//!
//! The task waits on four things at once: its turn to close (when the node
//! drains: the server hands it in), frames queued in the outbox (written as
//! one batch with one flush), frames from the client (decoded and handed to
//! the session), and the heartbeat. Every write is bounded by the write timeout, and cut short when
//! the outbox overflows meanwhile, so a client that stops reading is closed as
//! a slow consumer instead of holding anything up.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use bytes::Bytes;
use chorus_protocol::{
    Encoding, Limits, ServerEvent, Welcome, close, decode_json, decode_msgpack, unix_micros,
    websocket::{FrameError, Incoming, close_frame, opcode, server_frame},
};
use tokio::{
    net::TcpStream,
    time::{Instant, MissedTickBehavior, sleep_until, timeout},
};
use uuid::Uuid;

use crate::{
    auth::Identity,
    chat::{
        Chat,
        hub::ConnId,
        outbox::{Direct, Outbox, Queued},
        session::{Closing, Flow, Session},
        socket::{ReadError, Socket},
        users::UserLease,
    },
    config::Config,
    metrics::{CloseReason, Metrics},
};

/// Capacity (frames) a connection's batch buffer may keep between writes; a burst
/// larger than this is released after writing, so idle connections stay small.
const BATCH_KEEP: usize = 64;

/// Capacity (messages) the buffer of decoded client messages may keep between reads.
const INCOMING_KEEP: usize = 8;

/// Bound on sending a close frame to a client that may be gone.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The heartbeat's ping: a final ping frame with no payload.
static PING: Bytes = Bytes::from_static(&[0x80 | opcode::PING, 0]);

/// Who is connecting and how they want to be spoken to, decided before the upgrade.
pub struct Handshake {
    /// Node-local connection id.
    pub conn: ConnId,
    /// Connection id announced to the client.
    pub public_id: Uuid,
    /// The client's identity, when its token came with the upgrade.
    pub authed: Option<(Identity, UserLease)>,
    /// Negotiated encoding.
    pub encoding: Encoding,
    /// The client's TCP stream, for the flusher's writes, when the server
    /// shares it.
    pub stream: Option<Arc<TcpStream>>,
}

/// Serves one upgraded connection until it ends; `my_turn` resolves when the
/// node wants it closed (draining), and it then closes with 4000.
pub async fn run(
    chat: Arc<Chat>,
    mut socket: Socket,
    handshake: Handshake,
    my_turn: impl Future<Output = ()>,
) {
    let direct = handshake.stream.map(|stream| Direct {
        stream,
        flusher: chat.flusher(handshake.conn).clone(),
    });
    let outbox = Arc::new(Outbox::new(chat.config().outbox_bytes, direct));
    let config = chat.config();
    let (user, token_expires_at) = match &handshake.authed {
        Some((identity, _)) => (Some(identity.user.clone()), Some(identity.expires_at)),
        None => (None, None),
    };
    let auth_timeout_secs = user
        .is_none()
        .then(|| config.auth.auth_timeout.as_secs().max(1));
    let mut session = Session::new(
        chat.clone(),
        handshake.conn,
        handshake.authed,
        handshake.encoding,
        outbox.clone(),
    );
    session.reply(&ServerEvent::Welcome(&Welcome {
        node: config.node_id.clone(),
        conn: handshake.public_id,
        user,
        token_expires_at,
        auth_timeout_secs,
        encoding: handshake.encoding.name(),
        ping_interval_secs: config.ping_interval.as_secs(),
        pong_timeout_secs: config.pong_timeout.as_secs(),
        limits: Limits {
            max_frame_bytes: config.max_frame_bytes,
            max_body_bytes: config.max_body_bytes,
            max_rooms: config.max_rooms,
            sends_per_second: config.rate_limits.send.per_second,
            joins_per_second: config.rate_limits.join.per_second,
        },
    }));
    session.start().await;
    tracing::debug!("connection opened");
    let reason = drive(
        (config, chat.metrics()),
        &mut socket,
        &mut session,
        &outbox,
        my_turn,
    )
    .await;
    session.close();
    tracing::debug!(?reason, "connection closed");
    chat.metrics().connection_closed(reason);
}

async fn drive(
    (config, metrics): (&Config, &Metrics),
    socket: &mut Socket,
    session: &mut Session,
    outbox: &Outbox,
    my_turn: impl Future<Output = ()>,
) -> CloseReason {
    tokio::pin!(my_turn);
    let mut writer = Writer::default();
    let mut ping =
        tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pong_deadline: Option<Instant> = None;
    let mut batch = VecDeque::new();
    let mut incoming = Vec::new();
    // Both timers live as long as the connection and are only moved, so a
    // delivery's wake-up does not register and cancel timer entries.
    let expiry_timer = sleep_until(session.deadline().0);
    tokio::pin!(expiry_timer);
    let pong_timer = sleep_until(Instant::now() + config.pong_timeout);
    tokio::pin!(pong_timer);
    loop {
        // Authentication or token expiry: the session says when, and how to close.
        let (deadline, expiry) = session.deadline();
        if expiry_timer.deadline() != deadline {
            expiry_timer.as_mut().reset(deadline);
        }
        tokio::select! {
            () = &mut my_turn => {
                // Finish what is queued, then tell the client to go elsewhere.
                let going_away = Closing {
                    code: close::GOING_AWAY,
                    reason: "node draining; reconnect and resume",
                    label: CloseReason::Shutdown,
                };
                return Box::pin(finish(socket, outbox, &mut batch, going_away)).await;
            }
            () = outbox.ready() => {
                let Ok(head_written) = outbox.take(&mut batch) else {
                    Box::pin(send_close(socket, outbox, close::SLOW_CONSUMER, "too slow to keep up; reconnect")).await;
                    return CloseReason::SlowConsumer;
                };
                // A client that stops reading fills the outbox while the write
                // waits for it: close as soon as it overflows, not at the timeout.
                let written = tokio::select! {
                    written = timeout(config.write_timeout, writer.write(socket, &mut batch, head_written)) => written,
                    () = outbox.overflowed() => {
                        Box::pin(send_close(socket, outbox, close::SLOW_CONSUMER, "too slow to keep up; reconnect")).await;
                        return CloseReason::SlowConsumer;
                    }
                };
                match written {
                    Ok(Ok(())) => {
                        outbox.wrote();
                        writer.count(metrics);
                        if batch.capacity() > BATCH_KEEP {
                            batch = VecDeque::new();
                            writer = Writer::default();
                        }
                    }
                    Ok(Err(_)) => return CloseReason::Error,
                    Err(_) => return CloseReason::SlowConsumer,
                }
            }
            read = socket.read(&mut incoming) => {
                // Any bytes show the client is alive.
                pong_deadline = None;
                match read {
                    Ok(true) => {}
                    Ok(false) => return CloseReason::Normal,
                    Err(ReadError::Io(_)) => return CloseReason::Error,
                    Err(ReadError::Frame(error)) => return Box::pin(refuse_frames(socket, outbox, error)).await,
                }
                for message in incoming.drain(..) {
                    let flow = match message {
                        Incoming::Text(text) => {
                            metrics.bytes_received.inc_by(text.len() as u64);
                            dispatch(session, decode_json(&text)).await
                        }
                        Incoming::Binary(bytes) => {
                            metrics.bytes_received.inc_by(bytes.len() as u64);
                            dispatch(session, decode_msgpack(&bytes)).await
                        }
                        Incoming::Ping(payload) => {
                            // Through the queue: a frame may be half written.
                            outbox.push(server_frame(opcode::PONG, &payload));
                            Flow::Continue
                        }
                        // Pongs only prove liveness.
                        Incoming::Pong => Flow::Continue,
                        // The client closes: echo its close, as the RFC asks, and end.
                        Incoming::Close(code) => {
                            let echo = match code {
                                Some(code) => close_frame(code, ""),
                                None => server_frame(opcode::CLOSE, &[]),
                            };
                            if outbox.seal() {
                                let _ = timeout(CLOSE_TIMEOUT, socket.send(&echo)).await;
                            }
                            socket.shutdown().await;
                            return CloseReason::Normal;
                        }
                    };
                    if let Flow::Close(closing) = flow {
                        return Box::pin(finish(socket, outbox, &mut batch, closing)).await;
                    }
                }
                if incoming.capacity() > INCOMING_KEEP {
                    incoming = Vec::new();
                }
            }
            _ = ping.tick() => {
                if pong_deadline.is_none() {
                    let at = Instant::now() + config.pong_timeout;
                    pong_deadline = Some(at);
                    pong_timer.as_mut().reset(at);
                }
                // Through the queue, bounded by the write timeout like any frame.
                outbox.push(PING.clone());
            }
            () = &mut expiry_timer => return Box::pin(finish(socket, outbox, &mut batch, expiry)).await,
            () = &mut pong_timer, if pong_deadline.is_some() => {
                Box::pin(send_close(socket, outbox, close::HEARTBEAT_TIMEOUT, "no pong in time; reconnect")).await;
                return CloseReason::PingTimeout;
            }
        }
    }
}

async fn dispatch(
    session: &mut Session,
    command: Result<chorus_protocol::Command, chorus_protocol::CommandError>,
) -> Flow {
    match command {
        // Boxed: handling a command is rare next to idling, and its future is
        // large; inline it would sit in every idle connection's task.
        Ok(command) => Box::pin(session.handle(command)).await,
        Err(error) => session.refuse(error),
    }
}

/// Closes the connection: writes what is queued first (the error that explains
/// the close), then the close frame.
async fn finish(
    socket: &mut Socket,
    outbox: &Outbox,
    batch: &mut VecDeque<Queued>,
    closing: Closing,
) -> CloseReason {
    if let Ok(head_written) = outbox.take(batch) {
        let _ = timeout(CLOSE_TIMEOUT, socket.write(batch, head_written)).await;
    }
    send_close(socket, outbox, closing.code, closing.reason).await;
    closing.label
}

/// Writes batches and keeps what the metrics need from the last one.
#[derive(Default)]
struct Writer {
    /// Bytes of the last batch (whole frames).
    bytes: u64,
    /// Publication times (µs) of the live messages in the last batch.
    published: Vec<u64>,
}

impl Writer {
    /// Writes a batch of frames: vectored writes straight from the shared frames.
    async fn write(
        &mut self,
        socket: &mut Socket,
        batch: &mut VecDeque<Queued>,
        head_written: usize,
    ) -> std::io::Result<()> {
        self.bytes = 0;
        self.published.clear();
        for queued in batch.iter() {
            self.bytes += queued.frame.len() as u64;
            if queued.published_us != 0 {
                self.published.push(queued.published_us);
            }
        }
        // The flusher sent (and counted) the first frame's start.
        self.bytes -= head_written as u64;
        socket.write(batch, head_written).await
    }

    /// Counts the last batch: bytes sent, and each live message's delivery latency.
    fn count(&self, metrics: &Metrics) {
        metrics.bytes_sent.inc_by(self.bytes);
        if self.published.is_empty() {
            return;
        }
        let now = unix_micros();
        for &published in &self.published {
            let micros = now.saturating_sub(published);
            metrics.delivery_latency.observe(micros as f64 / 1e6);
        }
    }
}

/// Closes a connection whose client broke a framing rule or sent a message
/// over `max_frame_bytes`, with the close code that says which.
async fn refuse_frames(socket: &mut Socket, outbox: &Outbox, error: FrameError) -> CloseReason {
    match error {
        FrameError::TooBig => {
            send_close(
                socket,
                outbox,
                close::MESSAGE_TOO_BIG,
                "frame exceeds max_frame_bytes",
            )
            .await;
            CloseReason::FrameTooLarge
        }
        FrameError::InvalidUtf8 => {
            send_close(
                socket,
                outbox,
                error.close_code(),
                "text is not valid UTF-8",
            )
            .await;
            CloseReason::Error
        }
        FrameError::Protocol(rule) => {
            send_close(socket, outbox, error.close_code(), rule).await;
            CloseReason::Error
        }
    }
}

/// Sends a close frame, then waits (bounded) for the client's close before the
/// TCP connection is dropped: dropping it at once could make the client's kernel
/// discard the unread close frame when the client writes anything meanwhile.
async fn send_close(socket: &mut Socket, outbox: &Outbox, code: u16, reason: &str) {
    let frame = close_frame(code, reason);
    let boundary = outbox.seal();
    let _ = timeout(CLOSE_TIMEOUT, async {
        if boundary && socket.send(&frame).await.is_ok() {
            let mut incoming = Vec::new();
            while let Ok(true) = socket.read(&mut incoming).await {
                if incoming.iter().any(|m| matches!(m, Incoming::Close(_))) {
                    break;
                }
                incoming.clear();
            }
        }
    })
    .await;
    socket.shutdown().await;
}

//! The life of one WebSocket connection, in one task.
//!
//! The task waits on four things at once: its turn to close (when the node
//! drains: the server hands it in), frames queued in the outbox (written as
//! one batch with one flush), frames from the client (decoded and handed to
//! the session), and the heartbeat. Every write is bounded by the write timeout, and cut short when
//! the outbox overflows meanwhile, so a client that stops reading is closed as
//! a slow consumer instead of holding anything up.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use chorus_protocol::{
    Encoding, Limits, ServerEvent, Welcome, close, decode_json, decode_msgpack, unix_micros,
};
use futures_util::SinkExt;
use tokio::time::{Instant, MissedTickBehavior, sleep_until, timeout};
use uuid::Uuid;

use crate::{
    auth::Identity,
    chat::{
        Chat,
        hub::ConnId,
        outbox::{Outbox, Queued, frame_len},
        session::{Closing, Flow, Session},
        users::UserLease,
    },
    config::Config,
    metrics::{CloseReason, Metrics},
};

/// Capacity (frames) a connection's batch buffer may keep between writes; a burst
/// larger than this is released after writing, so idle connections stay small.
const BATCH_KEEP: usize = 64;

/// Bound on sending a close frame to a client that may be gone.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

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
}

/// Serves one upgraded connection until it ends; `my_turn` resolves when the
/// node wants it closed (draining), and it then closes with 4000.
pub async fn run(
    chat: Arc<Chat>,
    mut socket: WebSocket,
    handshake: Handshake,
    my_turn: impl Future<Output = ()>,
) {
    let outbox = Arc::new(Outbox::new(chat.config().outbox_bytes));
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
    socket: &mut WebSocket,
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
                if outbox.take(&mut batch).is_err() {
                    Box::pin(send_close(socket, close::SLOW_CONSUMER, "too slow to keep up; reconnect")).await;
                    return CloseReason::SlowConsumer;
                }
                // A client that stops reading fills the outbox while the write
                // waits for it: close as soon as it overflows, not at the timeout.
                let written = tokio::select! {
                    written = timeout(config.write_timeout, writer.write(socket, &mut batch)) => written,
                    () = outbox.overflowed() => {
                        Box::pin(send_close(socket, close::SLOW_CONSUMER, "too slow to keep up; reconnect")).await;
                        return CloseReason::SlowConsumer;
                    }
                };
                match written {
                    Ok(Ok(())) => {
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
            frame = socket.recv() => {
                // Any frame shows the client is alive.
                pong_deadline = None;
                match frame {
                    None => return CloseReason::Normal,
                    Some(Err(error)) => return Box::pin(read_failed(socket, error)).await,
                    Some(Ok(Message::Text(text))) => {
                        metrics.bytes_received.inc_by(text.len() as u64);
                        let flow = dispatch(session, decode_json(text.as_str())).await;
                        if let Flow::Close(closing) = flow {
                            return Box::pin(finish(socket, outbox, &mut batch, closing)).await;
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        metrics.bytes_received.inc_by(bytes.len() as u64);
                        let flow = dispatch(session, decode_msgpack(&bytes)).await;
                        if let Flow::Close(closing) = flow {
                            return Box::pin(finish(socket, outbox, &mut batch, closing)).await;
                        }
                    }
                    // Pongs only prove liveness; pings are answered by the WebSocket layer;
                    // a close is echoed by it and the stream then ends.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => {}
                }
            }
            _ = ping.tick() => {
                if pong_deadline.is_none() {
                    let at = Instant::now() + config.pong_timeout;
                    pong_deadline = Some(at);
                    pong_timer.as_mut().reset(at);
                }
                if timeout(config.write_timeout, socket.send(Message::Ping(Default::default()))).await.is_err() {
                    return CloseReason::SlowConsumer;
                }
            }
            () = &mut expiry_timer => return Box::pin(finish(socket, outbox, &mut batch, expiry)).await,
            () = &mut pong_timer, if pong_deadline.is_some() => {
                Box::pin(send_close(socket, close::HEARTBEAT_TIMEOUT, "no pong in time; reconnect")).await;
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
    socket: &mut WebSocket,
    outbox: &Outbox,
    batch: &mut VecDeque<Queued>,
    closing: Closing,
) -> CloseReason {
    if outbox.take(batch).is_ok() {
        let _ = timeout(CLOSE_TIMEOUT, Writer::default().write(socket, batch)).await;
    }
    send_close(socket, closing.code, closing.reason).await;
    closing.label
}

/// Writes batches and keeps what the metrics need from the last one.
#[derive(Default)]
struct Writer {
    /// Payload bytes of the last batch.
    bytes: u64,
    /// Publication times (µs) of the live messages in the last batch.
    published: Vec<u64>,
}

impl Writer {
    /// Writes a batch of frames with a single flush at the end.
    async fn write(
        &mut self,
        socket: &mut WebSocket,
        batch: &mut VecDeque<Queued>,
    ) -> Result<(), axum::Error> {
        self.bytes = 0;
        self.published.clear();
        while let Some(queued) = batch.pop_front() {
            self.bytes += frame_len(&queued.frame) as u64;
            if queued.published_us != 0 {
                self.published.push(queued.published_us);
            }
            socket.feed(queued.frame).await?;
        }
        socket.flush().await
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

async fn read_failed(socket: &mut WebSocket, error: axum::Error) -> CloseReason {
    let too_big = error
        .into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    if too_big {
        send_close(
            socket,
            close::MESSAGE_TOO_BIG,
            "frame exceeds max_frame_bytes",
        )
        .await;
        CloseReason::FrameTooLarge
    } else {
        CloseReason::Error
    }
}

/// Sends a close frame, then waits (bounded) for the client's close before the
/// TCP connection is dropped: dropping it at once could make the client's kernel
/// discard the unread close frame when the client writes anything meanwhile.
async fn send_close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = timeout(CLOSE_TIMEOUT, async {
        if socket.send(Message::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(frame)) = socket.recv().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        }
    })
    .await;
}

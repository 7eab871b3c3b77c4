//! The life of one WebSocket connection, in one task.
//!
//! The task waits on four things at once: the node starting to close its
//! connections (when it drains), frames queued in the outbox that the flusher
//! left to it (written as one batch with one flush), frames from the client
//! (decoded and handed to the session), and one timer for every deadline
//! (heartbeat, pong, authentication or token expiry, its turn in the drain).
//! Every write is bounded by the write timeout, and cut short when the outbox
//! overflows meanwhile, so a client that stops reading is closed as a slow
//! consumer instead of holding anything up.
//!
//! The task is what an idle connection costs, so the rarely taken paths
//! (writing, handling commands, closing) are boxed futures: inline, their
//! state would sit in every connection's task.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use bytes::Bytes;
use chorus_protocol::{
    Encoding, Limits, ServerEvent, Welcome, close, decode_json, decode_msgpack, unix_micros,
    websocket::{FrameError, Incoming, close_frame, opcode, server_frame},
};
use tokio::{
    net::TcpStream,
    time::{Instant, sleep_until, timeout},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    auth::Identity,
    chat::{
        Chat,
        hub::ConnId,
        outbox::{Direct, Outbox, Overflowed, Queued},
        session::{Closing, Flow, Session},
        socket::{ReadError, Socket},
        users::UserLease,
    },
    metrics::{CloseReason, Metrics},
};

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
    /// When the drain closes this connection.
    pub turn: Turn,
}

/// When the node wants this connection closed (it drains): at `delay` after
/// `closing` is cancelled, so the node's clients do not all leave at once.
pub struct Turn {
    /// Cancelled when the node starts closing its connections.
    pub closing: CancellationToken,
    /// This connection's place in the drain window.
    pub delay: Duration,
}

/// Serves one upgraded connection until it ends; when its [`Turn`] comes it
/// closes with 4000. `handshake` is boxed: the server's task holds it until
/// the upgrade completes, and would keep its room for the connection's life.
///
/// Not an `async fn`: everything the connection keeps lives once, in the
/// returned future's [`Connection`], rather than once as arguments and again
/// as locals (every idle connection pays for the size of this future).
#[allow(
    clippy::boxed_local,
    reason = "the caller's task keeps a box's room until the upgrade, not a handshake's"
)]
pub fn run(
    chat: Arc<Chat>,
    socket: Socket,
    handshake: Box<Handshake>,
) -> impl Future<Output = ()> + Send {
    let mut connection = Connection::open(chat, socket, *handshake);
    async move { connection.serve().await }
}

/// What one connection keeps while it lives, borrowed by its loop.
struct Connection {
    /// The node's shared state.
    chat: Arc<Chat>,
    /// The client's WebSocket.
    socket: Socket,
    /// The client's authentication, rooms and rate limits.
    session: Session,
    /// Frames queued for the client (shared with the fan-out and the flusher).
    outbox: Arc<Outbox>,
    /// When the drain closes this connection.
    turn: Turn,
    /// The next heartbeat ping.
    next_ping: Instant,
    /// When a client that sent nothing since the last ping is given up.
    pong_deadline: Option<Instant>,
    /// When the drain closes this connection, once it is closing.
    turn_at: Option<Instant>,
}

impl Connection {
    /// The connection's state after the upgrade; queues the `welcome`.
    fn open(chat: Arc<Chat>, socket: Socket, handshake: Handshake) -> Self {
        let direct = handshake.stream.map(|stream| Direct {
            stream,
            flusher: chat.flusher(handshake.conn).clone(),
        });
        let outbox = Arc::new(Outbox::new(chat.config().outbox_bytes, direct));
        let (user, token_expires_at) = match &handshake.authed {
            Some((identity, _)) => (Some(identity.user.clone()), Some(identity.expires_at)),
            None => (None, None),
        };
        let session = Session::new(
            chat.clone(),
            (handshake.conn, handshake.public_id),
            handshake.authed,
            handshake.encoding,
            outbox.clone(),
        );
        let config = chat.config();
        let auth_timeout_secs = user
            .is_none()
            .then(|| config.auth.auth_timeout.as_secs().max(1));
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
        let next_ping = Instant::now() + config.ping_interval;
        Self {
            chat,
            socket,
            session,
            outbox,
            turn: handshake.turn,
            next_ping,
            pong_deadline: None,
            turn_at: None,
        }
    }

    /// Serves the connection until it ends, then counts how it ended.
    async fn serve(&mut self) {
        self.session.start().await;
        tracing::debug!("connection opened");
        let reason = self.drive().await;
        self.session.user_event("user.disconnected").await;
        self.session.close();
        tracing::debug!(?reason, "connection closed");
        self.chat.metrics().connection_closed(reason);
    }

    /// The connection's loop: waits on its turn to close, frames queued in the
    /// outbox, frames from the client, and one timer for every deadline
    /// (heartbeat, pong, authentication or token expiry, the drain's turn).
    async fn drive(&mut self) -> CloseReason {
        let closing = self.turn.closing.clone();
        let closing = closing.cancelled();
        tokio::pin!(closing);
        // One timer for the connection's life, only moved, so a delivery's
        // wake-up neither registers nor cancels timer entries.
        let timer = sleep_until(self.next_deadline());
        tokio::pin!(timer);
        loop {
            let next = self.next_deadline();
            if timer.deadline() != next {
                timer.as_mut().reset(next);
            }
            tokio::select! {
                () = &mut closing, if self.turn_at.is_none() => {
                    self.turn_at = Some(Instant::now() + self.turn.delay);
                }
                () = self.outbox.ready() => {
                    // Boxed: rare next to idling (the flusher writes live
                    // frames), and it would sit in every idle connection's task.
                    if let Some(reason) = Box::pin(self.write()).await {
                        return reason;
                    }
                }
                read = self.socket.read() => {
                    // Any bytes show the client is alive.
                    self.pong_deadline = None;
                    let incoming = match read {
                        Ok(Some(incoming)) => incoming,
                        Ok(None) => return CloseReason::Normal,
                        Err(ReadError::Io(_)) => return CloseReason::Error,
                        Err(ReadError::Frame(error)) => return Box::pin(refuse_frames(&mut self.socket, &self.outbox, error)).await,
                    };
                    if let Some(reason) = Box::pin(self.handle_incoming(incoming)).await {
                        return reason;
                    }
                }
                () = &mut timer => {
                    if let Some(reason) = Box::pin(self.on_timer()).await {
                        return reason;
                    }
                }
            }
        }
    }

    /// The earliest of the connection's deadlines.
    fn next_deadline(&self) -> Instant {
        let (deadline, _) = self.session.deadline();
        [Some(self.next_ping), self.pong_deadline, self.turn_at]
            .into_iter()
            .flatten()
            .fold(deadline, Instant::min)
    }

    /// The timer fired: acts on the deadlines that passed; `Some` when the
    /// connection must end.
    async fn on_timer(&mut self) -> Option<CloseReason> {
        let (deadline, expiry) = self.session.deadline();
        let now = Instant::now();
        if self.turn_at.is_some_and(|at| at <= now) {
            // Finish what is queued, then tell the client to go elsewhere.
            let going_away = Closing {
                code: close::GOING_AWAY,
                reason: "node draining; reconnect and resume",
                label: CloseReason::Shutdown,
            };
            return Some(finish(&mut self.socket, &self.outbox, going_away).await);
        }
        if deadline <= now {
            // Authentication or token expiry: the session says how to close.
            return Some(finish(&mut self.socket, &self.outbox, expiry).await);
        }
        if self.pong_deadline.is_some_and(|at| at <= now) {
            let reason = "no pong in time; reconnect";
            send_close(
                &mut self.socket,
                &self.outbox,
                close::HEARTBEAT_TIMEOUT,
                reason,
            )
            .await;
            return Some(CloseReason::PingTimeout);
        }
        if self.next_ping <= now {
            let config = self.chat.config();
            self.next_ping = now + config.ping_interval;
            if self.pong_deadline.is_none() {
                self.pong_deadline = Some(now + config.pong_timeout);
            }
            // Through the queue, bounded by the write timeout like any frame.
            self.outbox.push(PING.clone());
        }
        None
    }

    /// Writes what the outbox holds; `Some` when the connection must end.
    async fn write(&mut self) -> Option<CloseReason> {
        let chat = self.chat.clone();
        let (config, metrics) = (chat.config(), chat.metrics());
        // The queue's buffer, given back to the outbox at the next take: an
        // idle connection keeps none.
        let mut batch = VecDeque::new();
        let head_written = match self.outbox.take(&mut batch) {
            Ok(head_written) => head_written,
            Err(Overflowed(code)) => return Some(self.close_overflowed(code).await),
        };
        // A client that stops reading fills the outbox while the write
        // waits for it: close as soon as it overflows, not at the timeout.
        let mut writer = Writer::default();
        let written = tokio::select! {
            written = timeout(config.write_timeout, writer.write(&mut self.socket, &mut batch, head_written)) => written,
            () = self.outbox.overflowed() => {
                let code = self.outbox.close_code();
                return Some(self.close_overflowed(code).await);
            }
        };
        match written {
            Ok(Ok(())) => {
                self.outbox.wrote();
                writer.count(metrics);
                None
            }
            Ok(Err(_)) => Some(CloseReason::Error),
            Err(_) => Some(CloseReason::SlowConsumer),
        }
    }

    /// Closes a connection whose outbox overflowed (`None`) or was closed
    /// by the server API with `code`.
    async fn close_overflowed(&mut self, code: Option<u16>) -> CloseReason {
        let (code, reason, why) = match code {
            None => (
                close::SLOW_CONSUMER,
                "too slow to keep up; reconnect",
                CloseReason::SlowConsumer,
            ),
            Some(close::TOKEN_REVOKED) => (
                close::TOKEN_REVOKED,
                "your tokens were revoked",
                CloseReason::Disconnected,
            ),
            Some(code) => (
                code,
                "disconnected by the application",
                CloseReason::Disconnected,
            ),
        };
        send_close(&mut self.socket, &self.outbox, code, reason).await;
        why
    }

    /// Handles the client's decoded messages; `Some` when the connection must end.
    async fn handle_incoming(&mut self, incoming: Vec<Incoming>) -> Option<CloseReason> {
        // One reference count, not a copy of every metric handle.
        let chat = self.chat.clone();
        let metrics = chat.metrics();
        for message in incoming {
            let flow = match message {
                Incoming::Text(text) => {
                    metrics.bytes_received.inc_by(text.len() as u64);
                    dispatch(&mut self.session, decode_json(&text)).await
                }
                Incoming::Binary(bytes) => {
                    metrics.bytes_received.inc_by(bytes.len() as u64);
                    dispatch(&mut self.session, decode_msgpack(&bytes)).await
                }
                Incoming::Ping(payload) => {
                    // Through the queue: a frame may be half written.
                    self.outbox.push(server_frame(opcode::PONG, &payload));
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
                    if self.outbox.seal() {
                        let _ = timeout(CLOSE_TIMEOUT, self.socket.send(&echo)).await;
                    }
                    self.socket.shutdown().await;
                    return Some(CloseReason::Normal);
                }
            };
            if let Flow::Close(closing) = flow {
                return Some(finish(&mut self.socket, &self.outbox, closing).await);
            }
        }
        None
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
async fn finish(socket: &mut Socket, outbox: &Outbox, closing: Closing) -> CloseReason {
    let mut batch = VecDeque::new();
    if let Ok(head_written) = outbox.take(&mut batch) {
        let _ = timeout(CLOSE_TIMEOUT, socket.write(&mut batch, head_written)).await;
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
            while let Ok(Some(incoming)) = socket.read().await {
                if incoming.iter().any(|m| matches!(m, Incoming::Close(_))) {
                    break;
                }
            }
        }
    })
    .await;
    socket.shutdown().await;
}

//! One client's chat state and the handling of its commands.
//!
//! Commands of one connection are handled in order, one at a time. Replies go
//! through the same outbox as room messages, so their order is the order of
//! events: `joined` precedes the room's messages, `left` follows the last one.
//! Every refused command is answered with an `error` and costs the connection a
//! flood strike; a connection out of strikes is closed.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chorus_protocol::{
    ChangeKind, Command, CommandError, Encoding, ErrorCode, ErrorReply, RoomName, ServerEvent,
    close,
};
use tokio::time::Instant;

mod changes;
mod direct;
mod drafts;
mod presence;
mod receipts;
mod rooms;
mod status;
mod typing;

use crate::{
    auth::{Access, AuthError, Identity},
    hub::{ConnId, ws_message},
    limits::Bucket,
    metrics::CloseReason,
    node::Node,
    outbox::Outbox,
    users::UserLease,
};

/// What the connection should do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Close the connection.
    Close(Closing),
}

/// How a connection closes: the close frame and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    /// WebSocket close code (see `chorus_protocol::close`).
    pub code: u16,
    /// Close reason text for humans.
    pub reason: &'static str,
    /// The `reason` label of the closed-connections metric.
    pub label: CloseReason,
}

const fn closing(code: u16, reason: &'static str, label: CloseReason) -> Flow {
    Flow::Close(Closing {
        code,
        reason,
        label,
    })
}

/// An authenticated user on this connection.
struct Authed {
    /// Who, what they may do, until when.
    identity: Identity,
    /// The user's node-wide entry: connection count and shared buckets.
    lease: UserLease,
}

/// A connected client's chat state.
pub struct Session {
    /// The node serving the client.
    node: Arc<Node>,
    /// This connection's id within the node.
    conn: ConnId,
    /// The user, once authenticated.
    authed: Option<Authed>,
    /// When the connection must have authenticated by.
    auth_deadline: Instant,
    /// How events are encoded for this client.
    encoding: Encoding,
    /// Where this client's frames go.
    outbox: Arc<Outbox>,
    /// Rooms joined (bounded by `max_rooms`).
    rooms: HashSet<RoomName>,
    /// The shard room of this user's channel, once subscribed (see `direct`).
    personal: Option<RoomName>,
    /// Rooms where this connection's typing start was last relayed, and when
    /// (a subset of `rooms`).
    typing: HashMap<RoomName, Instant>,
    /// This connection's sends.
    sends: Bucket,
    /// This connection's joins and leaves.
    joins: Bucket,
    /// Refused commands left before the connection counts as a flood.
    strikes: Bucket,
    /// Set when a refusal found no strike left.
    flooded: bool,
}

impl Session {
    /// A session with no rooms yet; `authed` when the token came with the upgrade.
    pub fn new(
        node: Arc<Node>,
        conn: ConnId,
        authed: Option<(Identity, UserLease)>,
        encoding: Encoding,
        outbox: Arc<Outbox>,
    ) -> Self {
        let rates = node.config.rate_limits;
        Self {
            auth_deadline: Instant::now() + node.config.auth.auth_timeout,
            node,
            conn,
            authed: authed.map(|(identity, lease)| Authed { identity, lease }),
            encoding,
            outbox,
            rooms: HashSet::new(),
            typing: HashMap::new(),
            personal: None,
            sends: Bucket::new(rates.send),
            joins: Bucket::new(rates.join),
            strikes: rates.strikes(),
            flooded: false,
        }
    }

    /// Work after the welcome: a connection authenticated by its upgrade joins
    /// its user's own channel.
    pub async fn start(&mut self) {
        self.enter_personal().await;
    }

    /// When the connection must close unless something changes, and how.
    pub fn deadline(&self) -> (Instant, Closing) {
        match &self.authed {
            None => (
                self.auth_deadline,
                Closing {
                    code: close::AUTH_TIMEOUT,
                    reason: "no auth in time; reconnect and authenticate at once",
                    label: CloseReason::AuthTimeout,
                },
            ),
            Some(authed) => (
                instant_of(authed.identity.expires_at),
                Closing {
                    code: close::TOKEN_EXPIRED,
                    reason: "token expired; reconnect with a new token",
                    label: CloseReason::TokenExpired,
                },
            ),
        }
    }

    /// Queues an event for this client.
    pub fn reply(&self, event: &ServerEvent<'_>) {
        self.outbox.push(ws_message(self.encoding.encode(event)));
    }

    /// Answers a command that did not decode.
    pub fn refuse(&mut self, error: CommandError) -> Flow {
        self.node.metrics.commands_received.inc();
        self.error(error.code, error.detail, error.reference, None);
        self.flow()
    }

    fn error(
        &mut self,
        code: ErrorCode,
        message: String,
        reference: Option<String>,
        room: Option<&RoomName>,
    ) {
        self.error_after(code, message, reference, room, None);
    }

    fn error_after(
        &mut self,
        code: ErrorCode,
        message: String,
        reference: Option<String>,
        room: Option<&RoomName>,
        retry_after: Option<Duration>,
    ) {
        self.node.metrics.command_errors.inc();
        if self.strikes.take().is_err() {
            self.flooded = true;
        }
        self.reply(&ServerEvent::Error(&ErrorReply {
            code,
            message,
            reference,
            room: room.cloned(),
            retry_after_ms: retry_after.map(|d| d.as_millis().max(1) as u64),
        }));
    }

    fn flow(&self) -> Flow {
        if self.flooded {
            closing(
                close::FLOODING,
                "too many refused commands; back off before reconnecting",
                CloseReason::Flooding,
            )
        } else {
            Flow::Continue
        }
    }

    /// Handles one decoded command.
    pub async fn handle(&mut self, command: Command) -> Flow {
        self.node.metrics.commands_received.inc();
        let flow = match command {
            Command::Ping { reference } => {
                self.reply(&ServerEvent::Pong {
                    reference: reference.as_deref(),
                });
                Flow::Continue
            }
            Command::Auth { token, reference } => {
                let flow = self.authenticate(&token, reference);
                self.enter_personal().await;
                flow
            }
            _ if self.authed.is_none() => {
                self.error(
                    ErrorCode::Unauthenticated,
                    "send auth with a token first".into(),
                    reference_of(&command),
                    None,
                );
                Flow::Continue
            }
            Command::Refresh { token, reference } => {
                self.refresh(&token, reference);
                Flow::Continue
            }
            Command::Join {
                room,
                resume,
                history,
                reference,
            } => {
                self.join(room, resume, history, reference).await;
                Flow::Continue
            }
            Command::History {
                room,
                before,
                limit,
                reference,
            } => {
                self.history(room, before, limit, reference).await;
                Flow::Continue
            }
            Command::Typing {
                room,
                active,
                reference,
            } => {
                self.typing(room, active, reference).await;
                Flow::Continue
            }
            Command::Read {
                room,
                seq,
                reference,
            } => {
                self.mark_read(room, seq, reference).await;
                Flow::Continue
            }
            Command::Dm { user, reference } => {
                self.direct(user, reference).await;
                Flow::Continue
            }
            Command::Draft {
                room,
                text,
                reference,
            } => {
                self.save_draft(room, text, reference).await;
                Flow::Continue
            }
            Command::Drafts { reference } => {
                self.list_drafts(reference).await;
                Flow::Continue
            }
            Command::Presence { room, reference } => {
                self.list_presence(room, reference).await;
                Flow::Continue
            }
            Command::Receipts { room, reference } => {
                self.receipts(room, reference).await;
                Flow::Continue
            }
            Command::Leave { room, reference } => {
                self.leave(room, reference);
                Flow::Continue
            }
            Command::Send {
                room,
                body,
                client_msg_id,
                mentions,
                reference,
            } => {
                self.send(room, body, client_msg_id, mentions, reference)
                    .await;
                Flow::Continue
            }
            Command::Edit {
                room,
                target,
                body,
                reference,
            } => {
                let kind = ChangeKind::Edit(body);
                self.change_message(room, target, kind, reference).await;
                Flow::Continue
            }
            Command::Delete {
                room,
                target,
                reference,
            } => {
                let kind = ChangeKind::Delete;
                self.change_message(room, target, kind, reference).await;
                Flow::Continue
            }
            Command::React {
                room,
                target,
                emoji,
                add,
                reference,
            } => {
                let kind = if add {
                    ChangeKind::React(emoji)
                } else {
                    ChangeKind::Unreact(emoji)
                };
                self.change_message(room, target, kind, reference).await;
                Flow::Continue
            }
            Command::Status { away, reference } => {
                self.set_status(away, reference).await;
                Flow::Continue
            }
        };
        match flow {
            Flow::Continue => self.flow(),
            close => close,
        }
    }

    fn authenticate(&mut self, token: &str, reference: Option<String>) -> Flow {
        if self.authed.is_some() {
            self.error(
                ErrorCode::AlreadyAuthenticated,
                "already authenticated; use refresh to replace the token".into(),
                reference,
                None,
            );
            return Flow::Continue;
        }
        let identity = match self.node.verify(token) {
            Ok(identity) => identity,
            Err(error) => {
                let (code, close_code, label) = match error {
                    AuthError::Expired => (
                        ErrorCode::TokenExpired,
                        close::TOKEN_EXPIRED,
                        CloseReason::TokenExpired,
                    ),
                    _ => (
                        ErrorCode::InvalidToken,
                        close::UNAUTHORIZED,
                        CloseReason::Unauthorized,
                    ),
                };
                self.error(code, error.to_string(), reference, None);
                return closing(close_code, "authentication failed", label);
            }
        };
        let Some(lease) = self.node.users.acquire(&identity.user.id) else {
            self.node.metrics.refused("too_many_connections");
            let message = format!(
                "this user already has {} connections to this node",
                self.node.config.max_connections_per_user
            );
            self.error(ErrorCode::TooManyConnections, message, reference, None);
            return closing(
                close::TOO_MANY_CONNECTIONS,
                "too many connections for this user",
                CloseReason::TooManyConnections,
            );
        };
        self.reply(&ServerEvent::Authenticated {
            user: &identity.user,
            token_expires_at: identity.expires_at,
            reference: reference.as_deref(),
        });
        tracing::Span::current().record("user", identity.user.id.as_str());
        self.authed = Some(Authed { identity, lease });
        Flow::Continue
    }

    fn refresh(&mut self, token: &str, reference: Option<String>) {
        let identity = match self.node.verify(token) {
            Ok(identity) => identity,
            Err(error) => {
                let code = match error {
                    AuthError::Expired => ErrorCode::TokenExpired,
                    _ => ErrorCode::InvalidToken,
                };
                return self.error(code, error.to_string(), reference, None);
            }
        };
        let authed = self.authed.as_mut().expect("refresh needs authentication");
        if identity.user.id != authed.identity.user.id {
            return self.error(
                ErrorCode::InvalidToken,
                "the new token is for another user".into(),
                reference,
                None,
            );
        }
        authed.identity = identity;
        let grants = authed.identity.grants.clone();
        let user = authed.identity.user.id.clone();
        self.node.hub.update_user_grants(&user, self.conn, grants);
        // The new claims may take rooms away: leave those, saying why.
        let lost: Vec<RoomName> = self
            .rooms
            .iter()
            .filter(|room| self.access(room) == Access::Denied)
            .cloned()
            .collect();
        for room in lost {
            self.stop_typing(&room);
            self.presence_exit(&room);
            self.rooms.remove(&room);
            self.node.hub.remove(&room, self.conn);
            self.reply(&ServerEvent::Left {
                room: &room,
                reference: None,
                reason: Some("forbidden"),
            });
            self.node.subscriptions.release(&room);
        }
        let expires_at = self.authed.as_ref().map_or(0, |a| a.identity.expires_at);
        self.reply(&ServerEvent::Refreshed {
            token_expires_at: expires_at,
            reference: reference.as_deref(),
        });
    }

    fn access(&self, room: &RoomName) -> Access {
        match &self.authed {
            None => Access::Denied,
            Some(authed) => self.node.config.auth.policy.access(
                &authed.identity.user.id,
                &authed.identity.grants,
                room,
            ),
        }
    }

    /// The authenticated user's id (commands past authentication only).
    fn user_id(&self) -> &str {
        &self
            .authed
            .as_ref()
            .expect("commands past auth have a user")
            .identity
            .user
            .id
    }

    /// Refuses with `not_joined` (saying `what` to do) unless this connection
    /// is in `room`; `true` when it is.
    fn in_room(&mut self, room: &RoomName, what: &str, reference: &Option<String>) -> bool {
        if self.rooms.contains(room) {
            return true;
        }
        let message = format!("join the room before {what}");
        self.error(ErrorCode::NotJoined, message, reference.clone(), Some(room));
        false
    }

    /// Refuses with `forbidden` unless the token may post to `room`.
    fn may_post(&mut self, room: &RoomName, reference: &Option<String>) -> bool {
        if self.access(room) == Access::ReadWrite {
            return true;
        }
        let message = "your token does not allow posting to this room".into();
        self.error(ErrorCode::Forbidden, message, reference.clone(), Some(room));
        false
    }

    /// Whether the token lets this user edit and delete anyone's messages in `room`.
    fn may_moderate(&self, room: &RoomName) -> bool {
        self.authed.as_ref().is_some_and(|authed| {
            self.node
                .config
                .auth
                .policy
                .may_moderate(&authed.identity.grants, room)
        })
    }

    /// Takes a token from the connection's and the user's bucket, or says how long to wait.
    fn limit(&self, send: bool) -> Result<(), Duration> {
        let user = &self
            .authed
            .as_ref()
            .expect("limits apply to users")
            .lease
            .state;
        let (mine, shared) = if send {
            (&self.sends, &user.send)
        } else {
            (&self.joins, &user.join)
        };
        mine.take()?;
        shared.take()
    }

    fn rate_limited(
        &mut self,
        wait: Duration,
        what: &str,
        reference: Option<String>,
        room: &RoomName,
    ) {
        self.node.metrics.rate_limited(what);
        let message = format!("too many {what}s; retry in {} ms", wait.as_millis().max(1));
        self.error_after(
            ErrorCode::RateLimited,
            message,
            reference,
            Some(room),
            Some(wait),
        );
    }

    /// Leaves every room; called once when the connection ends.
    pub fn close(&mut self) {
        let typing: Vec<RoomName> = self.typing.keys().cloned().collect();
        for room in typing {
            self.stop_typing(&room);
        }
        self.leave_personal();
        let rooms: Vec<RoomName> = self.rooms.drain().collect();
        for room in rooms {
            self.presence_exit(&room);
            self.node.hub.remove(&room, self.conn);
            self.node.subscriptions.release(&room);
        }
    }
}

fn reference_of(command: &Command) -> Option<String> {
    match command {
        Command::Join { reference, .. }
        | Command::History { reference, .. }
        | Command::Leave { reference, .. }
        | Command::Send { reference, .. }
        | Command::Edit { reference, .. }
        | Command::Delete { reference, .. }
        | Command::React { reference, .. }
        | Command::Status { reference, .. }
        | Command::Typing { reference, .. }
        | Command::Read { reference, .. }
        | Command::Dm { reference, .. }
        | Command::Draft { reference, .. }
        | Command::Drafts { reference }
        | Command::Presence { reference, .. }
        | Command::Receipts { reference, .. }
        | Command::Ping { reference }
        | Command::Auth { reference, .. }
        | Command::Refresh { reference, .. } => reference.clone(),
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The monotonic instant of a Unix time in seconds (now, if it is past).
fn instant_of(unix_secs: u64) -> Instant {
    let now_ms = unix_millis();
    let at_ms = unix_secs.saturating_mul(1000);
    // Far-future expiries are capped so the arithmetic cannot overflow.
    let wait_ms = at_ms.saturating_sub(now_ms).min(366 * 24 * 3600 * 1000);
    Instant::now() + Duration::from_millis(wait_ms)
}

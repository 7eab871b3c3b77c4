//! One client's chat state and the handling of its commands.
//!
//! Commands of one connection are handled in order, one at a time. Replies go
//! through the same outbox as room messages, so their order is the order of
//! events: `joined` precedes the room's messages, `left` follows the last one.
//! Each command kind has its handler (by concern, in this folder), which
//! returns `Ok` having replied, or a [`Refusal`]; [`Session::handle`] alone
//! turns a refusal into the `error` reply and takes the connection's flood
//! strike. A connection out of strikes is closed.

use std::{sync::Arc, time::Duration};

use chorus_protocol::{
    Command, CommandError, CommandKind, Encoding, ErrorCode, ErrorReply, RoomName, Sender,
    ServerEvent, close,
};
use tokio::time::Instant;
use uuid::Uuid;

mod auth;
mod changes;
mod direct;
mod drafts;
mod presence;
mod receipts;
mod refusal;
mod rooms;
mod search;
mod status;
mod typing;

pub use refusal::{Handled, Refusal};

use crate::{
    auth::{Access, Bucket, Identity},
    chat::{
        Chat, frames::encode, hub::ConnId, membership::Memberships, outbox::Outbox,
        users::UserLease,
    },
    metrics::CloseReason,
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

/// How a connection closes after its `auth` token was refused (not expired).
const REFUSED_TOKEN: Closing = Closing {
    code: close::UNAUTHORIZED,
    reason: "authentication failed",
    label: CloseReason::Unauthorized,
};

/// An authenticated user on this connection.
struct Authed {
    /// Who, what they may do, until when.
    identity: Identity,
    /// The user's node-wide entry: connection count and shared buckets.
    lease: UserLease,
}

/// The rate-limited kinds of action, each with its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limited {
    /// `send` and changes to messages.
    Send,
    /// `join`, `leave` and `history`.
    Join,
    /// `status` (counted with joins).
    Status,
}

/// A connected client's chat state.
pub struct Session {
    /// The node serving the client.
    chat: Arc<Chat>,
    /// The user, once authenticated.
    authed: Option<Authed>,
    /// When the connection must have authenticated by, then when its token
    /// expires (fixed when the token is taken, so the connection's timer is
    /// not moved at every wake-up).
    deadline: Instant,
    /// How events are encoded for this client.
    encoding: Encoding,
    /// Where this client's frames go.
    outbox: Arc<Outbox>,
    /// The rooms joined (and the user's own channel).
    memberships: Memberships,
    /// This connection's sends.
    sends: Bucket,
    /// This connection's joins and leaves.
    joins: Bucket,
    /// Refused commands left before the connection counts as a flood.
    strikes: Bucket,
    /// Set when a refusal found no strike left.
    flooded: bool,
    /// Per bucket (sends; joins and status), when the last `rate_limited`
    /// said the client may try again: a command before it costs a strike.
    retry_at: [Option<Instant>; 2],
}

impl Session {
    /// A session with no rooms yet; `authed` when the token came with the upgrade.
    pub fn new(
        chat: Arc<Chat>,
        (conn, public_id): (ConnId, Uuid),
        authed: Option<(Identity, UserLease)>,
        encoding: Encoding,
        outbox: Arc<Outbox>,
    ) -> Self {
        let config = chat.config();
        let rates = config.rate_limits;
        Self {
            deadline: match &authed {
                Some((identity, _)) => instant_of(identity.expires_at),
                None => Instant::now() + config.auth.auth_timeout,
            },
            memberships: Memberships::new(
                chat.clone(),
                (conn, public_id),
                outbox.clone(),
                encoding,
            ),
            chat,
            authed: authed.map(|(identity, lease)| Authed { identity, lease }),
            encoding,
            outbox,
            sends: Bucket::new(rates.send),
            joins: Bucket::new(rates.join),
            strikes: rates.strikes(),
            flooded: false,
            retry_at: [None; 2],
        }
    }

    /// Work after the welcome: a connection authenticated by its upgrade joins
    /// its user's own channel.
    pub async fn start(&mut self) {
        self.enter_personal().await;
        self.user_event("user.connected").await;
    }

    /// Queues `user.connected` or `user.disconnected` for this connection,
    /// once it has a user (webhooks).
    pub async fn user_event(&self, kind: &str) {
        if let Some(authed) = &self.authed
            && self.chat.wants_event(kind)
        {
            let conn = self.memberships.conn();
            // Boxed: every connection's future would otherwise keep its room.
            Box::pin(self.chat.user_event(kind, &authed.identity.user, conn)).await;
        }
    }

    /// When the connection must close unless something changes, and how.
    pub fn deadline(&self) -> (Instant, Closing) {
        match &self.authed {
            None => (
                self.deadline,
                Closing {
                    code: close::AUTH_TIMEOUT,
                    reason: "no auth in time; reconnect and authenticate at once",
                    label: CloseReason::AuthTimeout,
                },
            ),
            Some(_) => (
                self.deadline,
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
        self.outbox.push(encode(self.encoding, event));
    }

    /// Answers a frame that did not decode into a command. An unusable token
    /// (empty, or over 8 KiB) on a connection that has not authenticated
    /// closes it like any other refused token (4500).
    pub fn refuse(&mut self, error: CommandError) -> Flow {
        self.chat.metrics().commands_received.inc();
        let mut refusal = Refusal::new(error.code, error.detail);
        if error.code == ErrorCode::InvalidToken && self.authed.is_none() {
            refusal = refusal.then_close(REFUSED_TOKEN);
        }
        self.refused(refusal, error.reference, None)
    }

    /// Handles one decoded command.
    pub async fn handle(&mut self, command: Command) -> Flow {
        self.chat.metrics().commands_received.inc();
        let Command { reference, kind } = command;
        let room = kind.room().cloned();
        match self.dispatch(kind, reference.as_deref()).await {
            Ok(()) if self.flooded => self.refused_too_often(),
            Ok(()) => Flow::Continue,
            Err(refusal) => self.refused(refusal, reference, room),
        }
    }

    /// Runs the command's handler.
    async fn dispatch(&mut self, kind: CommandKind, reference: Option<&str>) -> Handled {
        use CommandKind as K;
        match kind {
            K::Ping(_) => {
                self.reply(&ServerEvent::Pong { reference });
                Ok(())
            }
            K::Auth(auth) => self.authenticate(auth, reference).await,
            _ if self.authed.is_none() => Err(Refusal::new(
                ErrorCode::Unauthenticated,
                "send auth with a token first",
            )),
            K::Refresh(refresh) => self.refresh(refresh, reference),
            K::Join(join) => self.join(join, reference).await,
            K::Leave(leave) => self.leave(leave, reference),
            K::History(history) => self.history(history, reference).await,
            K::Send(send) => self.send(send, reference).await,
            K::Edit(edit) => self.edit(edit, reference).await,
            K::Delete(delete) => self.delete(delete, reference).await,
            K::React(react) => self.react(react, reference).await,
            K::Typing(typing) => self.typing(typing).await,
            K::Read(read) => self.mark_read(read, reference).await,
            K::Receipts(receipts) => self.receipts(receipts, reference).await,
            K::Presence(presence) => self.list_presence(presence, reference).await,
            K::Dm(dm) => self.direct(dm, reference).await,
            K::Draft(draft) => self.save_draft(draft, reference).await,
            K::Drafts(_) => self.list_drafts(reference).await,
            K::Status(status) => self.set_status(status, reference).await,
            K::Search(search) => self.search(search, reference).await,
        }
    }

    /// The one place a refusal is answered: the error reply (naming the
    /// command's room unless the refusal names another), a flood strike, and
    /// the close that follows, if any.
    fn refused(
        &mut self,
        refusal: Refusal,
        reference: Option<String>,
        room: Option<RoomName>,
    ) -> Flow {
        self.chat.metrics().command_errors.inc();
        if refusal.strike && self.strikes.take().is_err() {
            self.flooded = true;
        }
        self.reply(&ServerEvent::Error(&ErrorReply {
            code: refusal.code,
            message: refusal.message,
            reference,
            room: refusal.room.or(room),
            retry_after_ms: refusal.retry_after.map(|d| d.as_millis().max(1) as u64),
        }));
        match refusal.close {
            Some(closing) => Flow::Close(closing),
            None if self.flooded => self.refused_too_often(),
            None => Flow::Continue,
        }
    }

    fn refused_too_often(&self) -> Flow {
        Flow::Close(Closing {
            code: close::FLOODING,
            reason: "too many refused commands; back off before reconnecting",
            label: CloseReason::Flooding,
        })
    }

    /// The authenticated user (commands past authentication only).
    fn user(&self) -> &Sender {
        &self
            .authed
            .as_ref()
            .expect("commands past auth have a user")
            .identity
            .user
    }

    fn access(&self, room: &RoomName) -> Access {
        match &self.authed {
            None => Access::Denied,
            Some(authed) => self.chat.config().auth.policy.access(
                &authed.identity.user.id,
                &authed.identity.grants,
                room,
            ),
        }
    }

    /// Refuses with `not_joined` (saying `what` to do) unless this connection is in `room`.
    fn in_room(&self, room: &RoomName, what: &str) -> Handled {
        if self.memberships.contains(room) {
            return Ok(());
        }
        let message = format!("join the room before {what}");
        Err(Refusal::new(ErrorCode::NotJoined, message))
    }

    /// Refuses with `forbidden` unless the token may post to `room`.
    fn may_post(&self, room: &RoomName) -> Handled {
        if self.access(room) == Access::ReadWrite {
            return Ok(());
        }
        let message = "your token does not allow posting to this room";
        Err(Refusal::new(ErrorCode::Forbidden, message))
    }

    /// Whether the token lets this user edit and delete anyone's messages in `room`.
    fn may_moderate(&self, room: &RoomName) -> bool {
        self.authed.as_ref().is_some_and(|authed| {
            let policy = &self.chat.config().auth.policy;
            policy.may_moderate(&authed.identity.grants, room)
        })
    }

    /// Refuses a text over `--max-body-bytes`, or an empty one (saying `empty`) when given.
    fn check_text(&self, text: &str, what: &str, empty: Option<&str>) -> Handled {
        if let Some(empty) = empty.filter(|_| text.is_empty()) {
            return Err(Refusal::new(ErrorCode::EmptyBody, empty));
        }
        let max = self.chat.config().max_body_bytes;
        if text.len() > max {
            let message = format!("{what} is {} bytes; the limit is {max}", text.len());
            return Err(Refusal::new(ErrorCode::BodyTooLarge, message));
        }
        Ok(())
    }

    /// Takes a token from the connection's and the user's bucket for `action`,
    /// or refuses with `rate_limited` and how long to wait. The refusal costs
    /// a flood strike only if the client did not wait as long as the previous
    /// `rate_limited` of the same bucket told it to: a client that honours
    /// `retry_after_ms` is never closed as a flood.
    fn take(&mut self, action: Limited) -> Handled {
        let user = &self
            .authed
            .as_ref()
            .expect("limits apply to users")
            .lease
            .state;
        let (mine, shared, label, what) = match action {
            Limited::Send => (&self.sends, &user.send, "send", "sends"),
            Limited::Join => (&self.joins, &user.join, "join", "joins"),
            Limited::Status => (&self.joins, &user.join, "join", "status changes"),
        };
        let Err(wait) = mine.take().and_then(|()| shared.take()) else {
            return Ok(());
        };
        self.chat.metrics().rate_limited(label);
        let now = Instant::now();
        let retry_at = &mut self.retry_at[usize::from(action != Limited::Send)];
        let impatient = retry_at.is_some_and(|at| now < at);
        // What the client is told, rounded up as it is in `retry_after_ms`.
        let wait = Duration::from_millis(wait.as_millis().max(1) as u64 + 1);
        *retry_at = Some(now + wait);
        let message = format!("too many {what}; retry in {} ms", wait.as_millis());
        let mut refusal = Refusal::new(ErrorCode::RateLimited, message);
        refusal.retry_after = Some(wait);
        refusal.strike = impatient;
        Err(refusal)
    }

    /// Leaves every room; called once when the connection ends.
    pub fn close(&mut self) {
        let user = self.authed.as_ref().map(|a| a.identity.user.clone());
        self.memberships.leave_all(user.as_ref());
    }
}

/// The monotonic instant of a Unix time in seconds (now, if it is past).
pub(super) fn instant_of(unix_secs: u64) -> Instant {
    let now_ms = crate::chat::publish::unix_millis();
    let at_ms = unix_secs.saturating_mul(1000);
    // Far-future expiries are capped so the arithmetic cannot overflow.
    let wait_ms = at_ms.saturating_sub(now_ms).min(366 * 24 * 3600 * 1000);
    Instant::now() + Duration::from_millis(wait_ms)
}

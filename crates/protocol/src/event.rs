//! Events the server sends to a client, and the chat message they carry.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ErrorCode, RoomName};

/// Who sent a message, as every recipient sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// Stable user id.
    pub id: String,
    /// Display name, when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Avatar URL, when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Set when an application sent it through the server API (a bot or the
    /// system), not a user; absent for users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SenderKind>,
}

/// Who, other than a user, sent a message through the server API.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    /// A bot: an automated participant with a name of its own.
    Bot,
    /// The application itself (an order shipped, a room archived ...).
    System,
}

/// A chat message as stored in an envelope and delivered to clients.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// UUIDv7 assigned by the node that accepted the send (time-ordered, unique).
    pub id: Uuid,
    /// The room it was sent to.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub room: RoomName,
    /// Who sent it.
    pub from: Sender,
    /// Server timestamp at acceptance, milliseconds since the Unix epoch.
    pub ts: u64,
    /// The text.
    pub body: String,
    /// Position in the room's total order within its epoch (1, 2, 3 ...), assigned by
    /// the backplane when the message is stored; 0 before that.
    #[serde(default)]
    pub seq: u64,
    /// In history pages: the epoch `seq` counts in (pages that reach into the
    /// archive hold messages of earlier epochs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Users the sender mentions (ids); each gets a `mention` on their own channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// In history: when the text was last edited (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<u64>,
    /// In history: the message was deleted (a tombstone: the body is empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// In history: reactions, in the order they were first added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// Files attached by the sender, in the order they were given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// One message a search found.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The message as it is now (current text, reactions), with its `epoch`:
    /// `history` with `before` = its `seq` + 1 and that `epoch` pages to it.
    pub message: ChatMessage,
    /// Where the query matched, in context: plain-text pieces (never HTML),
    /// `hit` on the matched words.
    pub snippet: Vec<SnippetPart>,
    /// How well it matched (higher is better; for ordering only).
    pub rank: f32,
}

/// A piece of a search hit's snippet.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetPart {
    /// The text.
    pub text: String,
    /// Whether it is a word the query matched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hit: bool,
}

/// A file attached to a message (uploaded with `POST /api/v1/rooms/{room}/files`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The file's id: `GET /api/v1/files/{id}` serves it.
    pub id: Uuid,
    /// Its name, as the uploader gave it.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its type, decided from its bytes.
    pub content_type: String,
    /// For images: width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// For images: height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Whether `GET /api/v1/files/{id}/thumbnail` has a thumbnail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thumbnail: bool,
}

/// One emoji's reactions to a message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The emoji (or a short code such as `:+1:`).
    pub emoji: String,
    /// How many users reacted with it.
    pub count: usize,
    /// Who, in the order they reacted.
    pub users: Vec<String>,
}

/// One user in a `members` answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Present {
    /// Who.
    #[serde(flatten)]
    pub user: Sender,
    /// `online` or `away`.
    pub status: String,
}

/// One saved draft, in a `drafts` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedDraft {
    /// The room the text is for.
    pub room: String,
    /// The unsent text.
    pub text: String,
}

/// One user's read marker, in a `receipts` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadMarker {
    /// The user's id.
    pub user: String,
    /// Read up to this sequence number.
    pub seq: u64,
}

/// Limits a client must respect, announced in `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    /// Largest WebSocket frame accepted; larger closes the connection with 1009.
    pub max_frame_bytes: usize,
    /// Largest message body accepted; larger is refused with `body_too_large`.
    pub max_body_bytes: usize,
    /// Most rooms one connection may be in at once.
    pub max_rooms: usize,
    /// Sends allowed per second per connection (sustained; bursts may go higher).
    pub sends_per_second: f64,
    /// Joins and leaves allowed per second per connection (sustained).
    pub joins_per_second: f64,
}

/// The first event on every connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Welcome {
    /// Id of the node serving this connection.
    pub node: String,
    /// Id of this connection (for support and logs).
    pub conn: Uuid,
    /// Who the server thinks this client is; absent until the client authenticates.
    pub user: Option<Sender>,
    /// When the token expires (seconds since the Unix epoch); `refresh` before then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<u64>,
    /// Seconds allowed to send `auth` when `user` is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_timeout_secs: Option<u64>,
    /// `json` or `msgpack`: the encoding of every event that follows.
    pub encoding: &'static str,
    /// The server pings this often (seconds); reply with pong (browsers do it by themselves).
    pub ping_interval_secs: u64,
    /// A ping unanswered for this long (seconds) closes the connection.
    pub pong_timeout_secs: u64,
    /// Limits of this node.
    pub limits: Limits,
}

/// An `error` event: the command it answers had no effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReply {
    /// What the client should match on.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
    /// The `ref` of the failed command, when it had one.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The room the failed command named, when it named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomName>,
    /// For `rate_limited`: milliseconds to wait before the command can succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Every event a client can receive. Borrowing keeps encoding free of clones.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent<'a> {
    /// First event of a connection.
    Welcome(&'a Welcome),
    /// A `join` succeeded: the room's recent history (or the messages missed since
    /// the resume point) follows, then its live messages, in sequence order.
    Joined {
        room: &'a RoomName,
        /// The room's epoch: sequence numbers compare only within one epoch.
        epoch: u64,
        /// The room's last sequence number when the join was served.
        seq: u64,
        /// On a resume: whether exactly the missed messages follow (`true`), or the
        /// gap could not be filled and the latest messages follow instead (`false`).
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// Your read marker in this room (this epoch), when you have one.
        #[serde(skip_serializing_if = "Option::is_none")]
        read_seq: Option<u64>,
        /// Messages after your read marker (all of them when you have none).
        unread: u64,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// The room's continuity broke for this client: messages up to `seq` of `epoch`
    /// may be missing (`reason`: `epoch_changed` when the backplane lost the room's
    /// history, `history_trimmed` when a gap was older than the history kept).
    /// Messages after `seq` follow in order; fetch `history` to fill the view.
    Reset {
        room: &'a RoomName,
        epoch: u64,
        seq: u64,
        reason: &'a str,
    },
    /// A page of search results, best first.
    Search {
        q: &'a str,
        hits: &'a [SearchHit],
        /// Whether more hits follow (ask again with a larger `offset`).
        more: bool,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// A page of a room's history, oldest first.
    History {
        room: &'a RoomName,
        epoch: u64,
        messages: &'a [ChatMessage],
        /// Whether older messages remain.
        more: bool,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// A `leave` succeeded, or the server removed the client from `room` (then with a
    /// `reason`, e.g. `forbidden` after a refresh that no longer grants it): no message
    /// of `room` follows.
    Left {
        room: &'a RoomName,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    /// `auth` succeeded: the connection now acts as `user`.
    Authenticated {
        user: &'a Sender,
        token_expires_at: u64,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// `refresh` succeeded: the connection lives until the new expiry.
    Refreshed {
        token_expires_at: u64,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// A message in a joined room (including the client's own sends).
    Message(&'a ChatMessage),
    /// A `send` was accepted by the cluster; the message event follows to every member.
    Sent {
        room: &'a RoomName,
        id: Uuid,
        ts: u64,
        /// The message's sequence number in the room.
        seq: u64,
        /// Set when this send repeated a `client_msg_id` already accepted: nothing new
        /// was stored, and this is the original acceptance.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// A member of `room` started (`state: "start"`) or stopped typing. Not
    /// stored. A start lapses by itself after `expires_in_ms` unless repeated;
    /// clients ignore their own user's.
    Typing {
        room: &'a RoomName,
        user: &'a Sender,
        state: &'a str,
        expires_in_ms: u64,
    },
    /// `user` has read `room` up to `seq` (sent to the room's members, the
    /// user's own other connections in the room included).
    Receipt {
        room: &'a RoomName,
        user: &'a Sender,
        seq: u64,
    },
    /// A `read` was taken: your marker in `room` now stands at `seq` (which may
    /// be further than asked, when another connection of yours read further).
    Marked {
        room: &'a RoomName,
        seq: u64,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// Answer to `receipts`: read markers of the room's users, furthest first.
    Receipts {
        room: &'a RoomName,
        epoch: u64,
        receipts: &'a [ReadMarker],
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// A direct conversation was started in `room` by `by` (you, on another
    /// connection, or the other user): join it to take part.
    DmStarted { room: &'a RoomName, by: &'a Sender },
    /// A message in a direct conversation this connection has not joined (on
    /// every connection of both users, on any node).
    Notification {
        room: &'a RoomName,
        message: &'a ChatMessage,
    },
    /// Your draft for `room` changed on one of your connections (empty text:
    /// cleared); on every connection of yours, the saving one included.
    Draft { room: &'a RoomName, text: &'a str },
    /// A `draft` was saved.
    DraftSaved {
        room: &'a RoomName,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// Answer to `drafts`: your saved drafts, by room.
    Drafts {
        drafts: &'a [SavedDraft],
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// Users who came into `room` (`joins`: their first connection in it, on
    /// any node) or left it (`leaves`: their last one went, or its node stopped
    /// answering), gathered over a quarter of a second.
    Presence {
        room: &'a RoomName,
        #[serde(skip_serializing_if = "<[Sender]>::is_empty")]
        joins: &'a [Sender],
        #[serde(skip_serializing_if = "<[Sender]>::is_empty")]
        leaves: &'a [Sender],
    },
    /// Answer to `presence`: the users in the room now, once each.
    Members {
        room: &'a RoomName,
        members: &'a [Present],
        /// How many users are present (more than listed in a room of over 1,000).
        total: u64,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// A message's text was changed (`seq`: this change's own place in the
    /// room's order; `target`: the message's).
    Edited {
        room: &'a RoomName,
        seq: u64,
        target: u64,
        body: &'a str,
        by: &'a Sender,
        ts: u64,
    },
    /// A message was deleted: show a tombstone.
    Deleted {
        room: &'a RoomName,
        seq: u64,
        target: u64,
        by: &'a Sender,
        ts: u64,
    },
    /// `user` added (`action: "add"`) or removed an emoji reaction on a message.
    Reaction {
        room: &'a RoomName,
        seq: u64,
        target: u64,
        emoji: &'a str,
        user: &'a Sender,
        action: &'a str,
    },
    /// An `edit`, `delete`, `react` or `unreact` was taken: its event follows
    /// to every member at `seq`; no `seq` when it changed nothing (the
    /// reaction was already there, or not there).
    Changed {
        room: &'a RoomName,
        target: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// You were mentioned in `room` (on every connection of yours not in the
    /// room, on any node, when your token lets you read the room).
    Mention {
        room: &'a RoomName,
        message: &'a ChatMessage,
    },
    /// `user`'s status (`online`, `away` or `offline`) as `room` sees it; on
    /// your own connections (without `room`) when you set yours.
    Status {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a RoomName>,
        user: &'a Sender,
        status: &'a str,
    },
    /// A `status` was taken (every connection of yours also gets `status`).
    StatusSet {
        status: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// Answer to `ping`.
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    /// A command was refused.
    Error(&'a ErrorReply),
}

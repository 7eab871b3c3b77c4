//! Events the server sends to a client, and the chat message they carry.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ErrorCode, RoomName};

/// Who sent a message, as every recipient sees it.
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
}

/// A chat message as stored in an envelope and delivered to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// UUIDv7 assigned by the node that accepted the send (time-ordered, unique).
    pub id: Uuid,
    /// The room it was sent to.
    pub room: RoomName,
    /// Who sent it.
    pub from: Sender,
    /// Server timestamp at acceptance, milliseconds since the Unix epoch.
    pub ts: u64,
    /// The text.
    pub body: String,
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
    /// A `join` succeeded: messages of `room` follow.
    Joined {
        room: &'a RoomName,
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

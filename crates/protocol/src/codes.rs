//! Machine-readable error codes and WebSocket close codes.
//!
//! Close codes are split in two ranges so a client knows what to do without
//! reading the reason text: 4000–4499 mean "reconnect (with jittered backoff)",
//! 4500–4999 mean "do not reconnect; something on the client side must change".

use serde::Serialize;

/// The code of an `error` event. Clients match on it; the text beside it is for humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a valid JSON document (text frame) or MessagePack value (binary frame).
    MalformedFrame,
    /// The frame decoded, but its `type` is not a known command.
    UnknownCommand,
    /// A known command with a missing field or a field of the wrong type.
    InvalidCommand,
    /// The room name breaks the naming rules.
    InvalidRoom,
    /// The `ref` is longer than allowed.
    InvalidRef,
    /// A message body is empty.
    EmptyBody,
    /// A message body is longer than the configured limit (the connection stays open).
    BodyTooLarge,
    /// The command names a room this connection has not joined.
    NotJoined,
    /// `join` for a room this connection has already joined.
    AlreadyJoined,
    /// The connection is already in as many rooms as it may be.
    TooManyRooms,
    /// The cluster backplane (Redis) could not take the command; nothing was delivered. Retry.
    BackplaneUnavailable,
    /// Unexpected server fault; nothing was delivered. Retry.
    Internal,
    /// A command other than `auth` or `ping` before the connection authenticated.
    Unauthenticated,
    /// The token is malformed, badly signed, of a refused algorithm, or for another
    /// issuer, audience or user. Get a new token; retrying this one cannot work.
    InvalidToken,
    /// The token has expired: get a fresh one and send it with `refresh` (or reconnect with it).
    TokenExpired,
    /// The application revoked the user's tokens issued before a time (server
    /// API); get a newly issued token.
    TokenRevoked,
    /// `auth` on a connection that already has an identity; use `refresh`.
    AlreadyAuthenticated,
    /// The token's claims (or the room rules) do not allow this join or send.
    Forbidden,
    /// Too many sends or joins: wait `retry_after_ms` before the next one.
    RateLimited,
    /// The user already holds as many connections to this node as allowed.
    TooManyConnections,
    /// `history` with a `before_id` that is not (or no longer) in the room's history.
    UnknownMessage,
    /// `read` with a sequence number past the room's last message.
    BeyondHead,
    /// `draft` for a new room when the user already keeps as many drafts as allowed.
    TooManyDrafts,
    /// The application's publish hook refused the message (the message says why).
    Rejected,
    /// The application's publish hook did not answer, and the node is set to
    /// refuse messages then; retry later.
    HookUnavailable,
    /// `edit` or `delete` of someone else's message without a moderator grant.
    NotYourMessage,
    /// `edit`, `delete` or `react` on a message that was deleted.
    MessageDeleted,
    /// `react` adding a reaction past the limits of one message.
    TooManyReactions,
    /// `send` naming more users in `mentions` than allowed.
    TooManyMentions,
    /// `send` attaching more files than allowed.
    TooManyAttachments,
    /// `send` attaching a file that does not exist, was uploaded to another
    /// room, or by someone else.
    UnknownAttachment,
    /// `send` with attachments when the file store does not answer; retry.
    StoreUnavailable,
    /// `history` past what Redis holds, or `search`, when the archive
    /// (PostgreSQL) does not answer or the server keeps none; retry later.
    ArchiveUnavailable,
}

impl ErrorCode {
    /// The wire spelling of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedFrame => "malformed_frame",
            Self::UnknownCommand => "unknown_command",
            Self::InvalidCommand => "invalid_command",
            Self::InvalidRoom => "invalid_room",
            Self::InvalidRef => "invalid_ref",
            Self::EmptyBody => "empty_body",
            Self::BodyTooLarge => "body_too_large",
            Self::NotJoined => "not_joined",
            Self::AlreadyJoined => "already_joined",
            Self::TooManyRooms => "too_many_rooms",
            Self::BackplaneUnavailable => "backplane_unavailable",
            Self::Internal => "internal",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::AlreadyAuthenticated => "already_authenticated",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::TooManyConnections => "too_many_connections",
            Self::UnknownMessage => "unknown_message",
            Self::BeyondHead => "beyond_head",
            Self::TooManyDrafts => "too_many_drafts",
            Self::Rejected => "rejected",
            Self::HookUnavailable => "hook_unavailable",
            Self::NotYourMessage => "not_your_message",
            Self::MessageDeleted => "message_deleted",
            Self::TooManyReactions => "too_many_reactions",
            Self::TooManyMentions => "too_many_mentions",
            Self::TooManyAttachments => "too_many_attachments",
            Self::UnknownAttachment => "unknown_attachment",
            Self::StoreUnavailable => "store_unavailable",
            Self::ArchiveUnavailable => "archive_unavailable",
        }
    }
}

/// WebSocket close codes Chorus sends, with their meaning.
pub mod close {
    /// Normal closure (answer to a client's close).
    pub const NORMAL: u16 = 1000;
    /// A frame exceeded the maximum frame size; the client must not resend it.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Unexpected server fault; reconnect.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The node is shutting down or draining; reconnect (to any node) after a jittered delay.
    pub const GOING_AWAY: u16 = 4000;
    /// The client did not read fast enough and its outbound queue overflowed; reconnect.
    pub const SLOW_CONSUMER: u16 = 4001;
    /// No pong (or any frame) arrived in time after a ping; reconnect.
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    /// The connection's token expired without a `refresh`; reconnect with a new token.
    pub const TOKEN_EXPIRED: u16 = 4003;
    /// No `auth` frame within the allowed unauthenticated time; reconnect and authenticate at once.
    pub const AUTH_TIMEOUT: u16 = 4004;
    /// The user already holds as many connections to this node as allowed; reconnect
    /// later (or to another node) after closing one.
    pub const TOO_MANY_CONNECTIONS: u16 = 4005;
    /// The client kept sending after being told `rate_limited`; reconnect only after a
    /// backoff of several seconds, and honour `retry_after_ms`.
    pub const FLOODING: u16 = 4006;
    /// The application disconnected the user through the server API;
    /// reconnect after a jittered delay.
    pub const DISCONNECTED: u16 = 4007;
    /// The token in `auth` is not acceptable; do not reconnect with the same token.
    pub const UNAUTHORIZED: u16 = 4500;
    /// The application disconnected the user through the server API and asks
    /// the client not to reconnect.
    pub const KICKED: u16 = 4501;
    /// The application revoked the user's tokens; do not reconnect with the
    /// same token (a newly issued one is accepted).
    pub const TOKEN_REVOKED: u16 = 4502;

    /// Whether a client should reconnect after receiving `code`.
    pub fn should_reconnect(code: u16) -> bool {
        matches!(code, INTERNAL_ERROR | 1001 | 1012 | 1013 | 4000..=4499)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_spelling_matches_serde() {
        for code in [
            ErrorCode::MalformedFrame,
            ErrorCode::UnknownCommand,
            ErrorCode::InvalidCommand,
            ErrorCode::InvalidRoom,
            ErrorCode::InvalidRef,
            ErrorCode::EmptyBody,
            ErrorCode::BodyTooLarge,
            ErrorCode::NotJoined,
            ErrorCode::AlreadyJoined,
            ErrorCode::TooManyRooms,
            ErrorCode::BackplaneUnavailable,
            ErrorCode::Internal,
            ErrorCode::Unauthenticated,
            ErrorCode::InvalidToken,
            ErrorCode::TokenExpired,
            ErrorCode::TokenRevoked,
            ErrorCode::AlreadyAuthenticated,
            ErrorCode::Forbidden,
            ErrorCode::RateLimited,
            ErrorCode::TooManyConnections,
            ErrorCode::UnknownMessage,
            ErrorCode::BeyondHead,
            ErrorCode::TooManyDrafts,
            ErrorCode::Rejected,
            ErrorCode::HookUnavailable,
            ErrorCode::NotYourMessage,
            ErrorCode::MessageDeleted,
            ErrorCode::TooManyReactions,
            ErrorCode::TooManyMentions,
            ErrorCode::TooManyAttachments,
            ErrorCode::UnknownAttachment,
            ErrorCode::StoreUnavailable,
            ErrorCode::ArchiveUnavailable,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn close_code_ranges() {
        assert!(close::should_reconnect(close::GOING_AWAY));
        assert!(close::should_reconnect(close::SLOW_CONSUMER));
        assert!(close::should_reconnect(close::HEARTBEAT_TIMEOUT));
        assert!(!close::should_reconnect(close::MESSAGE_TOO_BIG));
        assert!(close::should_reconnect(close::TOKEN_EXPIRED));
        assert!(close::should_reconnect(close::FLOODING));
        assert!(!close::should_reconnect(close::UNAUTHORIZED));
        assert!(!close::should_reconnect(close::NORMAL));
        assert!(close::should_reconnect(close::DISCONNECTED));
        assert!(!close::should_reconnect(close::KICKED));
        assert!(!close::should_reconnect(close::TOKEN_REVOKED));
    }
}

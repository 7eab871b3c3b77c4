//! Checks of the server API's input shared by its routes: room names,
//! senders, message text, client message ids, mentions.

use chorus_protocol::{
    MAX_CLIENT_MSG_ID_BYTES, MAX_MENTIONS, MAX_USER_ID_BYTES, RoomName, Sender, SenderKind,
};
use serde::Deserialize;
use utoipa::ToSchema;

use super::reply::ApiError;
use crate::chat::Chat;

/// Longest sender display name, in bytes.
const MAX_SENDER_NAME_BYTES: usize = 128;

/// A bot or system sender, as a request names it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiSender {
    /// Stable id, 1-128 bytes without control characters. It shares the id
    /// space of users: choose ids no user has (e.g. `bot:shipping`).
    #[schema(min_length = 1)]
    pub id: String,
    /// Display name (at most 128 bytes).
    #[serde(default)]
    #[schema(min_length = 1)]
    pub name: Option<String>,
    /// `bot` (default) or `system`: clients show the message as such.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub kind: Option<ApiSenderKind>,
}

/// `bot` or `system`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiSenderKind {
    /// An automated participant.
    Bot,
    /// The application itself.
    System,
}

impl ApiSender {
    /// The sender stamped on messages and changes, once checked.
    pub fn checked(self) -> Result<Sender, ApiError> {
        let bad = |why: &'static str| ApiError::bad("invalid_sender", why);
        if self.id.is_empty()
            || self.id.len() > MAX_USER_ID_BYTES
            || self.id.chars().any(char::is_control)
        {
            return Err(bad(
                "from.id must be 1-128 bytes without control characters",
            ));
        }
        if let Some(name) = &self.name
            && (name.is_empty()
                || name.len() > MAX_SENDER_NAME_BYTES
                || name.chars().any(char::is_control))
        {
            return Err(bad(
                "from.name must be 1-128 bytes without control characters",
            ));
        }
        let kind = match self.kind.unwrap_or(ApiSenderKind::Bot) {
            ApiSenderKind::Bot => SenderKind::Bot,
            ApiSenderKind::System => SenderKind::System,
        };
        Ok(Sender {
            id: self.id,
            name: self.name,
            avatar: None,
            kind: Some(kind),
        })
    }
}

/// `room` as a room name this node accepts (not an internal one).
pub fn room(chat: &Chat, room: &str) -> Result<RoomName, ApiError> {
    let bad = || ApiError::bad("invalid_room", "invalid room name");
    let room = RoomName::parse(room).map_err(|_| bad())?;
    if room.is_user_shard() || chat.config().room_rules.check(room.as_str()).is_err() {
        return Err(bad());
    }
    Ok(room)
}

/// Message text: not empty, within `--max-body-bytes`.
pub fn text(chat: &Chat, text: &str, what: &'static str) -> Result<(), ApiError> {
    if text.is_empty() {
        return Err(ApiError::bad("empty_body", format!("{what} is empty")));
    }
    let max = chat.config().max_body_bytes;
    if text.len() > max {
        let message = format!("{what} is {} bytes; the limit is {max}", text.len());
        return Err(ApiError::bad("body_too_large", message));
    }
    Ok(())
}

/// A client message id: 1-64 bytes without control characters.
pub fn client_msg_id(id: &Option<String>) -> Result<(), ApiError> {
    match id {
        Some(id)
            if id.is_empty()
                || id.len() > MAX_CLIENT_MSG_ID_BYTES
                || id.chars().any(char::is_control) =>
        {
            Err(ApiError::bad(
                "invalid_request",
                "client_msg_id must be 1-64 bytes without control characters",
            ))
        }
        _ => Ok(()),
    }
}

/// Mentioned user ids: at most 20, each 1-128 bytes; repeats are dropped.
pub fn mentions(mentions: &mut Vec<String>) -> Result<(), ApiError> {
    let bad = |why| ApiError::bad("invalid_request", why);
    if mentions.len() > MAX_MENTIONS {
        return Err(bad("at most 20 users may be mentioned in one message"));
    }
    for user in mentions.iter() {
        if user.is_empty() || user.len() > MAX_USER_ID_BYTES || user.chars().any(char::is_control) {
            return Err(bad(
                "a mentioned user id must be 1-128 bytes without control characters",
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    mentions.retain(|user| seen.insert(user.clone()));
    Ok(())
}

/// A user id: 1-128 bytes without control characters.
pub fn user(user: &str) -> Result<(), ApiError> {
    if user.is_empty() || user.len() > MAX_USER_ID_BYTES || user.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "invalid_user",
            "a user id is 1-128 bytes without control characters",
        ));
    }
    Ok(())
}

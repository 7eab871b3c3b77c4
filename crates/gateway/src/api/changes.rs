//! Changing any message through the server API (the `moderate` scope):
//! edit (`PATCH`), delete (`DELETE`) and react (`POST .../reactions`), each
//! stored in the room's order and delivered like a user's change.

use std::sync::Arc;

use axum::{Json, extract::State, http::StatusCode};
use chorus_backplane::{ChangeRefusal, Changed};
use chorus_protocol::{ChangeKind, MAX_EMOJI_BYTES, RoomName, Sender, SenderKind, Target};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    caller::Caller,
    input::{self, ApiSender},
    reply::{ApiError, ApiPath, ApiQuery, Body, BodyRefusals, ErrorBody, Refusals},
};
use crate::{
    auth::Scope,
    chat::{Chat, change::Edit},
};

/// A new text for a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// The new text (not empty, at most `--max-body-bytes`).
    #[schema(min_length = 1)]
    pub body: String,
    /// The message's id: the edit is refused unless the message at `seq` has
    /// it (guards against a `seq` of an older epoch).
    #[serde(default)]
    pub id: Option<Uuid>,
    /// Who edits (default: the system, named after the API key).
    #[serde(default)]
    pub by: Option<ApiSender>,
}

/// A reaction added or taken back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactRequest {
    /// The emoji (or a short code such as `:+1:`), 1-64 bytes without spaces.
    #[schema(min_length = 1, pattern = "^[^\\s]+$")]
    pub emoji: String,
    /// Add (default) or take back.
    #[serde(default = "yes")]
    pub add: bool,
    /// Who reacts.
    pub from: ApiSender,
    /// The message's id, checked as for an edit.
    #[serde(default)]
    pub id: Option<Uuid>,
}

fn yes() -> bool {
    true
}

/// `?id=` of a delete.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The message's id, checked as for an edit.
    pub id: Option<Uuid>,
}

/// How the room took a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeReply {
    /// The room.
    pub room: String,
    /// The message changed.
    pub target: u64,
    /// The change's own place in the room's order; absent when nothing
    /// changed (the same reaction again, or one not there to take back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Edits any message of a room.
#[utoipa::path(
    patch,
    path = "/api/v1/rooms/{room}/messages/{seq}",
    tag = "messages",
    params(("room" = String, Path, description = "The room"), ("seq" = i64, Path, minimum = 1, description = "The message's sequence number")),
    request_body = EditRequest,
    responses(
        (status = 200, description = "Edited", body = ChangeReply),
        (status = 404, description = "No such message (`unknown_message`)", body = ErrorBody),
        (status = 409, description = "The message was deleted (`message_deleted`)", body = ErrorBody),
        Refusals,
        BodyRefusals,
    ),
    security(("api_key" = []))
)]
pub async fn edit(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath((room, seq)): ApiPath<(String, i64)>,
    Body(request): Body<EditRequest>,
) -> Result<Json<ChangeReply>, ApiError> {
    caller.require(Scope::Moderate)?;
    let room = input::room(&chat, &room)?;
    input::text(&chat, &request.body, "body")?;
    let by = sender_or_system(request.by, &caller)?;
    let target = target(seq, request.id)?;
    change(&chat, room, target, ChangeKind::Edit(request.body), by).await
}

/// Deletes any message of a room (it stays as a tombstone).
#[utoipa::path(
    delete,
    path = "/api/v1/rooms/{room}/messages/{seq}",
    tag = "messages",
    params(("room" = String, Path, description = "The room"), ("seq" = i64, Path, minimum = 1, description = "The message's sequence number"), DeleteQuery),
    responses(
        (status = 200, description = "Deleted", body = ChangeReply),
        (status = 404, description = "No such message (`unknown_message`)", body = ErrorBody),
        (status = 409, description = "Already deleted (`message_deleted`)", body = ErrorBody),
        Refusals,
    ),
    security(("api_key" = []))
)]
pub async fn delete(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath((room, seq)): ApiPath<(String, i64)>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<Json<ChangeReply>, ApiError> {
    caller.require(Scope::Moderate)?;
    let room = input::room(&chat, &room)?;
    let by = sender_or_system(None, &caller)?;
    change(&chat, room, target(seq, query.id)?, ChangeKind::Delete, by).await
}

/// Adds or takes back a reaction on any message of a room.
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{room}/messages/{seq}/reactions",
    tag = "messages",
    params(("room" = String, Path, description = "The room"), ("seq" = i64, Path, minimum = 1, description = "The message's sequence number")),
    request_body = ReactRequest,
    responses(
        (status = 200, description = "Applied (no `seq`: nothing changed)", body = ChangeReply),
        (status = 404, description = "No such message (`unknown_message`)", body = ErrorBody),
        (status = 409, description = "Deleted (`message_deleted`), or too many reactions (`too_many_reactions`)", body = ErrorBody),
        Refusals,
        BodyRefusals,
    ),
    security(("api_key" = []))
)]
pub async fn react(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath((room, seq)): ApiPath<(String, i64)>,
    Body(request): Body<ReactRequest>,
) -> Result<Json<ChangeReply>, ApiError> {
    caller.require(Scope::Moderate)?;
    let room = input::room(&chat, &room)?;
    let emoji = request.emoji;
    if emoji.is_empty()
        || emoji.len() > MAX_EMOJI_BYTES
        || emoji.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::bad(
            "invalid_request",
            "emoji must be 1 to 64 bytes without spaces",
        ));
    }
    let by = request.from.checked()?;
    let kind = match request.add {
        true => ChangeKind::React(emoji),
        false => ChangeKind::Unreact(emoji),
    };
    change(&chat, room, target(seq, request.id)?, kind, by).await
}

fn target(seq: i64, id: Option<Uuid>) -> Result<Target, ApiError> {
    if seq < 1 {
        return Err(ApiError::bad("invalid_request", "seq starts at 1"));
    }
    Ok(Target {
        seq: seq.unsigned_abs(),
        id,
    })
}

/// The sender a request names, or the system named after the caller's key.
fn sender_or_system(by: Option<ApiSender>, caller: &Caller) -> Result<Sender, ApiError> {
    match by {
        Some(by) => by.checked(),
        None => Ok(Sender {
            id: format!("api:{}", caller.name),
            name: None,
            avatar: None,
            kind: Some(SenderKind::System),
        }),
    }
}

async fn change(
    chat: &Chat,
    room: RoomName,
    target: Target,
    kind: ChangeKind,
    by: Sender,
) -> Result<Json<ChangeReply>, ApiError> {
    let edit = Edit {
        room: room.clone(),
        target,
        kind,
        by,
        moderator: true,
    };
    let seq = match chat.change(edit).await? {
        Changed::Applied(position) => Some(position.seq),
        Changed::Unchanged => None,
        Changed::Refused(why) => return Err(refusal(why)),
    };
    Ok(Json(ChangeReply {
        room: room.as_str().to_owned(),
        target: target.seq,
        seq,
    }))
}

fn refusal(why: ChangeRefusal) -> ApiError {
    let conflict = |code, message| ApiError::new(StatusCode::CONFLICT, code, message);
    match why {
        ChangeRefusal::UnknownMessage | ChangeRefusal::NotYours => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_message",
            "no message with that sequence number (and id) in the room's history",
        ),
        ChangeRefusal::NotAMessage => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_message",
            "that sequence number is a change to a message, not a message",
        ),
        ChangeRefusal::Deleted => conflict("message_deleted", "the message was deleted"),
        ChangeRefusal::TooManyReactions => conflict(
            "too_many_reactions",
            "a message takes at most 20 different emoji, each from at most 1000 users",
        ),
    }
}

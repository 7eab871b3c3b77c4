//! Posting through the server API: one room (`POST /rooms/{room}/messages`)
//! or many (`POST /broadcast`), as a bot or the system, stored, numbered,
//! deduplicated and delivered exactly like a user's message; and reading a
//! room's history (`GET /rooms/{room}/messages`).

use std::sync::Arc;

use axum::{Json, extract::State, http::StatusCode};
use chorus_protocol::{Before, ChatMessage, RoomName};
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
    chat::{
        Chat,
        publish::{Accepted, Post},
    },
};

/// Most rooms one broadcast reaches.
pub const BROADCAST_MAX_ROOMS: usize = 100;

/// A message to post.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Who posts it: a bot or the system.
    pub from: ApiSender,
    /// The text (not empty, at most `--max-body-bytes`).
    #[schema(min_length = 1)]
    pub body: String,
    /// The application's id for this message: a retry with the same id (and
    /// sender, within `--dedup-window`) is not stored twice.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub client_msg_id: Option<String>,
    /// Users to notify (at most 20 ids; repeats count once).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub mentions: Vec<String>,
}

/// How a room took a posted message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// The room.
    pub room: String,
    /// The message's id.
    pub id: Uuid,
    /// Its place in the room's order.
    pub seq: u64,
    /// When it was accepted (ms since the Unix epoch).
    pub ts: u64,
    /// True when this repeats an earlier post with the same `client_msg_id`
    /// (nothing new was stored; `id`, `seq` and `ts` are the first post's).
    pub duplicate: bool,
}

impl Published {
    fn new(room: &RoomName, accepted: Accepted) -> Self {
        Self {
            room: room.as_str().to_owned(),
            id: accepted.id,
            seq: accepted.seq,
            ts: accepted.ts,
            duplicate: accepted.duplicate,
        }
    }
}

/// Posts a message to a room.
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{room}/messages",
    tag = "messages",
    params(("room" = String, Path, description = "The room")),
    request_body = PublishRequest,
    responses(
        (status = 201, description = "Stored and relayed", body = Published),
        (status = 200, description = "A retry of an earlier post (same `client_msg_id`)", body = Published),
        Refusals,
        BodyRefusals,
    ),
    security(("api_key" = []))
)]
pub async fn publish(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(room): ApiPath<String>,
    Body(request): Body<PublishRequest>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    caller.require(Scope::Publish)?;
    let room = input::room(&chat, &room)?;
    let post = checked_post(&chat, room.clone(), request)?;
    let accepted = chat.publish(post).await?;
    let status = match accepted.duplicate {
        true => StatusCode::OK,
        false => StatusCode::CREATED,
    };
    Ok((status, Json(Published::new(&room, accepted))))
}

/// One message to many rooms.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    /// The rooms (1-100, distinct).
    #[schema(min_items = 1, max_items = 100)]
    pub rooms: Vec<String>,
    /// Who posts it: a bot or the system.
    pub from: ApiSender,
    /// The text.
    #[schema(min_length = 1)]
    pub body: String,
    /// Deduplicates per room, as for one room.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub client_msg_id: Option<String>,
    /// Users to notify.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub mentions: Vec<String>,
}

/// What each room of a broadcast did with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastReply {
    /// One entry per room, in the request's order.
    pub results: Vec<BroadcastResult>,
}

/// One room's answer to a broadcast: `published`, or `error`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastResult {
    /// The room.
    pub room: String,
    /// How the room took it, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
    /// Why it did not (a backplane failure: retry with the same `client_msg_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// Posts one message to many rooms, each stored and numbered in its room.
#[utoipa::path(
    post,
    path = "/api/v1/broadcast",
    tag = "messages",
    request_body = BroadcastRequest,
    responses(
        (status = 200, description = "Each room's answer", body = BroadcastReply),
        Refusals,
        BodyRefusals,
    ),
    security(("api_key" = []))
)]
pub async fn broadcast(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    Body(request): Body<BroadcastRequest>,
) -> Result<Json<BroadcastReply>, ApiError> {
    caller.require(Scope::Publish)?;
    if request.rooms.is_empty() || request.rooms.len() > BROADCAST_MAX_ROOMS {
        return Err(ApiError::bad(
            "invalid_request",
            "rooms must list 1 to 100 rooms",
        ));
    }
    let mut rooms = Vec::with_capacity(request.rooms.len());
    for name in &request.rooms {
        let room = input::room(&chat, name)?;
        if rooms.contains(&room) {
            return Err(ApiError::bad("invalid_request", "a room is listed twice"));
        }
        rooms.push(room);
    }
    let template = PublishRequest {
        from: request.from,
        body: request.body,
        client_msg_id: request.client_msg_id,
        mentions: request.mentions,
    };
    let first = checked_post(&chat, rooms[0].clone(), template)?;
    let posts = rooms.iter().map(|room| Post {
        room: room.clone(),
        from: first.from.clone(),
        body: first.body.clone(),
        client_msg_id: first.client_msg_id.clone(),
        mentions: first.mentions.clone(),
        attachments: Vec::new(),
    });
    let answers = futures_util::future::join_all(posts.map(|post| chat.publish(post))).await;
    let results = rooms
        .iter()
        .zip(answers)
        .map(|(room, answer)| match answer {
            Ok(accepted) => BroadcastResult {
                room: room.as_str().to_owned(),
                published: Some(Published::new(room, accepted)),
                error: None,
            },
            Err(error) => {
                tracing::debug!(%error, %room, "broadcast not stored in a room");
                BroadcastResult {
                    room: room.as_str().to_owned(),
                    published: None,
                    error: Some(ErrorBody {
                        code: "backplane_unavailable".into(),
                        message: "the backplane did not answer; retry".into(),
                    }),
                }
            }
        })
        .collect();
    Ok(Json(BroadcastReply { results }))
}

fn checked_post(
    chat: &Chat,
    room: RoomName,
    mut request: PublishRequest,
) -> Result<Post, ApiError> {
    let from = request.from.checked()?;
    input::text(chat, &request.body, "body")?;
    input::client_msg_id(&request.client_msg_id)?;
    input::mentions(&mut request.mentions)?;
    Ok(Post {
        room,
        from,
        body: request.body,
        client_msg_id: request.client_msg_id,
        mentions: request.mentions,
        attachments: Vec::new(),
    })
}

/// A page of history: older than `before` (or `before_id`), newest last.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Older than this sequence number.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// The epoch `before` counts in, when not the room's current one (a
    /// message's `epoch` in an earlier page): paging into the archive.
    #[param(minimum = 0)]
    pub epoch: Option<i64>,
    /// Older than this message (its id).
    pub before_id: Option<String>,
    /// Page size (at most `--history-page-max`; larger asks get that many).
    #[param(minimum = 1)]
    pub limit: Option<i64>,
}

/// A page of a room's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    /// The room.
    pub room: String,
    /// The room's epoch.
    pub epoch: u64,
    /// The room's last sequence number.
    pub seq: u64,
    /// The messages, oldest first, with edits, deletions and reactions applied.
    pub messages: Vec<ChatMessage>,
    /// Whether older messages remain.
    pub more: bool,
}

/// Reads a page of a room's history.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{room}/messages",
    tag = "messages",
    params(("room" = String, Path, description = "The room"), HistoryQuery),
    responses(
        (status = 200, description = "A page, oldest first", body = HistoryPage),
        (status = 404, description = "`before_id` is not in the room's history (`unknown_message`)", body = ErrorBody),
        Refusals,
    ),
    security(("api_key" = []))
)]
pub async fn history(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    caller.require(Scope::History)?;
    let room = input::room(&chat, &room)?;
    let positive = |n: Option<i64>, what| match n {
        Some(n) if n < 1 => Err(ApiError::bad("invalid_query", what)),
        n => Ok(n.map(i64::unsigned_abs)),
    };
    let before_seq = positive(query.before, "before is a sequence number, from 1")?;
    let limit = positive(query.limit, "limit is at least 1")?;
    let epoch = match query.epoch {
        Some(epoch) if epoch < 0 => {
            return Err(ApiError::bad("invalid_query", "epoch is not negative"));
        }
        epoch => epoch.map(i64::unsigned_abs),
    };
    let before = Before::from_fields(before_seq, epoch, query.before_id.as_deref())
        .map_err(|message| ApiError::bad("invalid_query", message))?;
    let (position, messages, more) = chat
        .history()
        .page(
            &room,
            before,
            limit.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        )
        .await?;
    Ok(Json(HistoryPage {
        room: room.as_str().to_owned(),
        epoch: position.epoch,
        seq: position.seq,
        messages,
        more,
    }))
}

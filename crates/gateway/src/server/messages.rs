//! `GET /api/rooms/{room}/messages`: a page of history over HTTP, for a
//! bearer token that may read the room.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use chorus_backplane::BackplaneError;
use chorus_protocol::{Before, RoomName};
use serde::Deserialize;

use super::{
    node::Node,
    replies::{refusal, unauthorized},
};
use crate::{
    auth::{Access, presented_token},
    chat::history::PageError,
};

/// Query of `GET /api/rooms/{room}/messages`.
#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    /// Older than this sequence number.
    before: Option<u64>,
    /// The epoch `before` counts in (the room's current one when absent).
    epoch: Option<u64>,
    /// Older than this message.
    before_id: Option<String>,
    /// Page size (clamped to `--history-page-max`).
    limit: Option<u32>,
}

/// `GET /api/rooms/{room}/messages`: a page of history, for a bearer token that may join the room.
pub async fn messages(
    State(node): State<Arc<Node>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Response {
    let token = match presented_token(&headers, None) {
        Err(error) => return unauthorized(node.metrics(), &error),
        Ok(None) => {
            return refusal(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send Authorization: Bearer <token>",
            );
        }
        Ok(Some(token)) => token,
    };
    let identity = match node.chat().verify(token) {
        Ok(identity) => identity,
        Err(error) => return unauthorized(node.metrics(), &error),
    };
    let Ok(room) = RoomName::parse(&room) else {
        return refusal(StatusCode::BAD_REQUEST, "invalid_room", "invalid room name");
    };
    if node.config().room_rules.check(room.as_str()).is_err() {
        return refusal(StatusCode::BAD_REQUEST, "invalid_room", "invalid room name");
    }
    let Ok(Query(query)) = query else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "before and limit are numbers, before_id a message id",
        );
    };
    let before = match Before::from_fields(query.before, query.epoch, query.before_id.as_deref()) {
        Ok(before) => before,
        Err(message) => return refusal(StatusCode::BAD_REQUEST, "invalid_query", message),
    };
    let access = node
        .config()
        .auth
        .policy
        .access(&identity.user.id, &identity.grants, &room);
    if access == Access::Denied {
        return refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your token does not allow reading this room",
        );
    }
    match node.chat().history().page(&room, before, query.limit).await {
        Ok((position, messages, more)) => Json(serde_json::json!({
            "room": room,
            "epoch": position.epoch,
            "seq": position.seq,
            "messages": messages,
            "more": more,
        }))
        .into_response(),
        Err(PageError::UnknownMessage | PageError::Backplane(BackplaneError::UnknownMessage)) => {
            refusal(
                StatusCode::NOT_FOUND,
                "unknown_message",
                "no message with that id in the room's history",
            )
        }
        Err(PageError::ArchiveUnavailable) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "archive_unavailable",
            "older history is in the archive, which did not answer; retry later",
        ),
        Err(PageError::Backplane(_)) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "backplane_unavailable",
            "history could not be read; retry",
        ),
    }
}

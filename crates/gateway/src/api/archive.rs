//! The archive through the server API: a room exported as JSON Lines
//! (`GET /api/v1/rooms/{room}/export`) and a user's messages erased on
//! request (`DELETE /api/v1/users/{user}/messages`).

use std::sync::Arc;

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use chorus_archive::{Archive, ArchiveError};
use chorus_backplane::Changed;
use chorus_protocol::{ChangeKind, ChatMessage, RoomName, Sender, SenderKind, Target};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    caller::Caller,
    input,
    reply::{ApiError, ApiPath, ErrorBody, Refusals},
};
use crate::{
    auth::Scope,
    chat::{Chat, change::Edit},
};

/// Messages read from the database per export chunk.
const EXPORT_PAGE: usize = 1_000;
/// A user's messages erased per request (`more` says to call again).
const ERASE_BATCH: usize = 1_000;

/// 503 `archive_unavailable`.
fn unavailable(message: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "archive_unavailable",
        message,
    )
}

fn archive(chat: &Chat) -> Result<&Archive, ApiError> {
    chat.archive()
        .ok_or_else(|| unavailable("this server keeps no archive (--database-url)"))
}

fn failed<'a>(chat: &'a Chat, op: &'static str) -> impl Fn(ArchiveError) -> ApiError + 'a {
    move |error| {
        tracing::warn!(%error, op, "the archive failed a server API request");
        if let Some(archive) = chat.archive() {
            archive.metrics().errors.with_label_values(&[op]).inc();
        }
        unavailable("the archive did not answer; retry later")
    }
}

/// Exports a room's archived messages as JSON Lines.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{room}/export",
    tag = "messages",
    params(("room" = String, Path, description = "The room")),
    responses(
        (status = 200, description = "One message per line (as `GET .../messages` shows them, each with its `epoch`), oldest first, every epoch", content_type = "application/x-ndjson", body = String),
        (status = 503, description = "No archive, or it did not answer (`archive_unavailable`)", body = ErrorBody),
        Refusals,
    ),
    security(("api_key" = []))
)]
pub async fn export(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(room): ApiPath<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::History)?;
    let room = input::room(&chat, &room)?;
    let archive = archive(&chat)?.clone();
    // The first page before the answer: a database that is down is a 503,
    // not a broken 200.
    let first = archive
        .after(room.as_str(), None, EXPORT_PAGE)
        .await
        .map_err(failed(&chat, "export"))?;
    let name = room.as_str().to_owned();
    let chunks = futures_util::stream::unfold(Some(first), move |page| {
        let (archive, name) = (archive.clone(), name.clone());
        async move {
            let page = page?;
            if page.is_empty() {
                return None;
            }
            let lines = lines(&page);
            let last = page.last().map(|m| (m.epoch.unwrap_or(0), m.seq));
            let next = match page.len() < EXPORT_PAGE {
                true => Some(Vec::new()),
                false => match archive.after(&name, last, EXPORT_PAGE).await {
                    Ok(next) => Some(next),
                    Err(error) => {
                        tracing::warn!(%error, room = %name, "export cut short");
                        return Some((Err(std::io::Error::other("the archive failed")), None));
                    }
                },
            };
            Some((Ok(lines), next))
        }
    });
    let disposition = format!("attachment; filename=\"{room}.jsonl\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

fn lines(page: &[ChatMessage]) -> Bytes {
    let mut out = Vec::with_capacity(page.len() * 256);
    for message in page {
        serde_json::to_writer(&mut out, message).expect("a message encodes as JSON");
        out.push(b'\n');
    }
    out.into()
}

/// A user's messages erased.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    /// The user.
    pub user: String,
    /// Messages deleted from the archive by this call.
    pub erased: u64,
    /// Whether more remain (call again).
    pub more: bool,
}

/// Erases a user's messages: each still in a room's Redis history is
/// deleted there (members get `deleted`, history shows a tombstone), and
/// every one is removed from the archive.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{user}/messages",
    tag = "users",
    params(("user" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "Up to 1,000 erased; `more` says to call again", body = Erased),
        (status = 503, description = "No archive, or it did not answer (`archive_unavailable`)", body = ErrorBody),
        Refusals,
    ),
    security(("api_key" = []))
)]
pub async fn erase(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<Erased>, ApiError> {
    caller.require(Scope::Moderate)?;
    input::user(&user)?;
    let archive = archive(&chat)?;
    let sent = archive
        .messages_of(&user, ERASE_BATCH)
        .await
        .map_err(failed(&chat, "erase"))?;
    let by = Sender {
        id: format!("api:{}", caller.name),
        name: None,
        avatar: None,
        kind: Some(SenderKind::System),
    };
    for message in &sent {
        let Ok(room) = RoomName::parse_internal(&message.room) else {
            continue;
        };
        let edit = Edit {
            room,
            // The id guards against the same seq in a newer epoch.
            target: Target {
                seq: message.seq,
                id: Some(message.id),
            },
            kind: ChangeKind::Delete,
            by: by.clone(),
            moderator: true,
        };
        // Gone from Redis or deleted already: the archive's copy is all there is.
        match chat.change(edit).await? {
            Changed::Applied(_) | Changed::Unchanged | Changed::Refused(_) => {}
        }
    }
    let ids: Vec<uuid::Uuid> = sent.iter().map(|m| m.id).collect();
    let erased = archive.erase(&ids).await.map_err(failed(&chat, "erase"))?;
    tracing::info!(user = %user, erased, key = %caller.name, "a user's messages were erased");
    Ok(Json(Erased {
        user,
        erased,
        more: sent.len() == ERASE_BATCH,
    }))
}

//! `POST /api/v1/rooms/{room}/files?name=<file name>`: a member who may post
//! in the room uploads a file as the request body. The body is streamed into
//! the store (never held whole), bounded by `--max-upload-bytes`; the type is
//! decided from the first bytes; an image is decoded with bounded memory for
//! its size and thumbnail (a decompression bomb is refused). The metadata is
//! written last, so an upload cut short leaves nothing that can be served.

use std::sync::Arc;

use axum::{
    Json,
    body::{Body, BodyDataStream},
    extract::State,
    http::{HeaderMap, StatusCode, header},
};
use bytes::Bytes;
use chorus_protocol::RoomName;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use super::{
    kind::{SNIFF_BYTES, THUMBNAILED, sniff},
    metadata,
    state::Files,
    store::Upload,
    store::{FileMeta, StoreError},
    thumbnail::{self, ThumbnailError},
};
use crate::{
    api::{
        input,
        reply::{ApiError, ApiPath, ApiQuery},
    },
    auth::Access,
    chat::publish::unix_millis,
};

/// Longest file name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Largest image read back for its thumbnail; larger ones are kept without.
pub const MAX_THUMBNAILED_BYTES: u64 = 32 * 1024 * 1024;
/// Most of a refused upload's body read (and dropped) before the refusal.
const DRAIN_BYTES: usize = 32 * 1024 * 1024;
/// Longest a refused upload's body is read before the refusal.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The upload's query.
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    /// The file's name, as shown to readers (default `file`).
    pub name: Option<String>,
}

/// A stored upload, as the uploader gets it back.
#[derive(Debug, Serialize)]
pub struct Uploaded {
    /// The file's id (for `GET /api/v1/files/{id}`).
    pub id: Uuid,
    /// The room it belongs to.
    pub room: String,
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its type, decided from its bytes.
    pub content_type: String,
    /// For images: width in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// For images: height in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Whether `GET /api/v1/files/{id}/thumbnail` has a thumbnail.
    pub thumbnail: bool,
}

impl From<FileMeta> for Uploaded {
    fn from(meta: FileMeta) -> Self {
        Self {
            id: meta.id,
            room: meta.room,
            name: meta.name,
            size: meta.size,
            content_type: meta.content_type,
            width: meta.width,
            height: meta.height,
            thumbnail: meta.thumbnail,
        }
    }
}

/// Stores the request body as a file of `room`.
pub async fn upload(
    State(files): State<Arc<Files>>,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let mut chunks = body.into_data_stream();
    let admitted = admit(&files, &room, query, &headers);
    let Admitted {
        user,
        room,
        name,
        _streaming,
    } = match admitted {
        Ok(admitted) => admitted,
        Err((outcome, error)) => {
            files.metrics.upload(outcome);
            drain(&mut chunks).await;
            return Err(error);
        }
    };
    let counted = |outcome: &'static str| {
        let metrics = files.metrics.clone();
        move |error: ApiError| {
            metrics.upload(outcome);
            error
        }
    };
    let max = files.config.max_upload_bytes;
    let id = Uuid::now_v7();
    let upload = files
        .store
        .begin(id)
        .await
        .map_err(|e| counted("store_error")(e.into()))?;
    let (size, head) = match stream(&files, upload, &mut chunks, max).await {
        Ok(done) => done,
        Err((outcome, error)) => return Err(counted(outcome)(error)),
    };
    let mut meta = FileMeta {
        id,
        room: room.as_str().to_owned(),
        uploader: user,
        name,
        size,
        content_type: sniff(&head),
        width: None,
        height: None,
        thumbnail: false,
        uploaded_at: unix_millis(),
    };
    if let Err((outcome, error)) = describe(&files, &mut meta).await {
        if let Err(cleanup) = files.store.delete(id).await {
            tracing::warn!(error = %cleanup, %id, "a refused upload was not removed");
        }
        return Err(counted(outcome)(error));
    }
    files.metrics.upload("stored");
    files.metrics.bytes.inc_by(size);
    tracing::debug!(%id, %room, size, content_type = %meta.content_type, "file uploaded");
    Ok((StatusCode::CREATED, Json(meta.into())))
}

/// What an admitted upload needs: who, where, under which name, and its
/// place among the node's concurrent uploads.
struct Admitted {
    /// The uploader's user id.
    user: String,
    /// The room the file belongs to.
    room: RoomName,
    /// The file's name.
    name: String,
    /// Held while the body streams (`--max-concurrent-uploads`).
    _streaming: OwnedSemaphorePermit,
}

/// Decides, before any of the body is read, whether this upload may go on:
/// the token, the right to post in the room, the name, the declared size,
/// the user's rate and the node's concurrent uploads.
fn admit(
    files: &Files,
    room: &str,
    query: UploadQuery,
    headers: &HeaderMap,
) -> Result<Admitted, (&'static str, ApiError)> {
    let identity = files
        .authenticate(headers, None)
        .map_err(|e| ("unauthorized", e))?;
    let room = input::room(&files.chat, room).map_err(|e| ("invalid", e))?;
    let user = identity.user.id.as_str();
    let policy = &files.chat.config().auth.policy;
    if policy.access(user, &identity.grants, &room) != Access::ReadWrite {
        let error = ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your token may not post in this room",
        );
        return Err(("forbidden", error));
    }
    let name = checked_name(query.name).map_err(|e| ("invalid", e))?;
    let max = files.config.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max) {
        return Err(("too_large", too_large(max)));
    }
    files.take_upload(user).map_err(|e| ("rate_limited", e))?;
    let Ok(streaming) = files.uploads.clone().try_acquire_owned() else {
        let error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_uploads",
            "this node takes as many uploads at once as it may (--max-concurrent-uploads); retry",
        );
        return Err(("busy", error));
    };
    Ok(Admitted {
        user: user.to_owned(),
        room,
        name,
        _streaming: streaming,
    })
}

/// Reads and drops what is left of a refused upload's body (at most
/// [`DRAIN_BYTES`], for at most [`DRAIN_TIME`]) before the refusal is sent:
/// a connection closed with unread bytes is reset, and the reset can reach
/// the client (or nginx, which then answers 502) before the refusal does.
async fn drain(chunks: &mut BodyDataStream) {
    let mut drained = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = chunks.next().await {
            drained += chunk.len();
            if drained > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// The upload's name: 1-255 bytes, no control characters or path separators.
fn checked_name(name: Option<String>) -> Result<String, ApiError> {
    let name = name.unwrap_or_else(|| "file".into());
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(ApiError::bad(
            "invalid_name",
            "name must be 1-255 bytes without control characters, / or \\",
        ));
    }
    Ok(name)
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!("a file may be at most {max} bytes (--max-upload-bytes)"),
    )
}

/// Streams `body` into `upload`; the size and the first bytes, or why not
/// (the upload then leaves nothing behind).
async fn stream(
    files: &Files,
    mut upload: Upload,
    chunks: &mut BodyDataStream,
    max: u64,
) -> Result<(u64, Vec<u8>), (&'static str, ApiError)> {
    let (mut size, mut head) = (0u64, Vec::with_capacity(SNIFF_BYTES));
    let failure = loop {
        let chunk: Bytes = match chunks.next().await {
            None => break None,
            Some(Ok(chunk)) => chunk,
            Some(Err(_)) => {
                let error = ApiError::bad("truncated", "the upload ended before its body did");
                break Some(("truncated", error));
            }
        };
        size += chunk.len() as u64;
        if size > max {
            break Some(("too_large", too_large(max)));
        }
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        if let Err(error) = files.store.write(&mut upload, &chunk).await {
            break Some(("store_error", error.into()));
        }
    };
    let failure = failure.or_else(|| {
        (size == 0).then(|| ("empty", ApiError::bad("empty_file", "the file is empty")))
    });
    if let Some(failure) = failure {
        files.store.abort(upload).await;
        drain(chunks).await;
        return Err(failure);
    }
    match files.store.finish(upload).await {
        Ok(()) => Ok((size, head)),
        Err(error) => Err(("store_error", error.into())),
    }
}

/// Completes `meta` (an image's size and thumbnail) and records it.
async fn describe(files: &Files, meta: &mut FileMeta) -> Result<(), (&'static str, ApiError)> {
    let store_error = |error: StoreError| ("store_error", ApiError::from(error));
    if THUMBNAILED.contains(&meta.content_type.as_str()) && meta.size <= MAX_THUMBNAILED_BYTES {
        let _decoding = files.decodes.acquire().await.expect("never closed");
        let (_, bytes) = files
            .store
            .read(meta.id, "data", None)
            .await
            .map_err(store_error)?;
        let started = std::time::Instant::now();
        let content_type = meta.content_type.clone();
        // The thumbnail, and the file without its metadata (EXIF, GPS ...).
        let made = tokio::task::spawn_blocking(move || {
            let made = thumbnail::make(&bytes)?;
            let stripped = metadata::strip(&content_type, &bytes, made.orientation);
            Ok::<_, ThumbnailError>((made, stripped))
        })
        .await
        .expect("thumbnails do not panic");
        files
            .metrics
            .thumbnail_seconds
            .observe(started.elapsed().as_secs_f64());
        match made {
            Ok((made, stripped)) => {
                files
                    .store
                    .put(meta.id, "thumbnail", Bytes::from(made.png))
                    .await
                    .map_err(store_error)?;
                if let Some(stripped) = stripped {
                    meta.size = stripped.len() as u64;
                    files
                        .store
                        .put(meta.id, "data", Bytes::from(stripped))
                        .await
                        .map_err(store_error)?;
                }
                (meta.width, meta.height, meta.thumbnail) =
                    (Some(made.width), Some(made.height), true);
            }
            Err(ThumbnailError::TooLarge) => {
                let error = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "image_too_large",
                    ThumbnailError::TooLarge.to_string(),
                );
                return Err(("image_too_large", error));
            }
            // Not the image its signature says: kept, served as a download.
            Err(ThumbnailError::Unreadable(why)) => {
                tracing::debug!(id = %meta.id, %why, "an uploaded image does not decode");
                meta.content_type = "application/octet-stream".into();
            }
        }
    }
    files.store.put_meta(meta).await.map_err(store_error)
}

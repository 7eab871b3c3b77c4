//! `GET /api/v1/files/{id}` and `GET /api/v1/files/{id}/thumbnail`: a file,
//! for whoever may read the room it was uploaded to (chat token in
//! `Authorization: Bearer`, or `?token=` for an `<img src>`), streamed from
//! the store, with single range requests. Served so that a browser never runs
//! it: `X-Content-Type-Options: nosniff`, a `Content-Security-Policy` that
//! allows nothing, and `Content-Disposition: attachment` unless the type is
//! on the inline list (images, audio, video, plain text).

use std::{ops::Range, sync::Arc};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    kind::inline,
    state::Files,
    store::{FileMeta, StoreError},
};
use crate::{
    api::reply::{ApiError, ApiPath, ApiQuery},
    auth::Access,
};

/// What a browser may do with a served file: nothing (no script, no
/// subresource, no form, a unique origin).
pub const FILE_CSP: &str = "default-src 'none'; sandbox";

/// The download's query.
#[derive(Debug, Deserialize)]
pub struct DownloadQuery {
    /// The chat token, for requests that cannot send a header (`<img src>`).
    pub token: Option<String>,
}

/// The file's bytes.
pub async fn data(
    State(files): State<Arc<Files>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let meta = readable(&files, &id, &headers, query.token.as_deref()).await?;
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => match byte_range(value, meta.size) {
            Ok(range) => range,
            Err(()) => {
                let mut refused = Response::new(Body::empty());
                *refused.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                let all = format!("bytes */{}", meta.size);
                refused.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&all).expect("ASCII"),
                );
                return Ok(refused);
            }
        },
    };
    let stream = files.store.stream(meta.id, "data", range.clone()).await?;
    let mut response = Response::new(Body::from_stream(stream));
    let length = range.as_ref().map_or(meta.size, |r| r.end - r.start);
    if let Some(range) = &range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {}-{}/{}", range.start, range.end - 1, meta.size);
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).expect("ASCII"),
        );
    }
    let disposition = match inline(&meta.content_type) {
        true => "inline",
        false => "attachment",
    };
    safe_headers(&mut response, &meta.content_type, length);
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&content_disposition(disposition, &meta.name)).expect("encoded"),
    );
    Ok(response)
}

/// The file's thumbnail (PNG), for an image that has one.
pub async fn thumbnail(
    State(files): State<Arc<Files>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let meta = readable(&files, &id, &headers, query.token.as_deref()).await?;
    if !meta.thumbnail {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_thumbnail",
            "this file has no thumbnail (not an image, or too large to decode)",
        ));
    }
    let (size, bytes) = files.store.read(meta.id, "thumbnail", None).await?;
    let mut response = Response::new(Body::from(bytes));
    safe_headers(&mut response, "image/png", size);
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline"),
    );
    Ok(response)
}

/// The metadata of file `id`, if the request's user may read its room.
async fn readable(
    files: &Files,
    id: &str,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<FileMeta, ApiError> {
    let identity = files.authenticate(headers, token)?;
    let id =
        Uuid::parse_str(id).map_err(|_| ApiError::bad("invalid_file_id", "a file id is a UUID"))?;
    let meta = files.store.meta(id).await?;
    let room = chorus_protocol::RoomName::parse(&meta.room)
        .map_err(|_| StoreError::Failed("a stored file names an invalid room".into()))?;
    let policy = &files.chat.config().auth.policy;
    if policy.access(&identity.user.id, &identity.grants, &room) == Access::Denied {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your token may not read the room this file was posted in",
        ));
    }
    Ok(meta)
}

/// Type, length and the headers that keep a browser from running the file.
fn safe_headers(response: &mut Response, content_type: &str, length: u64) {
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
}

/// `inline` or `attachment`, with the name as an ASCII fallback and in
/// RFC 5987 form.
fn content_disposition(disposition: &str, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// A single `bytes=` range of an object of `size` bytes, as a half-open
/// range; `Ok(None)` for a header this does not take (several ranges, other
/// units: the whole file is sent), `Err` for a range outside the file.
fn byte_range(value: &HeaderValue, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(spec) = value.to_str().ok().and_then(|v| v.strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| ());
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        // The last `end` bytes.
        (true, false) => {
            let last = number(end)?.min(size);
            size - last..size
        }
        (false, true) => number(start)?..size,
        (false, false) => number(start)?..number(end)?.saturating_add(1).min(size),
        (true, true) => return Err(()),
    };
    if range.start >= range.end || range.start >= size {
        return Err(());
    }
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(spec: &str, size: u64) -> Result<Option<Range<u64>>, ()> {
        byte_range(&HeaderValue::from_str(spec).unwrap(), size)
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range("bytes=0-99", 1000), Ok(Some(0..100)));
        assert_eq!(range("bytes=900-", 1000), Ok(Some(900..1000)));
        assert_eq!(range("bytes=-100", 1000), Ok(Some(900..1000)));
        assert_eq!(range("bytes=990-2000", 1000), Ok(Some(990..1000)));
        assert_eq!(range("bytes=1000-", 1000), Err(()));
        assert_eq!(range("bytes=5-2", 1000), Err(()));
        assert_eq!(range("bytes=-0", 1000), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(range("items=0-1", 1000), Ok(None));
    }

    #[test]
    fn names_are_quoted_safely() {
        assert_eq!(
            content_disposition("attachment", "a \"b\".pdf"),
            "attachment; filename=\"a _b_.pdf\"; filename*=UTF-8''a%20%22b%22.pdf"
        );
        assert_eq!(
            content_disposition("inline", "été.png"),
            "inline; filename=\"_t_.png\"; filename*=UTF-8''%C3%A9t%C3%A9.png"
        );
    }
}

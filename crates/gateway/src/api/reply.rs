//! The server API's answers to bad input and failures: `{code, message}`
//! with an HTTP status, and the extractors that turn axum's rejections
//! (path, query, JSON body) into such answers.

use std::{borrow::Cow, time::Duration};

use axum::{
    Json,
    extract::{
        FromRequest, FromRequestParts, Path, Query, Request,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use chorus_backplane::BackplaneError;
use serde::{Serialize, de::DeserializeOwned};
use utoipa::ToSchema;

use crate::chat::{history::PageError, queries::AskError};

/// Largest request body the server API reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A refusal or failure, as every server API route answers it.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    status: StatusCode,
    /// The machine-readable code (docs/api.md lists them).
    code: &'static str,
    /// What went wrong, for people.
    message: Cow<'static, str>,
    /// For 429: when to try again.
    retry_after: Option<Duration>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable: `invalid_request`, `invalid_room`, `invalid_key`, `missing_scope` ...
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A refusal with `status` and `code`.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with `code`.
    pub fn bad(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 429: the key's rate was exceeded; retry after `wait`.
    pub fn rate_limited(wait: Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this key's request rate was exceeded; retry after Retry-After seconds",
            )
        }
    }
}

impl From<BackplaneError> for ApiError {
    fn from(error: BackplaneError) -> Self {
        tracing::debug!(%error, "server API request failed on the backplane");
        match error {
            BackplaneError::UnknownMessage => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_message",
                "no message with that id in the room's history",
            ),
            _ => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backplane_unavailable",
                "the backplane (Redis) did not answer; retry",
            ),
        }
    }
}

impl From<PageError> for ApiError {
    fn from(error: PageError) -> Self {
        match error {
            PageError::Backplane(error) => error.into(),
            PageError::UnknownMessage => BackplaneError::UnknownMessage.into(),
            PageError::ArchiveUnavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "archive_unavailable",
                "older history is in the archive, which did not answer; retry later",
            ),
        }
    }
}

impl From<AskError> for ApiError {
    fn from(error: AskError) -> Self {
        match error {
            AskError::Backplane(error) => error.into(),
            AskError::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_busy",
                "this node has as many cluster listings in flight as it may; retry",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message.into_owned(),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("ascii"));
        }
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

/// A JSON request body; a body that is not JSON of the expected shape is
/// refused with 400, 413 or 415.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // Read as a JSON value first: serde would take an array for a
        // struct (its fields in order), and a body must be an object.
        match Json::<serde_json::Value>::from_request(request, state).await {
            Ok(Json(value)) if !value.is_object() => Err(ApiError::bad(
                "invalid_request",
                "the body must be a JSON object",
            )),
            Ok(Json(value)) => serde_json::from_value(value)
                .map(Self)
                .map_err(|error| ApiError::bad("invalid_request", error.to_string())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            )),
            Err(JsonRejection::JsonSyntaxError(_)) => {
                Err(ApiError::bad("invalid_json", "the body is not valid JSON"))
            }
            Err(JsonRejection::BytesRejection(_)) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("the body is larger than {} bytes", MAX_REQUEST_BYTES),
            )),
            Err(other) => Err(ApiError::bad("invalid_request", other.body_text())),
        }
    }
}

/// Path parameters; ones that do not parse are refused with 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|error: PathRejection| ApiError::bad("invalid_request", error.body_text()))
    }
}

/// A query string; one that does not parse is refused with 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|error: QueryRejection| ApiError::bad("invalid_query", error.body_text()))
    }
}

/// The refusals every authenticated route may answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// Malformed input: path, query or body (`invalid_request`, `invalid_json`,
    /// `invalid_query`, `invalid_room`, `invalid_sender`, `empty_body`, `body_too_large` ...).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No key, or not one of ours (`unauthenticated`, `invalid_key`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key lacks the route's scope (`missing_scope`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The key's rate was exceeded (`rate_limited`); see `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// The backplane did not answer (`backplane_unavailable`), or this node
    /// is answering as many cluster listings as it may (`cluster_busy`); retry.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The refusals of routes with a JSON body, besides [`Refusals`].
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum BodyRefusals {
    /// The body is larger than the API takes (`request_too_large`).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json` (`unsupported_media_type`).
    #[response(status = 415)]
    NotJson(ErrorBody),
}

//! HTTP answers shared by the routes: JSON refusals `{code, message}` and the
//! bearer token of a request.

use axum::{
    Json,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chorus_protocol::MAX_TOKEN_BYTES;

use crate::{auth::AuthError, metrics::Metrics};

/// The token of a request: `Authorization: Bearer` first, then `query` (`?token=`).
pub fn presented_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Result<Option<&'a str>, AuthError> {
    let token = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| AuthError::Malformed("Authorization is not ASCII".into()))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| AuthError::Malformed("Authorization must be Bearer".into()))?;
            Some(token.trim())
        }
        None => query,
    };
    match token {
        Some(t) if t.is_empty() || t.len() > MAX_TOKEN_BYTES => Err(AuthError::Malformed(format!(
            "token must be 1 to {MAX_TOKEN_BYTES} bytes"
        ))),
        other => Ok(other),
    }
}

/// 401 for a refused token, with the code a client acts on.
pub fn unauthorized(metrics: &Metrics, error: &AuthError) -> Response {
    metrics.refused("unauthorized");
    let code = match error {
        AuthError::Expired => "token_expired",
        AuthError::Revoked => "token_revoked",
        _ => "invalid_token",
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({ "code": code, "message": error.to_string() })),
    )
        .into_response()
}

/// A JSON refusal `{code, message}` with `status`.
pub fn refusal(status: StatusCode, code: &'static str, message: &'static str) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}

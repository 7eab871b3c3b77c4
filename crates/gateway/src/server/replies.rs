//! HTTP answers shared by the routes: JSON refusals `{code, message}`.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{auth::AuthError, metrics::Metrics};

/// 401 for a refused token, with the code a client acts on.
pub fn unauthorized(metrics: &Metrics, error: &AuthError) -> Response {
    metrics.refused("unauthorized");
    let code = error.code();
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

//! Acting on a user through the server API (the `users` scope): close their
//! connections on every node (`POST /users/{user}/disconnect`), refuse their
//! tokens (`POST /users/{user}/revoke`).

use std::sync::Arc;

use axum::{Json, extract::State, http::StatusCode};
use chorus_backplane::Revocation;
use chorus_protocol::close;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    caller::Caller,
    input,
    reply::{ApiError, ApiPath, Body, BodyRefusals, ErrorBody, Refusals},
};
use crate::{
    auth::Scope,
    chat::{Chat, publish::unix_millis},
};

/// Longest revocation: a year.
const MAX_REVOCATION_MS: u64 = 366 * 24 * 3600 * 1000;

/// How to disconnect.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    /// Whether the client may reconnect: true (default) closes with 4007
    /// (reconnect after a delay), false with 4501 (do not reconnect).
    #[serde(default = "yes")]
    pub reconnect: bool,
}

fn yes() -> bool {
    true
}

/// A disconnect sent to every node.
#[derive(Debug, Serialize, ToSchema)]
pub struct Disconnected {
    /// The user.
    pub user: String,
    /// The close code their connections get.
    pub code: u16,
}

/// Closes every connection of a user, on every node.
#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/disconnect",
    tag = "users",
    params(("user" = String, Path, description = "The user's id (the tokens' `sub`)")),
    request_body = DisconnectRequest,
    responses(
        (status = 202, description = "Sent to every node; connections close within moments", body = Disconnected),
        Refusals,
        BodyRefusals,
    ),
    security(("api_key" = []))
)]
pub async fn disconnect(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(user): ApiPath<String>,
    Body(request): Body<DisconnectRequest>,
) -> Result<(StatusCode, Json<Disconnected>), ApiError> {
    caller.require(Scope::Users)?;
    input::user(&user)?;
    let code = match request.reconnect {
        true => close::DISCONNECTED,
        false => close::KICKED,
    };
    chat.disconnect(&user, code).await?;
    tracing::info!(key = %caller.name, user = ?user, code, "user disconnected through the server API");
    Ok((StatusCode::ACCEPTED, Json(Disconnected { user, code })))
}

/// Which of a user's tokens to refuse, and for how long.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Until when (ms since the Unix epoch; in the future, at most a year
    /// ahead). Make it outlive the longest token you issue.
    #[schema(minimum = 0)]
    pub until: i64,
    /// Tokens issued (`iat`) before this are refused (ms since the Unix
    /// epoch; default: now). Tokens without `iat` are always refused.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub issued_before: Option<i64>,
}

/// A revocation in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// The user.
    pub user: String,
    /// Tokens issued before this are refused (ms since the Unix epoch).
    pub issued_before: u64,
    /// Until this (ms since the Unix epoch).
    pub until: u64,
}

/// Refuses a user's tokens issued before a time, on every node, and closes
/// their connections (close code 4502).
#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/revoke",
    tag = "users",
    params(("user" = String, Path, description = "The user's id (the tokens' `sub`)")),
    request_body = RevokeRequest,
    responses(
        (status = 200, description = "In force on every node within a second", body = Revoked),
        (status = 409, description = "100,000 users already have a revocation in force (`too_many_revocations`)", body = ErrorBody),
        Refusals,
        BodyRefusals,
    ),
    security(("api_key" = []))
)]
pub async fn revoke(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(user): ApiPath<String>,
    Body(request): Body<RevokeRequest>,
) -> Result<Json<Revoked>, ApiError> {
    caller.require(Scope::Users)?;
    input::user(&user)?;
    let now = unix_millis();
    let until = u64::try_from(request.until).unwrap_or(0);
    if until <= now || until > now + MAX_REVOCATION_MS {
        return Err(ApiError::bad(
            "invalid_request",
            "until must be in the future and at most a year ahead (ms since the Unix epoch)",
        ));
    }
    let issued_before = match request.issued_before.map(u64::try_from) {
        None => now,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => {
            return Err(ApiError::bad(
                "invalid_request",
                "issued_before is ms since the Unix epoch",
            ));
        }
    };
    let revocation = Revocation {
        issued_before,
        until,
    };
    if !chat.revoke(&user, revocation).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_revocations",
            "100,000 users already have a revocation in force",
        ));
    }
    tracing::info!(key = %caller.name, user = ?user, "user's tokens revoked through the server API");
    Ok(Json(Revoked {
        user,
        issued_before: revocation.issued_before,
        until: revocation.until,
    }))
}

//! `POST /api/login`: the development login that hands out guest tokens.
//!
//! Only on when `--dev-login` says so (the zero-configuration single node). Anyone
//! can get a token for any display name here, which is what a demo needs and what
//! production must never have.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::{node::Node, replies::refusal};
use crate::auth::{RoomClaims, TokenRequest};

/// Lifetime of a guest token.
const GUEST_TTL: Duration = Duration::from_secs(12 * 3600);
/// Longest display name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// The body of a login.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    /// Display name for the guest.
    name: String,
}

/// Answers a login with a guest token for every room except others' direct messages.
pub async fn login(
    State(node): State<Arc<Node>>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Response {
    let auth = &node.config().auth;
    let Some(minter) = auth.minter.as_ref().filter(|_| auth.dev_login) else {
        return refusal(
            StatusCode::NOT_FOUND,
            "dev_login_disabled",
            "the development login is off on this node (--dev-login)",
        );
    };
    let Ok(Json(request)) = body else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send a JSON object like {\"name\": \"Ada\"}",
        );
    };
    let name = request.name.trim();
    let chars = name.chars().count();
    if !(1..=MAX_NAME_CHARS).contains(&chars) || name.chars().any(char::is_control) {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            "name must be 1-64 printable characters",
        );
    }
    let hex = uuid::Uuid::new_v4().simple().to_string();
    let id = format!("guest-{}", &hex[..12]);
    let minted = minter.mint(TokenRequest {
        sub: id.clone(),
        name: Some(name.to_owned()),
        avatar: None,
        ttl: GUEST_TTL,
        rooms: RoomClaims {
            join: vec!["*".into()],
            post: vec!["*".into()],
            moderate: Vec::new(),
        },
    });
    match minted {
        Ok((token, expires_at)) => (
            StatusCode::OK,
            Json(serde_json::json!({
                "token": token,
                "user": { "id": id, "name": name },
                "token_expires_at": expires_at,
            })),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot sign a guest token");
            refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "cannot sign a token",
            )
        }
    }
}

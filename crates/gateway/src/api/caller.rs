//! Who calls the server API: the key in `Authorization: Bearer`, found by its
//! hash among the configured keys, within its rate, with the route's scope.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, StatusCode, header, request::Parts},
};

use super::reply::ApiError;
use crate::{auth::Scope, chat::Chat};

/// Longest bearer credential read: API keys are short; a user's token (for
/// the routes that take one) is at most this long.
const MAX_BEARER_BYTES: usize = chorus_protocol::MAX_TOKEN_BYTES;

/// The key a request presented, once checked and counted against its rate.
pub struct Caller {
    /// The key's name (logged and counted; the key itself never is).
    pub name: String,
    /// What the key may do.
    scopes: Vec<Scope>,
}

impl Caller {
    /// Refuses with 403 unless the key has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match self.scopes.contains(&scope) {
            true => Ok(()),
            false => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing_scope",
                format!("this key lacks the {:?} scope", scope.name()),
            )),
        }
    }
}

impl FromRequestParts<Arc<Chat>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, chat: &Arc<Chat>) -> Result<Self, ApiError> {
        let presented = bearer(chat, &parts.headers)?;
        Self::with_key(chat, presented)
    }
}

impl Caller {
    /// The caller holding API key `presented`, if it is one of ours and
    /// within its rate.
    pub fn with_key(chat: &Chat, presented: &str) -> Result<Self, ApiError> {
        let Some(key) = chat.config().api_keys.find(presented) else {
            chat.metrics().refused("api_unauthorized");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_key",
                "this is not a key of this cluster",
            ));
        };
        if let Err(wait) = key.bucket.take() {
            chat.metrics().refused("api_rate_limited");
            return Err(ApiError::rate_limited(wait));
        }
        Ok(Self {
            name: key.name.clone(),
            scopes: key.scopes.clone(),
        })
    }
}

/// The bearer credential of a request (an API key, or for a few routes a
/// user's token), or `unauthenticated`.
pub fn bearer<'a>(chat: &Chat, headers: &'a HeaderMap) -> Result<&'a str, ApiError> {
    let unauthenticated = |message: &'static str| {
        chat.metrics().refused("api_unauthorized");
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthenticated("send Authorization: Bearer <API key>"));
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= MAX_BEARER_BYTES)
        .ok_or_else(|| unauthenticated("Authorization must be Bearer <API key>"))
}

//! Who calls the server API: the key in `Authorization: Bearer`, found by its
//! hash among the configured keys, within its rate, with the route's scope.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, header, request::Parts},
};

use super::reply::ApiError;
use crate::{auth::Scope, chat::Chat};

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
        let unauthenticated = |message: &'static str| {
            chat.metrics().refused("api_unauthorized");
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
        };
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthenticated("send Authorization: Bearer <API key>"));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|key| !key.is_empty() && key.len() <= 256);
        let Some(presented) = presented else {
            return Err(unauthenticated("Authorization must be Bearer <API key>"));
        };
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

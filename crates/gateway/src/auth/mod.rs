//! Who may do what, and how often: tokens, room grants, origins, rate limits
//! and room-name rules.
//!
//! A connection proves who it is with a JWT ([`Verifier`]); the token's `rooms`
//! claim together with the node's [`RoomPolicy`] decides where it may join and
//! post. [`Origins`] guards the upgrade against cross-site WebSocket hijacking.
//! [`Bucket`]s bound how fast a connection and a user may act ([`RateLimits`]),
//! and [`RoomRules`] which room names the node accepts.

mod api_keys;
mod grants;
mod limits;
mod origin;
mod signature;
mod token;

pub use api_keys::{ApiKey, ApiKeys, Scope, new_key};
pub use grants::{Access, Grants, MAX_PATTERNS, Patterns, RoomPolicy};
pub use limits::{Bucket, ROOM_NAME_PUNCTUATION, Rate, RateLimits, RoomRules};
pub use origin::Origins;
pub use signature::{secret_key, signature};
pub use token::{
    AuthError, Claims, Identity, Minter, RoomClaims, TokenRequest, Verifier, parse_algorithm,
    presented_token,
};

use std::time::Duration;

/// Everything a node needs to authenticate and authorize clients.
#[derive(Clone)]
pub struct AuthConfig {
    /// Checks presented tokens.
    pub verifier: Verifier,
    /// Signs guest tokens for the development login (needs the signing key).
    pub minter: Option<Minter>,
    /// Whether `POST /api/login` hands out guest tokens.
    pub dev_login: bool,
    /// Public, read-only and direct-message room rules.
    pub policy: RoomPolicy,
    /// Origins allowed to open a WebSocket.
    pub origins: Origins,
    /// Time allowed between the upgrade and a successful `auth` frame.
    pub auth_timeout: Duration,
}

impl std::fmt::Debug for AuthConfig {
    // Keys stay out of logs: only their shape is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("algorithms", &self.verifier.algorithms())
            .field("dev_login", &self.dev_login)
            .field("origins", &self.origins)
            .field("auth_timeout", &self.auth_timeout)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// HS256 with `secret`, signing and verifying; no issuer or audience; no dev login.
    pub fn shared_secret(secret: &[u8]) -> Self {
        let algorithm = jsonwebtoken::Algorithm::HS256;
        Self {
            verifier: Verifier::new(
                algorithm,
                jsonwebtoken::DecodingKey::from_secret(secret),
                None,
                None,
                Duration::from_secs(10),
            ),
            minter: Some(Minter::new(
                algorithm,
                jsonwebtoken::EncodingKey::from_secret(secret),
                None,
                None,
            )),
            dev_login: false,
            policy: RoomPolicy::default(),
            origins: Origins::SameOrigin,
            auth_timeout: Duration::from_secs(5),
        }
    }

    /// A random secret that lives as long as the process, with the development
    /// login on: the zero-configuration single node.
    pub fn development() -> Self {
        let mut secret = Vec::with_capacity(32);
        secret.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            dev_login: true,
            ..Self::shared_secret(&secret)
        }
    }
}

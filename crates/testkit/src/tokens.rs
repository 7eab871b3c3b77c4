//! Tokens for tests, signed with the secret every test node shares.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use chorus_gateway::auth::{AuthConfig, Minter, RoomClaims, TokenRequest};
use jsonwebtoken::{Algorithm, EncodingKey};

/// The HS256 secret of test nodes (`test_config`, `ProcessNode`).
pub const TEST_SECRET: &str = "chorus-test-secret-0123456789abcdef";

/// Auth settings of test nodes: HS256 with [`TEST_SECRET`].
pub fn test_auth() -> AuthConfig {
    AuthConfig::shared_secret(TEST_SECRET.as_bytes())
}

fn minter() -> Minter {
    Minter::new(
        Algorithm::HS256,
        EncodingKey::from_secret(TEST_SECRET.as_bytes()),
        None,
        None,
    )
}

/// A token for `request`, signed with [`TEST_SECRET`].
pub fn token_for(request: TokenRequest) -> String {
    minter().mint(request).expect("signing a test token").0
}

/// A one-hour token for `sub` that may join and post anywhere (but others' DMs).
pub fn token(sub: &str) -> String {
    token_for(TokenRequest {
        sub: sub.into(),
        name: None,
        avatar: None,
        ttl: Duration::from_secs(3600),
        rooms: everywhere(),
    })
}

/// An HS256 token for `sub`, valid for an hour in every room, signed with `secret`
/// (for benchmarks against nodes started with another secret).
pub fn token_with_secret(secret: &str, sub: &str) -> String {
    let minter = chorus_gateway::auth::Minter::new(
        jsonwebtoken::Algorithm::HS256,
        jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        None,
        None,
    );
    let (token, _) = minter
        .mint(TokenRequest {
            sub: sub.into(),
            ttl: Duration::from_secs(3600),
            rooms: everywhere(),
            ..Default::default()
        })
        .expect("minting a token");
    token
}

/// Grants to join and post in every room.
pub fn everywhere() -> RoomClaims {
    RoomClaims {
        join: vec!["*".into()],
        post: vec!["*".into()],
        moderate: Vec::new(),
    }
}

/// A user id no other client of this test process has.
pub fn fresh_user() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("user-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

//! Tokens for the simulated users, signed with the nodes' HS256 secret.

use std::time::Duration;

use anyhow::{Result, anyhow};
use chorus_gateway::auth::{RoomClaims, TokenRequest};
use jsonwebtoken::{Algorithm, EncodingKey};

/// Mints one token per client: user `lg-<index>`, every room, valid a day.
pub struct Minter(chorus_gateway::auth::Minter);

impl Minter {
    pub fn new(secret: &str) -> Self {
        Self(chorus_gateway::auth::Minter::new(
            Algorithm::HS256,
            EncodingKey::from_secret(secret.as_bytes()),
            None,
            None,
        ))
    }

    pub fn token(&self, index: usize) -> Result<String> {
        self.0
            .mint(TokenRequest {
                sub: format!("lg-{index}"),
                ttl: Duration::from_secs(24 * 3600),
                rooms: RoomClaims {
                    join: vec!["*".into()],
                    post: vec!["*".into()],
                    moderate: Vec::new(),
                },
                ..Default::default()
            })
            .map(|(token, _)| token)
            .map_err(|e| anyhow!("minting a token: {e}"))
    }
}

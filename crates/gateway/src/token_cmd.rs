//! `chorus token`: mint a token for scripts, load tests and the worked example.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::{
    auth::{Minter, RoomClaims, TokenRequest, parse_algorithm},
    config::JwtArgs,
};

/// Flags of `chorus token`. Key flags read the same environment variables as the server.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// User id (the `sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Avatar URL.
    #[arg(long)]
    pub avatar: Option<String>,
    /// Lifetime.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Room patterns the user may join (comma-separated, `*` wildcard).
    #[arg(long, value_delimiter = ',')]
    pub join: Vec<String>,
    /// Room patterns the user may post to (comma-separated, `*` wildcard).
    #[arg(long, value_delimiter = ',')]
    pub post: Vec<String>,
    /// Room patterns where the user may edit and delete anyone's messages.
    #[arg(long, value_delimiter = ',')]
    pub moderate: Vec<String>,
    /// Secret, algorithm, issuer and audience, as the server reads them.
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// PEM private key for RS256 or ES256 (RS256 unless --jwt-algorithm ES256).
    #[arg(long, env = "CHORUS_JWT_PRIVATE_KEY", conflicts_with = "jwt_secret")]
    pub jwt_private_key: Option<PathBuf>,
}

/// Mints the token `args` describe.
pub fn mint(args: &TokenArgs) -> Result<String, String> {
    let algorithm = match &args.jwt.jwt_algorithm {
        None => None,
        Some(name) => {
            Some(parse_algorithm(name).ok_or_else(|| format!("unknown algorithm {name:?}"))?)
        }
    };
    let (algorithm, key) = match (&args.jwt.jwt_secret, &args.jwt_private_key) {
        (Some(secret), _) => (
            algorithm.unwrap_or(Algorithm::HS256),
            EncodingKey::from_secret(secret.as_bytes()),
        ),
        (None, Some(path)) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let algorithm = algorithm.unwrap_or(Algorithm::RS256);
            let key = match algorithm {
                Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                _ => EncodingKey::from_rsa_pem(&pem),
            }
            .map_err(|e| format!("{}: {e}", path.display()))?;
            (algorithm, key)
        }
        (None, None) => return Err("give --jwt-secret or --jwt-private-key".into()),
    };
    let minter = Minter::new(
        algorithm,
        key,
        args.jwt.jwt_issuer.clone(),
        args.jwt.jwt_audience.clone(),
    );
    minter
        .mint(TokenRequest {
            sub: args.sub.clone(),
            name: args.name.clone(),
            avatar: args.avatar.clone(),
            ttl: args.ttl,
            rooms: RoomClaims {
                join: args.join.clone(),
                post: args.post.clone(),
                moderate: args.moderate.clone(),
            },
        })
        .map(|(token, _)| token)
        .map_err(|e| format!("cannot sign: {e}"))
}

//! `chorus token`: mint a token for scripts, load tests and the worked example.

use jsonwebtoken::{Algorithm, EncodingKey};

use super::TokenArgs;
use crate::auth::{Minter, RoomClaims, TokenRequest};

/// Mints the token `args` describe.
pub fn mint(args: &TokenArgs) -> Result<String, String> {
    let algorithm = args.jwt.algorithm()?;
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

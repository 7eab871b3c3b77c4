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

/// `chorus api-key`: a new server API key and its entry for `--api-keys-file`.
pub fn api_key(args: &super::ApiKeyArgs) -> Result<String, String> {
    let (key, sha256) = crate::auth::new_key();
    let mut scopes = Vec::new();
    for name in &args.scopes {
        let scope = crate::auth::Scope::parse(name.trim()).ok_or_else(|| {
            format!(
                "unknown scope {name:?} (publish, moderate, presence, history, users, webhooks)"
            )
        })?;
        scopes.push(format!("{:?}", scope.name()));
    }
    let entry = format!(
        "[[keys]]\nname = {:?}\nsha256 = \"{sha256}\"\nscopes = [{}]\n",
        args.name,
        scopes.join(", ")
    );
    // The entry must load as the server would read it.
    crate::auth::ApiKeys::parse(&entry, crate::auth::Rate::new(1.0, 1))?;
    Ok(format!(
        "# The key (give it to the application; it is not stored anywhere):\n# {key}\n\n# Add this entry to --api-keys-file:\n{entry}"
    ))
}

//! JSON Web Tokens: verifying the ones clients present and minting new ones.

use std::time::Duration;

use axum::http::{HeaderMap, header};
use chorus_protocol::MAX_TOKEN_BYTES;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use super::grants::Grants;

/// Longest `sub` accepted, in bytes (it is stamped on every message).
const MAX_SUB_BYTES: usize = 128;
/// Longest display name accepted, in characters.
const MAX_NAME_CHARS: usize = 64;
/// Longest avatar URL accepted, in bytes.
const MAX_AVATAR_BYTES: usize = 512;

/// The claims Chorus reads from a token. Unknown claims are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer; checked when `--jwt-issuer` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience; checked when `--jwt-audience` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Display name shown on the user's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Avatar URL shown on the user's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Rooms the user may join and post to, beyond the public ones.
    #[serde(default, skip_serializing_if = "RoomClaims::is_empty")]
    pub rooms: RoomClaims,
}

/// The `rooms` claim: patterns where `*` matches any run of characters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomClaims {
    /// Rooms the user may join (read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub join: Vec<String>,
    /// Rooms the user may post to (implies join).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<String>,
    /// Rooms where the user may edit and delete anyone's messages (moderates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moderate: Vec<String>,
}

impl RoomClaims {
    fn is_empty(&self) -> bool {
        self.join.is_empty() && self.post.is_empty() && self.moderate.is_empty()
    }
}

/// Why a token was refused. The variants are what clients and tests match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token anywhere.
    #[error("no token: send one as Authorization: Bearer, ?token=, or an auth frame")]
    Missing,
    /// Not a JWT at all, or claims of the wrong shape.
    #[error("token is malformed: {0}")]
    Malformed(String),
    /// The signature does not verify with the configured key.
    #[error("token signature is invalid")]
    BadSignature,
    /// The token's algorithm is not the configured one (`none` included).
    #[error("token algorithm is not accepted")]
    BadAlgorithm,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` is not the configured audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// A claim breaks Chorus's limits (id length, name length, pattern count).
    #[error("token claim is not acceptable: {0}")]
    BadClaim(&'static str),
    /// The application revoked the user's tokens issued before a time.
    #[error("token was revoked; get a new one")]
    Revoked,
}

impl AuthError {
    /// Every value of [`label`](Self::label).
    pub const LABELS: [&'static str; 10] = [
        "missing",
        "malformed",
        "bad_signature",
        "bad_algorithm",
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "bad_claim",
        "revoked",
    ];

    /// The error code a client gets for this refusal: `token_expired`,
    /// `token_revoked`, or `invalid_token` (a new token is needed).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            Self::Revoked => "token_revoked",
            _ => "invalid_token",
        }
    }

    /// The `reason` label of the auth-failure metric (a fixed set).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::BadAlgorithm => "bad_algorithm",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::BadClaim(_) => "bad_claim",
            Self::Revoked => "revoked",
        }
    }

    fn from_jwt(error: &jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm
            | ErrorKind::UnsupportedAlgorithm => Self::BadAlgorithm,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "iss" => Self::WrongIssuer,
                "aud" => Self::WrongAudience,
                _ => Self::Malformed(format!("missing claim {claim}")),
            },
            other => Self::Malformed(format!("{other:?}")),
        }
    }
}

/// A verified token: who the user is, what they may do, and until when.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user, as stamped on their messages.
    pub user: chorus_protocol::Sender,
    /// Rooms the token grants (shared with the hub's entry for the connection).
    pub grants: std::sync::Arc<Grants>,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// `iat`, seconds since the Unix epoch, for revocations (0: the token has none).
    pub issued_at: u64,
}

/// Checks tokens against the configured key, algorithm, issuer and audience.
#[derive(Clone)]
pub struct Verifier {
    /// Public key or shared secret.
    key: DecodingKey,
    /// Algorithm, leeway, issuer and audience rules.
    validation: Validation,
}

impl Verifier {
    /// A verifier for one algorithm and key.
    pub fn new(
        algorithm: Algorithm,
        key: DecodingKey,
        issuer: Option<&str>,
        audience: Option<&str>,
        leeway: Duration,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self { key, validation }
    }

    /// Verifies `token` and reads the identity it carries.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::from_jwt(&e))?;
        identity(data.claims)
    }

    /// The algorithms this verifier accepts (exactly one).
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.validation.algorithms
    }
}

fn identity(claims: Claims) -> Result<Identity, AuthError> {
    if claims.sub.is_empty() || claims.sub.len() > MAX_SUB_BYTES {
        return Err(AuthError::BadClaim("sub must be 1-128 bytes"));
    }
    if claims.sub.chars().any(char::is_control) {
        return Err(AuthError::BadClaim("sub has control characters"));
    }
    let name = match claims.name {
        Some(name)
            if name.is_empty()
                || name.chars().count() > MAX_NAME_CHARS
                || name.chars().any(char::is_control) =>
        {
            return Err(AuthError::BadClaim(
                "name must be 1-64 printable characters",
            ));
        }
        name => name,
    };
    let avatar = match claims.avatar {
        Some(url) if url.len() > MAX_AVATAR_BYTES || !is_web_url(&url) => {
            return Err(AuthError::BadClaim(
                "avatar must be an http(s) URL of at most 512 bytes",
            ));
        }
        avatar => avatar,
    };
    let rooms = &claims.rooms;
    let grants =
        Grants::parse(&rooms.join, &rooms.post, &rooms.moderate).map_err(AuthError::BadClaim)?;
    Ok(Identity {
        user: chorus_protocol::Sender {
            id: claims.sub,
            name,
            avatar,
            kind: None,
        },
        grants: std::sync::Arc::new(grants),
        expires_at: claims.exp,
        issued_at: claims.iat.unwrap_or(0),
    })
}

fn is_web_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Signs new tokens (the development login and `chorus token`).
#[derive(Clone)]
pub struct Minter {
    /// Private key or shared secret.
    key: EncodingKey,
    /// The algorithm written in the header.
    algorithm: Algorithm,
    /// `iss` written into every token, when configured.
    issuer: Option<String>,
    /// `aud` written into every token, when configured.
    audience: Option<String>,
}

/// What a new token says.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// User id.
    pub sub: String,
    /// Display name.
    pub name: Option<String>,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// Lifetime from now.
    pub ttl: Duration,
    /// Room grants.
    pub rooms: RoomClaims,
}

impl Minter {
    /// A minter for one algorithm and key.
    pub fn new(
        algorithm: Algorithm,
        key: EncodingKey,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        Self {
            key,
            algorithm,
            issuer,
            audience,
        }
    }

    /// Signs a token for `request`; returns it with its expiry (Unix seconds).
    pub fn mint(
        &self,
        request: TokenRequest,
    ) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let exp = now + request.ttl.as_secs();
        let claims = Claims {
            sub: request.sub,
            exp,
            nbf: None,
            iat: Some(now),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            name: request.name,
            avatar: request.avatar,
            rooms: request.rooms,
        };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key)?;
        Ok((token, exp))
    }
}

/// Algorithms Chorus accepts, by name.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        _ => None,
    }
}

/// The token of a request: `Authorization: Bearer` first, then `query` (`?token=`).
pub fn presented_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Result<Option<&'a str>, AuthError> {
    let token = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| AuthError::Malformed("Authorization is not ASCII".into()))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| AuthError::Malformed("Authorization must be Bearer".into()))?;
            Some(token.trim())
        }
        None => query,
    };
    match token {
        Some(t) if t.is_empty() || t.len() > MAX_TOKEN_BYTES => Err(AuthError::Malformed(format!(
            "token must be 1 to {MAX_TOKEN_BYTES} bytes"
        ))),
        other => Ok(other),
    }
}

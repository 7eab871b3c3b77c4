//! The server API for tests: keys with every scope or one, and calls.

use std::net::SocketAddr;

use chorus_gateway::auth::{ApiKeys, Rate, new_key};
use serde_json::Value;

/// Keys a test node accepts, and the keys themselves.
pub struct ApiKeyring {
    /// What the node is configured with (`Config::api_keys`).
    pub keys: ApiKeys,
    /// A key with every scope.
    pub all: String,
    /// A key with the `publish` scope only.
    pub publish_only: String,
}

impl ApiKeyring {
    /// Two fresh keys, each limited to `rate`.
    pub fn new(rate: Rate) -> Self {
        let (all, all_hash) = new_key();
        let (publish_only, publish_hash) = new_key();
        let file = format!(
            "[[keys]]\nname = \"all\"\nsha256 = \"{all_hash}\"\n\
             scopes = [\"publish\", \"moderate\", \"presence\", \"history\", \"users\", \"webhooks\"]\n\
             [[keys]]\nname = \"publisher\"\nsha256 = \"{publish_hash}\"\nscopes = [\"publish\"]\n"
        );
        Self {
            keys: ApiKeys::parse(&file, rate).expect("test keys parse"),
            all,
            publish_only,
        }
    }

    /// Two fresh keys, without a practical rate limit.
    pub fn unlimited() -> Self {
        Self::new(Rate::new(100_000.0, 100_000))
    }
}

/// Calls the server API on `addr`: `method path` with `key` and an optional
/// JSON `body`; returns the status and the answer's JSON (`Null` if none).
pub async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(Value::to_string);
    let (status, text) = crate::node::http_request(addr, method, path, body.as_deref(), key)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

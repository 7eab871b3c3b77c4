//! Tokens for the authentication tests, built one spoiled field at a time,
//! and the refusals they get.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chorus_gateway::Config;
use chorus_testkit::{Client, Event, InProcessNode, TEST_SECRET, test_config};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const RSA_PRIVATE: &[u8] = include_bytes!("../keys/rsa_private.pem");
pub const RSA_PUBLIC: &[u8] = include_bytes!("../keys/rsa_public.pem");
pub const EC_PRIVATE: &[u8] = include_bytes!("../keys/ec_private.pem");
pub const EC_PUBLIC: &[u8] = include_bytes!("../keys/ec_public.pem");

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid token for `sub`, for tests to spoil one field at a time.
pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 600, "rooms": {"join": ["*"], "post": ["*"]}})
}

pub fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub fn signed(claims: &Value) -> String {
    hs256(claims, TEST_SECRET.as_bytes())
}

/// An unsigned token (`alg: none`), which must never be accepted.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

pub async fn node_with(tweak: impl FnOnce(&mut Config)) -> InProcessNode {
    let mut config = test_config("auth");
    tweak(&mut config);
    InProcessNode::start(config).await
}

/// The HTTP status and JSON code of an upgrade refused because of `token`.
pub async fn upgrade_refusal(url: &str, token: &str) -> (u16, String) {
    refusal(Client::request(url, None, Some(token))).await
}

/// The HTTP status and JSON code of a refused upgrade.
pub async fn refusal(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, String) {
    let error = Client::handshake_request(request)
        .await
        .expect_err("the upgrade must be refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP refusal, got {error}")
    };
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default())
        .expect("a JSON refusal");
    (
        response.status().as_u16(),
        body["code"].as_str().unwrap().to_owned(),
    )
}

/// Sends `token` in an `auth` frame; returns the error code and the close code.
pub async fn auth_frame_refusal(url: &str, token: &str) -> (String, Event) {
    let mut client = Client::connect_anonymous(url).await;
    client
        .send(json!({"type": "auth", "token": token, "ref": "a1"}))
        .await;
    let error = client.expect("error").await;
    assert_eq!(error["ref"], "a1");
    (
        error["code"].as_str().unwrap().to_owned(),
        client.closed().await,
    )
}

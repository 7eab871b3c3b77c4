//! The WebSocket opening handshake (RFC 6455 §4.2): what a request to `/ws`
//! must carry to be upgraded, and the `101` response. The connection itself
//! is then spoken to by `chat::socket`, not by a WebSocket library.

use std::sync::Arc;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use chorus_protocol::websocket::accept_key;
use hyper::upgrade::OnUpgrade;
use tokio::net::TcpStream;

use super::replies::refusal;
use crate::chat::stream::StreamHandle;

/// What a valid upgrade request offers: the key to answer and the subprotocols.
pub struct Offer {
    /// `Sec-WebSocket-Key`, answered in `Sec-WebSocket-Accept`.
    key: HeaderValue,
    /// The subprotocols the client offers, in its order.
    protocols: Vec<String>,
}

impl Offer {
    /// The offer of a request with `method` and `headers`, or the refusal of
    /// one that is no WebSocket upgrade.
    pub fn check(method: &Method, headers: &HeaderMap) -> Result<Self, Box<Response>> {
        if method != Method::GET {
            return Err(Box::new(not_websocket(
                "/ws takes a WebSocket upgrade: the method must be GET",
            )));
        }
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(Box::new(not_websocket(
                "/ws takes a WebSocket upgrade: Connection must include upgrade",
            )));
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(Box::new(not_websocket(
                "/ws takes a WebSocket upgrade: Upgrade must be websocket",
            )));
        }
        if headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
            let mut refused = refusal(
                StatusCode::UPGRADE_REQUIRED,
                "unsupported_websocket_version",
                "Sec-WebSocket-Version must be 13",
            );
            refused.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return Err(Box::new(refused));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(Box::new(not_websocket(
                "/ws takes a WebSocket upgrade: Sec-WebSocket-Key is missing",
            )));
        };
        let protocols = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|protocol| protocol.trim().to_owned())
            .collect();
        Ok(Self { key, protocols })
    }

    /// The first of `ours` that the client offered.
    pub fn select_protocol(&self, ours: &[&'static str]) -> Option<&'static str> {
        ours.iter()
            .copied()
            .find(|ours| self.protocols.iter().any(|offered| offered == ours))
    }

    /// The `101 Switching Protocols` response, with `protocol` if one was selected.
    pub fn accept(&self, protocol: Option<&'static str>) -> Response {
        let accept = HeaderValue::from_str(&accept_key(self.key.as_bytes()))
            .expect("base64 is a valid header value");
        let mut response = (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, accept),
            ],
        )
            .into_response();
        if let Some(protocol) = protocol {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}

/// An upgrade request that came through hyper (one that was not its
/// connection's first request; see [`super::first_request`]).
pub struct UpgradeRequest {
    /// What the client offers.
    pub offer: Offer,
    /// Resolves to the connection once the `101` response is sent.
    pub on_upgrade: OnUpgrade,
    /// The connection's TCP stream, for the flusher's writes (none
    /// when the router is served without [`super::listener::SharedListener`]).
    pub stream: Option<Arc<TcpStream>>,
}

impl<S: Send + Sync> FromRequestParts<S> for UpgradeRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let offer = Offer::check(&parts.method, &parts.headers).map_err(|refused| *refused)?;
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(not_websocket(
                "/ws takes a WebSocket upgrade: this connection cannot be upgraded",
            ));
        };
        let stream = parts
            .extensions
            .get::<ConnectInfo<StreamHandle>>()
            .map(|ConnectInfo(StreamHandle(stream))| stream.clone());
        Ok(Self {
            offer,
            on_upgrade,
            stream,
        })
    }
}

/// 400 `not_websocket` with `message`.
fn not_websocket(message: &'static str) -> Response {
    refusal(StatusCode::BAD_REQUEST, "not_websocket", message)
}

/// Whether a comma-separated header holds `token` (case-insensitive).
pub fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

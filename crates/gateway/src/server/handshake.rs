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

use super::{listener::StreamHandle, replies::refusal};

/// A valid upgrade request: the key to answer and the connection to take over.
pub struct UpgradeRequest {
    /// `Sec-WebSocket-Key`, answered in `Sec-WebSocket-Accept`.
    key: HeaderValue,
    /// The subprotocols the client offers, in its order.
    protocols: Vec<String>,
    /// Resolves to the connection once the `101` response is sent.
    pub on_upgrade: OnUpgrade,
    /// The connection's TCP stream, for the flusher's writes (none
    /// when the router is served without [`super::listener::SharedListener`]).
    pub stream: Option<Arc<TcpStream>>,
}

impl UpgradeRequest {
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

impl<S: Send + Sync> FromRequestParts<S> for UpgradeRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let not_websocket =
            |message: &'static str| refusal(StatusCode::BAD_REQUEST, "not_websocket", message);
        if parts.method != Method::GET {
            return Err(not_websocket(
                "/ws takes a WebSocket upgrade: the method must be GET",
            ));
        }
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(not_websocket(
                "/ws takes a WebSocket upgrade: Connection must include upgrade",
            ));
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(not_websocket(
                "/ws takes a WebSocket upgrade: Upgrade must be websocket",
            ));
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
            return Err(refused);
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(not_websocket(
                "/ws takes a WebSocket upgrade: Sec-WebSocket-Key is missing",
            ));
        };
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(not_websocket(
                "/ws takes a WebSocket upgrade: this connection cannot be upgraded",
            ));
        };
        let protocols = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|protocol| protocol.trim().to_owned())
            .collect();
        let stream = parts
            .extensions
            .get::<ConnectInfo<StreamHandle>>()
            .map(|ConnectInfo(StreamHandle(stream))| stream.clone());
        Ok(Self {
            key,
            protocols,
            on_upgrade,
            stream,
        })
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

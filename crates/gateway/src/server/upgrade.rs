//! `GET /ws`: the WebSocket upgrade. Checked before it: draining, the Origin,
//! the query, the token when one came with it (and the user's connection
//! count), and the node's connection limit; then the encoding is negotiated,
//! the `101` sent, and the connection handed to [`connection::run`].

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chorus_protocol::{Encoding, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    handshake::UpgradeRequest,
    node::Node,
    replies::{refusal, unauthorized},
};
use crate::{
    auth::presented_token,
    chat::{
        connection::{self, Handshake},
        socket::Socket,
    },
};

/// Query parameters of `/ws`.
#[derive(Debug, Deserialize)]
pub struct WsParams {
    /// `json` or `msgpack`, for clients that cannot set a subprotocol.
    encoding: Option<String>,
    /// The token, for clients that cannot set `Authorization` (browsers).
    token: Option<String>,
}

pub async fn upgrade(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Query<WsParams>, axum::extract::rejection::QueryRejection>,
    ws: UpgradeRequest,
) -> Response {
    let metrics = node.metrics();
    if node.drain().is_closing() {
        metrics.refused("shutting_down");
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "node is shutting down",
        );
    }
    let config = node.config();
    if !config.auth.origins.allows(&headers) {
        metrics.refused("origin");
        return refusal(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this Origin may not open a WebSocket here (--allowed-origins)",
        );
    }
    let Ok(Query(params)) = params else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "query parameters are malformed",
        );
    };
    let query_encoding = match params.encoding.as_deref().map(Encoding::parse) {
        None => None,
        Some(Some(encoding)) => Some(encoding),
        Some(None) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "invalid_encoding",
                "encoding must be json or msgpack",
            );
        }
    };
    // A token with the upgrade is checked before it; without one the client has
    // --auth-timeout to send an `auth` frame.
    let authed = match presented_token(&headers, params.token.as_deref()) {
        Err(error) => return unauthorized(metrics, &error),
        Ok(None) => None,
        Ok(Some(token)) => {
            let identity = match node.chat().verify(token) {
                Ok(identity) => identity,
                Err(error) => return unauthorized(metrics, &error),
            };
            let Some(lease) = node.chat().users().acquire(&identity.user.id) else {
                metrics.refused("too_many_connections");
                return refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_connections",
                    "this user holds as many connections to this node as allowed",
                );
            };
            Some((identity, lease))
        }
    };
    let Some(admission) = node.admit() else {
        metrics.connections_refused.inc();
        metrics.refused("node_full");
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_full",
            "node is at its connection limit",
        );
    };

    let protocol = ws.select_protocol(&[SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON]);
    let encoding = protocol
        .and_then(Encoding::parse)
        .or(query_encoding)
        .unwrap_or_default();
    let public_id = Uuid::now_v7();
    let handshake = Box::new(Handshake {
        conn: node.next_conn_id(),
        public_id,
        authed,
        encoding,
        stream: ws.stream.clone(),
        // The connection id's random bits pick its batch when the node drains.
        turn: node.drain().turn(public_id.as_u128() as u64),
    });
    let tracked = node.connections().token();
    // One span per connection, so a user's session can be followed through the logs.
    let span = tracing::info_span!(
        "conn",
        conn = %handshake.public_id,
        node = %config.node_id,
        user = tracing::field::Empty,
    );
    if let Some((identity, _)) = &handshake.authed {
        span.record("user", identity.user.id.as_str());
    }
    let response = ws.accept(protocol);
    let on_upgrade = ws.on_upgrade;
    tokio::spawn(
        async move {
            // Held (not rebound: a copy would take room in every task) until
            // the connection ends.
            let _held = (&tracked, &admission);
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    tracing::debug!(%error, "WebSocket upgrade failed");
                    return;
                }
            };
            let socket = Socket::new(TokioIo::new(upgraded), node.config().max_frame_bytes);
            let metrics = node.metrics();
            metrics.connections_opened.inc();
            metrics.connections_open.inc();
            connection::run(node.chat().clone(), socket, handshake).await;
        }
        .instrument(span),
    );
    response
}

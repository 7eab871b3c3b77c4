//! `GET /ws`: the WebSocket upgrade. Checked before it: draining, the Origin,
//! the query, the token when one came with it (and the user's connection
//! count), and the node's connection limit; then the encoding is negotiated,
//! the `101` sent, and the connection handed to [`connection::run`].
//!
//! A connection's first request is read by [`super::first_request`], which
//! upgrades it without hyper; an upgrade on a connection that already
//! carried requests comes through hyper to [`upgrade`]. Both go through
//! [`admit`].

use std::{future::Future, sync::Arc};

use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chorus_protocol::{Encoding, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::{net::TcpStream, sync::OwnedSemaphorePermit};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    handshake::{Offer, UpgradeRequest},
    node::Node,
    replies::{refusal, unauthorized},
};
use crate::{
    auth::presented_token,
    chat::{
        connection::{self, Handshake},
        socket::{Socket, SocketIo},
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

/// The `/ws` route, for upgrades that come through hyper.
pub async fn upgrade(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Query<WsParams>, QueryRejection>,
    ws: UpgradeRequest,
) -> Response {
    match admit(&node, &headers, params, &ws.offer, ws.stream) {
        Err(refused) => *refused,
        Ok((response, accepted)) => {
            let on_upgrade = ws.on_upgrade;
            accepted.spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => Some(SocketIo::Upgraded(TokioIo::new(upgraded))),
                    Err(error) => {
                        tracing::debug!(%error, "WebSocket upgrade failed");
                        None
                    }
                }
            });
            response
        }
    }
}

/// A connection admitted to the node, to be started once its `101` is sent.
pub struct Accepted {
    /// The node it belongs to.
    node: Arc<Node>,
    /// Who it is, how it speaks, when it closes.
    handshake: Box<Handshake>,
    /// Counts it among the node's connections until it ends (draining waits on it).
    tracked: TaskTrackerToken,
    /// Its place under the node's connection limit.
    admission: OwnedSemaphorePermit,
    /// Its log span.
    span: tracing::Span,
}

/// Decides an upgrade request: the `101` response and the connection to
/// start, or the refusal to send.
pub fn admit(
    node: &Arc<Node>,
    headers: &HeaderMap,
    params: Result<Query<WsParams>, QueryRejection>,
    offer: &Offer,
    stream: Option<Arc<TcpStream>>,
) -> Result<(Response, Accepted), Box<Response>> {
    let metrics = node.metrics();
    if node.drain().is_closing() {
        metrics.refused("shutting_down");
        return Err(Box::new(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "node is shutting down",
        )));
    }
    let config = node.config();
    if !config.auth.origins.allows(headers) {
        metrics.refused("origin");
        return Err(Box::new(refusal(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this Origin may not open a WebSocket here (--allowed-origins)",
        )));
    }
    let Ok(Query(params)) = params else {
        return Err(Box::new(refusal(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "query parameters are malformed",
        )));
    };
    let query_encoding = match params.encoding.as_deref().map(Encoding::parse) {
        None => None,
        Some(Some(encoding)) => Some(encoding),
        Some(None) => {
            return Err(Box::new(refusal(
                StatusCode::BAD_REQUEST,
                "invalid_encoding",
                "encoding must be json or msgpack",
            )));
        }
    };
    // A token with the upgrade is checked before it; without one the client has
    // --auth-timeout to send an `auth` frame.
    let authed = match presented_token(headers, params.token.as_deref()) {
        Err(error) => return Err(Box::new(unauthorized(metrics, &error))),
        Ok(None) => None,
        Ok(Some(token)) => {
            let identity = match node.chat().verify(token) {
                Ok(identity) => identity,
                Err(error) => return Err(Box::new(unauthorized(metrics, &error))),
            };
            let Some(lease) = node.chat().users().acquire(&identity.user.id) else {
                metrics.refused("too_many_connections");
                return Err(Box::new(refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_connections",
                    "this user holds as many connections to this node as allowed",
                )));
            };
            Some((identity, lease))
        }
    };
    let Some(admission) = node.admit() else {
        metrics.connections_refused.inc();
        metrics.refused("node_full");
        return Err(Box::new(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_full",
            "node is at its connection limit",
        )));
    };

    let protocol = offer.select_protocol(&[SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON]);
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
        stream,
        // The connection id's random bits pick its batch when the node drains.
        turn: node.drain().turn(public_id.as_u128() as u64),
    });
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
    let accepted = Accepted {
        node: node.clone(),
        handshake,
        tracked: node.connections().token(),
        admission,
        span,
    };
    Ok((offer.accept(protocol), accepted))
}

impl Accepted {
    /// Runs the connection in a task of its own once `io` resolves to the
    /// upgraded connection (`None`: the upgrade failed).
    pub fn spawn(self, io: impl Future<Output = Option<SocketIo>> + Send + 'static) {
        let Self {
            node,
            handshake,
            tracked,
            admission,
            span,
        } = self;
        tokio::spawn(
            async move {
                // Held (not rebound: a copy would take room in every task) until
                // the connection ends.
                let _held = (&tracked, &admission);
                let Some(io) = io.await else { return };
                let socket = Socket::new(io, node.config().max_frame_bytes);
                let metrics = node.metrics();
                metrics.connections_opened.inc();
                metrics.connections_open.inc();
                connection::run(node.chat().clone(), socket, handshake).await;
            }
            .instrument(span),
        );
    }
}

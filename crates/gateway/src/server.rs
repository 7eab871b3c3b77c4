//! The HTTP side of a node: routes, the WebSocket upgrade, and [`serve`].

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Query, State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt,
};
use chorus_backplane::{Backplane, BackplaneError, RedisBackplane};
use chorus_protocol::{Encoding, MAX_TOKEN_BYTES, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    auth::AuthError,
    config::{BackplaneConfig, Config},
    connection::{self, Handshake},
    hub::Hub,
    metrics::Metrics,
    node::Node,
    subscriptions::Subscriptions,
};

/// Read buffer per connection: small, since a server holds very many of them.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes gathered before tungstenite writes to the socket (we flush after each batch anyway).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// Largest body of `POST /api/login`.
const LOGIN_BODY_BYTES: usize = 1024;

/// Why a node could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration does not hold together.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The backplane could not be set up.
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
    /// The listener failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs a node on an already-bound listener until `shutdown` is cancelled, then
/// closes every connection with `going_away` and returns.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    config.validate()?;
    let metrics = Metrics::new();
    let (repairs, repair_requests) = tokio::sync::mpsc::unbounded_channel();
    let hub = Arc::new(Hub::new(metrics.clone(), repairs));
    let backplane: Arc<dyn Backplane> = match &config.backplane {
        BackplaneConfig::InProcess(bus) => Arc::new(bus.attach(hub.clone())),
        BackplaneConfig::Redis(settings) => Arc::new(
            RedisBackplane::connect(
                settings,
                config.history.bounds,
                hub.clone(),
                &metrics.registry,
            )
            .await?,
        ),
    };
    crate::repair::start(
        backplane.clone(),
        hub.clone(),
        repair_requests,
        config.history.position_check,
        shutdown.clone(),
    );
    let (subscriptions, _owner) =
        Subscriptions::start(backplane.clone(), config.unsubscribe_delay, metrics.clone());
    let node = Arc::new(Node::new(
        config,
        hub,
        backplane.clone(),
        subscriptions,
        metrics,
        shutdown.clone(),
    ));
    tracing::info!(
        node = %node.config.node_id,
        addr = %listener.local_addr()?,
        backplane = ?node.config.backplane,
        auth = ?node.config.auth,
        "node started"
    );
    if node.config.auth.dev_login {
        tracing::warn!(
            "DEVELOPMENT LOGIN IS ON: POST /api/login gives anyone a token for any name; \
             never expose this node to the internet (--dev-login off)"
        );
    }

    let app = router(node.clone());
    // Chat frames are small and latency matters: no Nagle delay on client sockets.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;

    // The listener is closed; connection tasks saw the same token and are closing.
    node.connections.close();
    if tokio::time::timeout(node.config.shutdown_timeout, node.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = node.connections.len(),
            "connections still open after the shutdown timeout"
        );
    }
    backplane.shutdown().await;
    tracing::info!(node = %node.config.node_id, "node stopped");
    Ok(())
}

fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/login",
            post(crate::login::login).layer(DefaultBodyLimit::max(LOGIN_BODY_BYTES)),
        )
        .route("/api/rooms/{room}/messages", get(crate::history::messages))
        .route("/", get(index))
        .with_state(node)
}

/// Query parameters of `/ws`.
#[derive(Debug, Deserialize)]
struct WsParams {
    /// `json` or `msgpack`, for clients that cannot set a subprotocol.
    encoding: Option<String>,
    /// The token, for clients that cannot set `Authorization` (browsers).
    token: Option<String>,
}

async fn upgrade(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    params: Result<Query<WsParams>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Response {
    if node.shutdown.is_cancelled() {
        node.metrics.refused("shutting_down");
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "node is shutting down",
        );
    }
    if !node.config.auth.origins.allows(&headers) {
        node.metrics.refused("origin");
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
        Err(error) => return unauthorized(&node, &error),
        Ok(None) => None,
        Ok(Some(token)) => {
            let identity = match node.verify(token) {
                Ok(identity) => identity,
                Err(error) => return unauthorized(&node, &error),
            };
            let Some(lease) = node.users.acquire(&identity.user.id) else {
                node.metrics.refused("too_many_connections");
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
        node.metrics.connections_refused.inc();
        node.metrics.refused("node_full");
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_full",
            "node is at its connection limit",
        );
    };

    let config = &node.config;
    let ws = ws
        .protocols([SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON])
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * config.max_frame_bytes)
        .max_message_size(config.max_frame_bytes)
        .max_frame_size(config.max_frame_bytes);
    let encoding = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Encoding::parse)
        .or(query_encoding)
        .unwrap_or_default();
    let handshake = Handshake {
        conn: node.next_conn_id(),
        public_id: Uuid::now_v7(),
        authed,
        encoding,
    };
    let tracked = node.connections.token();
    ws.on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let _tracked = tracked;
            let _admission = admission;
            node.metrics.connections_opened.inc();
            node.metrics.connections_open.inc();
            connection::run(node, socket, handshake).await;
        })
}

/// The token of an upgrade: `Authorization: Bearer` first, then `?token=`.
pub(crate) fn presented_token<'a>(
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

/// 401 for a refused token, with the code a client acts on.
pub(crate) fn unauthorized(node: &Node, error: &AuthError) -> Response {
    node.metrics.refused("unauthorized");
    let code = match error {
        AuthError::Expired => "token_expired",
        _ => "invalid_token",
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({ "code": code, "message": error.to_string() })),
    )
        .into_response()
}

/// A JSON refusal `{code, message}` with `status`.
pub(crate) fn refusal(status: StatusCode, code: &'static str, message: &'static str) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}

async fn readyz(State(node): State<Arc<Node>>) -> Response {
    if node.shutdown.is_cancelled() {
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "node is shutting down",
        )
    } else if !node.backplane.is_ready() {
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "backplane_down",
            "backplane (Redis) is not reachable",
        )
    } else {
        (StatusCode::OK, "ready").into_response()
    }
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics.render(),
    )
        .into_response()
}

async fn index(State(node): State<Arc<Node>>) -> String {
    format!(
        "Chorus node {}\nWebSocket endpoint: /ws (subprotocols {SUBPROTOCOL_JSON}, {SUBPROTOCOL_MSGPACK})\n\
         Health: /livez /readyz   Metrics: /metrics   Dev login: POST /api/login ({})\n",
        node.config.node_id,
        if node.config.auth.dev_login {
            "on"
        } else {
            "off"
        }
    )
}

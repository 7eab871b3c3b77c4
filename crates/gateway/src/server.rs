//! The HTTP side of a node: routes, the WebSocket upgrade, and [`serve`].

use std::{sync::Arc, time::Duration};

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
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    auth::AuthError,
    config::{BackplaneConfig, Config},
    connection::{self, Handshake},
    drain::Drain,
    hub::Hub,
    metrics::Metrics,
    node::Node,
    subscriptions::Subscriptions,
};

/// Read buffer per connection: small, since a server holds very many of them.
const READ_BUFFER_BYTES: usize = 1024;
/// Bytes gathered before tungstenite writes to the socket (we flush after each
/// batch anyway). Small, because the buffer keeps the size of the largest
/// batch it ever held: at 16 KiB a presence burst left ~20 KiB more per
/// connection for good, at no gain in CPU or latency (docs/benchmarks.md).
const WRITE_BUFFER_BYTES: usize = 4 * 1024;
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
/// drains (see [`crate::drain`]) and returns.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    serve_with_admin(listener, None, config, shutdown).await
}

/// [`serve`], with a second listener for the admin routes (`/metrics`, `/livez`,
/// `/readyz`, `/api/cluster`), which keeps answering until the node exits.
pub async fn serve_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    config.validate()?;
    let metrics = Metrics::new(&config.node_id);
    let drain = Drain::new(config.ops.drain_window);
    let (repairs, repair_requests) = tokio::sync::mpsc::unbounded_channel();
    let (statuses, status_changes) = tokio::sync::mpsc::channel(crate::presence::STATUS_QUEUE);
    let policy = config.auth.policy.clone();
    let hub = Arc::new(Hub::new(metrics.clone(), repairs, policy, statuses));
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
        drain.stopped(),
    );
    let (subscriptions, _owner) =
        Subscriptions::start(backplane.clone(), config.unsubscribe_delay, metrics.clone());
    let ops = config.ops;
    let node = Arc::new(Node::new(
        config,
        hub,
        backplane.clone(),
        subscriptions,
        metrics,
        drain.clone(),
    ));
    tokio::spawn(drain.clone().follow(shutdown, ops));
    let heartbeats = crate::cluster::start(node.clone());
    crate::presence::start(node.clone());
    crate::presence::flush(node.clone());
    crate::presence::relay_statuses(node.clone(), status_changes);
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
    let admin = admin.map(|admin| {
        let app = admin_routes(Router::new()).with_state(node.clone());
        let stopped = drain.stopped();
        tokio::spawn(async move {
            axum::serve(admin, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
        })
    });

    let app = router(node.clone());
    // Chat frames are small and latency matters: no Nagle delay on client sockets.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(drain.closing().cancelled_owned())
        .await?;

    // The listener is closed; connections close batch by batch over the drain window.
    node.connections.close();
    let bound = ops.drain_window + node.config.shutdown_timeout;
    if tokio::time::timeout(bound, node.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = node.connections.len(),
            "connections still open after the drain window and shutdown timeout"
        );
    }
    drain.stop();
    let _ = tokio::time::timeout(Duration::from_secs(3), heartbeats).await;
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(Duration::from_secs(3), admin).await;
    }
    backplane.shutdown().await;
    tracing::info!(node = %node.config.node_id, "node stopped");
    Ok(())
}

fn router(node: Arc<Node>) -> Router {
    crate::web::routes(admin_routes(Router::new()))
        .route("/ws", get(upgrade))
        .route(
            "/api/login",
            post(crate::login::login).layer(DefaultBodyLimit::max(LOGIN_BODY_BYTES)),
        )
        .route("/api/rooms/{room}/messages", get(crate::history::messages))
        .with_state(node)
}

/// Routes for operators, on the main port and the admin port.
fn admin_routes(router: Router<Arc<Node>>) -> Router<Arc<Node>> {
    router
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/cluster", get(crate::cluster::handler))
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
    if node.drain.is_closing() {
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
    // One span per connection, so a user's session can be followed through the logs.
    let span = tracing::info_span!(
        "conn",
        conn = %handshake.public_id,
        node = %node.config.node_id,
        user = tracing::field::Empty,
    );
    if let Some((identity, _)) = &handshake.authed {
        span.record("user", identity.user.id.as_str());
    }
    ws.on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| {
            async move {
                let _tracked = tracked;
                let _admission = admission;
                node.metrics.connections_opened.inc();
                node.metrics.connections_open.inc();
                connection::run(node, socket, handshake).await;
            }
            .instrument(span)
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
    match node.unready() {
        Some((code, message)) => refusal(StatusCode::SERVICE_UNAVAILABLE, code, message),
        None => (StatusCode::OK, "ready").into_response(),
    }
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    // Readiness gauges are computed, not tracked: refresh them for this scrape.
    node.refresh_gauges();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics.render(),
    )
        .into_response()
}

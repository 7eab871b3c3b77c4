//! The HTTP side of a node: routes, the WebSocket upgrade, and [`serve`].

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Query, State, WebSocketUpgrade},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
    serve::ListenerExt,
};
use chorus_backplane::{Backplane, BackplaneError, RedisBackplane};
use chorus_protocol::{Encoding, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, Sender};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
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
/// Longest display name accepted from the `name` query parameter.
const MAX_NAME_CHARS: usize = 64;

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
    let hub = Arc::new(Hub::new(metrics.clone()));
    let backplane: Arc<dyn Backplane> = match &config.backplane {
        BackplaneConfig::InProcess(bus) => Arc::new(bus.attach(hub.clone())),
        BackplaneConfig::Redis(settings) => {
            Arc::new(RedisBackplane::connect(settings, hub.clone(), &metrics.registry).await?)
        }
    };
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
        "node started"
    );

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
        .route("/", get(index))
        .with_state(node)
}

/// Query parameters of `/ws`.
#[derive(Debug, Deserialize)]
struct WsParams {
    /// `json` or `msgpack`, for clients that cannot set a subprotocol.
    encoding: Option<String>,
    /// Display name (until authentication provides one).
    name: Option<String>,
}

async fn upgrade(
    State(node): State<Arc<Node>>,
    Query(params): Query<WsParams>,
    ws: WebSocketUpgrade,
) -> Response {
    if node.shutdown.is_cancelled() {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "node is shutting down",
        );
    }
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
    let name = match params.name {
        Some(name) if !valid_name(&name) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "invalid_name",
                "name must be 1-64 printable characters",
            );
        }
        name => name,
    };
    let Some(admission) = node.admit() else {
        node.metrics.connections_refused.inc();
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
    let public_id = Uuid::now_v7();
    let handshake = Handshake {
        conn: node.next_conn_id(),
        public_id,
        user: Sender {
            id: anonymous_id(&public_id),
            name,
        },
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

fn valid_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control)
}

/// A stable-looking id for an unauthenticated user: the random tail of the connection id.
fn anonymous_id(conn: &Uuid) -> String {
    let hex = conn.simple().to_string();
    format!("anon-{}", &hex[hex.len() - 12..])
}

fn refusal(status: StatusCode, code: &'static str, message: &'static str) -> Response {
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
         Health: /livez /readyz   Metrics: /metrics\n",
        node.config.node_id
    )
}

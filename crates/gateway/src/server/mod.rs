//! The HTTP and operations side of a node: [`serve`] and its routes, the
//! WebSocket upgrade, the development login, the history endpoint, the
//! embedded web pages, draining, the cluster view and the health check.
//! The message path itself is [`crate::chat`]'s.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chorus_backplane::BackplaneError;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::listener::SharedListener;
use crate::chat::stream::StreamHandle;

mod archiving;
pub mod cluster;
mod cluster_view;
pub mod drain;
mod first_request;
mod handshake;
pub mod healthcheck;
mod listener;
mod login;
mod messages;
mod node;
mod replies;
mod upgrade;
mod web;

use crate::{chat::Chat, config::Config, metrics::Metrics};
use drain::Drain;
use node::Node;
use replies::refusal;

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
/// drains (see [`drain`]) and returns.
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
    let ops = config.ops;
    let drain = Drain::new(ops.drain_window);
    let chat = Chat::start(config, metrics, drain.stopped()).await?;
    let node = Arc::new(Node::new(chat, drain.clone()));
    tokio::spawn(drain.clone().follow(shutdown, ops));
    let heartbeats = cluster::start(node.clone());
    crate::webhooks::start(node.chat().clone(), drain.stopped());
    archiving::start(node.chat().clone(), drain.stopped());
    let config = node.config();
    tracing::info!(
        node = %config.node_id,
        addr = %listener.local_addr()?,
        backplane = ?config.backplane,
        auth = ?config.auth,
        "node started"
    );
    if config.auth.dev_login {
        tracing::warn!(
            "DEVELOPMENT LOGIN IS ON: POST /api/login gives anyone a token for any name; \
             never expose this node to the internet (--dev-login off)"
        );
    }
    let admin = admin.map(|admin| {
        let app = admin_routes(Router::new())
            .nest("/api/v1", crate::api::routes(node.chat().clone()))
            .with_state(node.clone());
        let stopped = drain.stopped();
        tokio::spawn(async move {
            axum::serve(admin, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
        })
    });

    let files = crate::files::Files::new(node.chat().clone(), drain.stopped());
    node.chat().set_attachments(files.attachments());
    let app = router(node.clone(), files).into_make_service_with_connect_info::<StreamHandle>();
    axum::serve(SharedListener::new(listener, node.clone()), app)
        .with_graceful_shutdown(drain.closing().cancelled_owned())
        .await?;

    // The listener is closed; connections close batch by batch over the drain window.
    let connections = node.connections();
    connections.close();
    let bound = ops.drain_window + node.config().shutdown_timeout;
    if tokio::time::timeout(bound, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = connections.len(),
            "connections still open after the drain window and shutdown timeout"
        );
    }
    drain.stop();
    let _ = tokio::time::timeout(Duration::from_secs(3), heartbeats).await;
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(Duration::from_secs(3), admin).await;
    }
    node.chat().shutdown().await;
    tracing::info!(node = %node.config().node_id, "node stopped");
    Ok(())
}

fn router(node: Arc<Node>, files: Arc<crate::files::Files>) -> Router {
    web::routes(admin_routes(Router::new()))
        .route("/ws", get(upgrade::upgrade))
        .route(
            "/api/login",
            post(login::login).layer(DefaultBodyLimit::max(LOGIN_BODY_BYTES)),
        )
        .route("/api/rooms/{room}/messages", get(messages::messages))
        .nest(
            "/api/v1",
            crate::api::routes(node.chat().clone()).merge(crate::files::routes(files)),
        )
        .with_state(node)
}

/// Routes for operators, on the main port and the admin port.
fn admin_routes(router: Router<Arc<Node>>) -> Router<Arc<Node>> {
    router
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/cluster", get(cluster::handler))
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
        node.metrics().render(),
    )
        .into_response()
}

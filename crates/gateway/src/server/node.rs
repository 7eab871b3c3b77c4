//! What the HTTP side of one node shares: the message path ([`Chat`]), the
//! drain state, the cluster view, and admission (connection ids, the
//! connection limit, the tracker that the shutdown waits on).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use chorus_protocol::unix_micros;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::{
    chat::Chat,
    config::Config,
    metrics::Metrics,
    server::{
        cluster_view::{ClusterView, NodeStatus, Totals},
        drain::Drain,
    },
};

/// One node, as its routes see it.
pub struct Node {
    /// The message path.
    chat: Arc<Chat>,
    /// Draining state: not ready, then closing connections, then stopped.
    drain: Drain,
    /// The peers alive, as last read from the backplane.
    cluster: ClusterView,
    /// When the node started (ms since the Unix epoch).
    started_at: u64,
    /// Tracks connection tasks, which axum's graceful shutdown does not see.
    connections: TaskTracker,
    /// Source of connection ids.
    next_conn: AtomicU64,
    /// One permit per connection; bounds the node at `max_connections`.
    admissions: Arc<Semaphore>,
}

impl Node {
    /// A node serving `chat`, draining by `drain`.
    pub fn new(chat: Arc<Chat>, drain: Drain) -> Self {
        let max_connections = chat.config().max_connections;
        Self {
            chat,
            drain,
            cluster: ClusterView::default(),
            started_at: unix_micros() / 1000,
            connections: TaskTracker::new(),
            next_conn: AtomicU64::new(1),
            admissions: Arc::new(Semaphore::new(max_connections)),
        }
    }

    /// The message path.
    pub fn chat(&self) -> &Arc<Chat> {
        &self.chat
    }

    /// Validated configuration.
    pub fn config(&self) -> &Config {
        self.chat.config()
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        self.chat.metrics()
    }

    /// The drain state.
    pub fn drain(&self) -> &Drain {
        &self.drain
    }

    /// The cluster view.
    pub fn cluster(&self) -> &ClusterView {
        &self.cluster
    }

    /// The connection tasks.
    pub fn connections(&self) -> &TaskTracker {
        &self.connections
    }

    /// A permit for one more connection, unless the node is full.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.admissions.clone().try_acquire_owned().ok()
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Why the node is not ready, if it is not: `(code, message)`.
    pub fn unready(&self) -> Option<(&'static str, &'static str)> {
        if self.drain.is_draining() {
            Some(("draining", "node is draining for shutdown"))
        } else if !self.chat.backplane().pubsub.is_ready() {
            Some((
                "backplane_down",
                "backplane (Redis) is not reachable or its pub/sub probe did not come back",
            ))
        } else if self.chat.backplane().pubsub.out_of_memory() {
            Some((
                "backplane_out_of_memory",
                "backplane (Redis) is out of memory: sends are refused until memory is freed",
            ))
        } else {
            None
        }
    }

    /// Sets the readiness gauges from the current state; returns whether ready.
    pub fn refresh_gauges(&self) -> bool {
        let ready = self.unready().is_none();
        let metrics = self.metrics();
        metrics.ready.set(i64::from(ready));
        metrics.draining.set(i64::from(self.drain.is_draining()));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tasks = runtime.metrics().num_alive_tasks();
            metrics
                .runtime_tasks
                .set(i64::try_from(tasks).unwrap_or(i64::MAX));
        }
        ready
    }

    /// This node's status for the cluster view (also refreshes the readiness gauges).
    pub fn status(&self) -> NodeStatus {
        let ready = self.refresh_gauges();
        let metrics = self.metrics();
        NodeStatus {
            id: self.config().node_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: self.started_at,
            heartbeat_at: unix_micros() / 1000,
            connections: metrics.connections_open.get(),
            rooms: metrics.rooms_local.get(),
            ready,
            draining: self.drain.is_draining(),
            totals: Totals {
                messages_received: metrics.messages_received.get(),
                messages_published: metrics.messages_published.get(),
                frames_delivered: metrics.frames_delivered.get(),
            },
            recent: self.cluster.recent(),
        }
    }
}

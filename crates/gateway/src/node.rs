//! State shared by every connection of one node.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use chorus_backplane::Backplane;
use chorus_protocol::unix_micros;
use tokio_util::task::TaskTracker;

use crate::{
    auth::{AuthError, Identity},
    cluster::{ClusterView, NodeStatus, Totals},
    config::Config,
    drain::Drain,
    hub::Hub,
    metrics::Metrics,
    presence::Presence,
    subscriptions::Subscriptions,
    users::Users,
};

/// Everything a connection needs from its node.
pub struct Node {
    /// Validated configuration.
    pub config: Config,
    /// Local rooms and fan-out.
    pub hub: Arc<Hub>,
    /// Where messages are published.
    pub backplane: Arc<dyn Backplane>,
    /// Room subscription reference counts.
    pub subscriptions: Subscriptions,
    /// The node's metrics.
    pub metrics: Metrics,
    /// Draining state: not ready, then closing connections, then stopped.
    pub drain: Drain,
    /// The peers alive, as last read from the backplane.
    pub cluster: ClusterView,
    /// When the node started (ms since the Unix epoch).
    pub started_at: u64,
    /// Tracks connection tasks, which axum's graceful shutdown does not see.
    pub connections: TaskTracker,
    /// Authenticated users here: per-user connection counts and rate buckets.
    pub users: Arc<Users>,
    /// Local connections per room and user, for presence across the cluster.
    pub presence: Presence,
    /// Source of connection ids.
    next_conn: AtomicU64,
    /// One permit per connection; bounds the node at `max_connections`.
    admissions: Arc<Semaphore>,
}

impl Node {
    /// Assembles a node from its parts.
    pub fn new(
        config: Config,
        hub: Arc<Hub>,
        backplane: Arc<dyn Backplane>,
        subscriptions: Subscriptions,
        metrics: Metrics,
        drain: Drain,
    ) -> Self {
        let config_max = config.max_connections;
        let users = Users::new(config.max_connections_per_user, config.rate_limits);
        Self {
            users,
            presence: Presence::default(),
            config,
            hub,
            backplane,
            subscriptions,
            metrics,
            drain,
            cluster: ClusterView::default(),
            started_at: unix_micros() / 1000,
            connections: TaskTracker::new(),
            next_conn: AtomicU64::new(1),
            admissions: Arc::new(Semaphore::new(config_max)),
        }
    }

    /// A permit for one more connection, unless the node is full.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.admissions.clone().try_acquire_owned().ok()
    }

    /// Verifies a token, counting refusals by reason.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        self.config
            .auth
            .verifier
            .verify(token)
            .inspect_err(|error| {
                self.metrics.auth_failed(error.label());
                tracing::debug!(%error, "token refused");
            })
    }

    /// Why the node is not ready, if it is not: `(code, message)`.
    pub fn unready(&self) -> Option<(&'static str, &'static str)> {
        if self.drain.is_draining() {
            Some(("draining", "node is draining for shutdown"))
        } else if !self.backplane.is_ready() {
            Some((
                "backplane_down",
                "backplane (Redis) is not reachable or its pub/sub probe did not come back",
            ))
        } else {
            None
        }
    }

    /// Sets the readiness gauges from the current state; returns whether ready.
    pub fn refresh_gauges(&self) -> bool {
        let ready = self.unready().is_none();
        self.metrics.ready.set(i64::from(ready));
        self.metrics
            .draining
            .set(i64::from(self.drain.is_draining()));
        ready
    }

    /// This node's status for the cluster view (also refreshes the readiness gauges).
    pub fn status(&self) -> NodeStatus {
        let ready = self.refresh_gauges();
        NodeStatus {
            id: self.config.node_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: self.started_at,
            heartbeat_at: unix_micros() / 1000,
            connections: self.metrics.connections_open.get(),
            rooms: self.metrics.rooms_local.get(),
            ready,
            draining: self.drain.is_draining(),
            totals: Totals {
                messages_received: self.metrics.messages_received.get(),
                messages_published: self.metrics.messages_published.get(),
                frames_delivered: self.metrics.frames_delivered.get(),
            },
            recent: self.cluster.recent(),
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

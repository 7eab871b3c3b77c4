//! State shared by every connection of one node.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use chorus_backplane::Backplane;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::{AuthError, Identity},
    config::Config,
    hub::Hub,
    metrics::Metrics,
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
    /// Cancelled when the node shuts down; connections close with `going_away`.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks, which axum's graceful shutdown does not see.
    pub connections: TaskTracker,
    /// Authenticated users here: per-user connection counts and rate buckets.
    pub users: Arc<Users>,
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
        shutdown: CancellationToken,
    ) -> Self {
        let config_max = config.max_connections;
        let users = Users::new(config.max_connections_per_user, config.rate_limits);
        Self {
            users,
            config,
            hub,
            backplane,
            subscriptions,
            metrics,
            shutdown,
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

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

//! The cluster's live nodes.

use std::time::Duration;

use async_trait::async_trait;

use crate::BackplaneError;

/// Nodes announce themselves with a TTL, measured on the backplane's clock; a
/// node that stops announcing (a crash) disappears when it runs out.
#[async_trait]
pub trait NodeRegistry: Send + Sync + 'static {
    /// Announces this node (`status`, opaque JSON) to the cluster for `ttl`; a node
    /// repeats it well before the TTL runs out.
    async fn announce(
        &self,
        node_id: &str,
        status: String,
        ttl: Duration,
    ) -> Result<(), BackplaneError>;
    /// The statuses of every node whose announcement has not run out (this one included).
    async fn nodes(&self) -> Result<Vec<String>, BackplaneError>;
    /// Removes this node's announcement at once (a clean exit).
    async fn withdraw(&self, node_id: &str) -> Result<(), BackplaneError>;
}

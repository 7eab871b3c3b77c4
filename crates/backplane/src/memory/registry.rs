//! The node registry on the in-process bus.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::relay::NodeLink;
use crate::{BackplaneError, NodeRegistry};

/// Announced nodes: id -> (status, expiry).
#[derive(Default)]
pub(super) struct Nodes(Mutex<HashMap<String, (String, Instant)>>);

/// One node's view of [`Nodes`].
pub(super) struct MemoryRegistry {
    /// The node's link to the bus.
    node: Arc<NodeLink>,
    /// The bus's registry.
    nodes: Arc<Nodes>,
}

impl MemoryRegistry {
    pub(super) fn new(node: Arc<NodeLink>, nodes: Arc<Nodes>) -> Self {
        Self { node, nodes }
    }

    fn nodes(&self) -> &Mutex<HashMap<String, (String, Instant)>> {
        &self.nodes.0
    }
}

#[async_trait]
impl NodeRegistry for MemoryRegistry {
    async fn announce(
        &self,
        node_id: &str,
        status: String,
        ttl: Duration,
    ) -> Result<(), BackplaneError> {
        self.node.check_open()?;
        let expires = Instant::now() + ttl;
        self.nodes()
            .lock()
            .insert(node_id.to_owned(), (status, expires));
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<String>, BackplaneError> {
        self.node.check_open()?;
        let now = Instant::now();
        let mut nodes = self.nodes().lock();
        nodes.retain(|_, (_, expires)| *expires > now);
        Ok(nodes.values().map(|(status, _)| status.clone()).collect())
    }

    async fn withdraw(&self, node_id: &str) -> Result<(), BackplaneError> {
        self.nodes().lock().remove(node_id);
        Ok(())
    }
}

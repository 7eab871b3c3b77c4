//! The cluster's node registry in Redis: each node announces itself with a
//! TTL (`nodes.lua`), and a node that stops announcing disappears when it runs
//! out, measured on Redis's clock so node clocks do not matter.

use std::time::Duration;

use async_trait::async_trait;
use fred::{clients::Client, prelude::Value};

use super::reply::{OpScript, Reply, WhenFull, millis};
use crate::{BackplaneError, NodeRegistry};

/// The node registry on Redis.
pub(super) struct RedisRegistry {
    /// The connection commands go through.
    client: Client,
    /// `nodes.lua`.
    script: OpScript,
    /// `<prefix>:{nodes}` (hash of statuses) and `<prefix>:{nodes}:expiry`
    /// (sorted set): one hash tag, so the script's keys share a cluster slot.
    keys: [String; 2],
}

impl RedisRegistry {
    pub(super) fn new(client: Client, prefix: &str) -> Self {
        Self {
            client,
            script: OpScript::new("node_registry", WhenFull::Run, include_str!("nodes.lua")),
            keys: [
                format!("{prefix}:{{nodes}}"),
                format!("{prefix}:{{nodes}}:expiry"),
            ],
        }
    }

    async fn call(&self, args: Vec<Value>) -> Result<Value, BackplaneError> {
        self.script
            .call(&self.client, self.keys.to_vec(), args)
            .await
    }
}

#[async_trait]
impl NodeRegistry for RedisRegistry {
    async fn announce(
        &self,
        node_id: &str,
        status: String,
        ttl: Duration,
    ) -> Result<(), BackplaneError> {
        let args = vec![
            "announce".into(),
            node_id.into(),
            status.into(),
            millis(ttl).into(),
        ];
        self.call(args).await.map(|_| ())
    }

    async fn nodes(&self) -> Result<Vec<String>, BackplaneError> {
        let answer = self.call(vec!["list".into()]).await?;
        Ok(Reply::new("node_registry", answer)?
            .rest()
            .filter_map(|value| value.into_string())
            .collect())
    }

    async fn withdraw(&self, node_id: &str) -> Result<(), BackplaneError> {
        self.call(vec!["withdraw".into(), node_id.into()])
            .await
            .map(|_| ())
    }
}

//! The cluster's node registry in Redis: each node announces itself with a
//! TTL (`nodes.lua`), and a node that stops announcing disappears when it runs
//! out, measured on Redis's clock so node clocks do not matter.

use std::time::Duration;

use fred::{clients::Client, prelude::Value, types::scripts::Script};

use super::unavailable;
use crate::BackplaneError;

/// The registry's keys and script.
pub(super) struct Registry {
    /// `nodes.lua`, loaded on first use and again after a Redis restart.
    script: Script,
    /// `<prefix>:nodes` (hash of statuses) and `<prefix>:nodes:expiry` (sorted set).
    keys: [String; 2],
}

impl Registry {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            script: Script::from_lua(include_str!("nodes.lua")),
            keys: [format!("{prefix}:nodes"), format!("{prefix}:nodes:expiry")],
        }
    }

    async fn call(&self, client: &Client, args: Vec<Value>) -> Result<Value, BackplaneError> {
        self.script
            .evalsha_with_reload(client, self.keys.to_vec(), args)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn announce(
        &self,
        client: &Client,
        node_id: &str,
        status: String,
        ttl: Duration,
    ) -> Result<(), BackplaneError> {
        let ttl_ms = ttl.as_millis().max(1).to_string();
        self.call(
            client,
            vec![
                "announce".into(),
                node_id.into(),
                status.into(),
                ttl_ms.into(),
            ],
        )
        .await
        .map(|_| ())
    }

    pub(super) async fn withdraw(
        &self,
        client: &Client,
        node_id: &str,
    ) -> Result<(), BackplaneError> {
        self.call(client, vec!["withdraw".into(), node_id.into()])
            .await
            .map(|_| ())
    }

    pub(super) async fn nodes(&self, client: &Client) -> Result<Vec<String>, BackplaneError> {
        match self.call(client, vec!["list".into()]).await? {
            Value::Array(values) => Ok(values
                .into_iter()
                .filter_map(|value| value.into_string())
                .collect()),
            Value::Null => Ok(Vec::new()),
            other => Err(BackplaneError::Unavailable(format!(
                "unexpected node registry reply: {:?}",
                other.kind()
            ))),
        }
    }
}

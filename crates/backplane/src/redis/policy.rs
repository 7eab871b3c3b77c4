//! At start: would Redis evict keys when it is full? Every Chorus key has an
//! expiry, so even the `volatile-*` policies would silently drop history, room
//! state and dedup keys under memory pressure; only `noeviction` (Redis
//! refuses writes instead, and Chorus refuses sends with a clear error) is
//! safe. Checked where the server lets its user read its configuration.

use fred::{
    clients::Client,
    interfaces::ClientLike,
    types::{ClusterHash, CustomCommand},
};
use prometheus::IntGauge;

/// Reads `maxmemory-policy`; warns (and sets `unsafe_policy`) unless it is `noeviction`.
pub(super) async fn check(client: &Client, unsafe_policy: &IntGauge) {
    let command = CustomCommand::new_static("CONFIG", ClusterHash::FirstKey, false);
    let answer: Result<Vec<String>, _> = client
        .custom(command, vec!["GET", "maxmemory-policy"])
        .await;
    match answer.as_deref() {
        Ok([_, policy]) if policy == "noeviction" => unsafe_policy.set(0),
        Ok([_, policy]) => {
            unsafe_policy.set(1);
            tracing::warn!(
                policy,
                "Redis may evict keys when full (maxmemory-policy {policy}), which silently loses history and room state; set maxmemory-policy noeviction"
            );
        }
        Ok(_) => {}
        Err(error) => tracing::info!(
            %error,
            "cannot read Redis's maxmemory-policy (the user may not run CONFIG); make sure it is noeviction"
        ),
    }
}

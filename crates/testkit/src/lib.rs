//! Real components for tests: `redis-server`, `s3s-fs`, Chorus nodes and WebSocket clients,
//! all on loopback. Every wait has a deadline ([`WAIT`]) and fails loudly.

mod api;
mod browser;
mod certs;
pub mod chaos;
mod client;
mod cluster;
pub mod failover;
mod node;
mod postgres;
mod proxy;
mod raw;
mod redis;
mod redis_cluster;
mod s3;
mod scrape;
mod sentinel;
mod tokens;
mod webhooks;

use std::{future::Future, time::Duration};

pub use api::{ApiKeyring, api};
pub use browser::Browser;
pub use client::{Client, Event};
pub use cluster::{BackplaneKind, Cluster, redis_settings, test_config};
pub use node::{
    InProcessNode, ProcessNode, http_get, http_get_authorized, http_post_json, http_request, metric,
};
pub use postgres::{POSTGRES_USER, Postgres};
pub use proxy::DelayProxy;
pub use raw::{RawFrame, SilentClient};
pub use redis::{APP_PASSWORD, APP_USER, RedisServer};
pub use redis_cluster::{RedisCluster, cluster_info, cluster_nodes, slot_of};
pub use s3::{S3_ACCESS_KEY, S3_SECRET_KEY, S3Server};
pub use scrape::Scrape;
pub use sentinel::{SENTINEL_MASTER, SentinelGroup};
pub use tokens::{
    TEST_SECRET, everywhere, fresh_user, test_auth, token, token_for, token_with_secret,
};
pub use webhooks::{Received, WEBHOOK_SECRET, WebhookReceiver, webhooks_file};

/// Runs each named `async fn(BackplaneKind)` of the test file on every
/// backplane: the in-process bus (module `in_process`), a real Redis (module
/// `redis`) and a real Redis Cluster (module `redis_cluster`).
#[macro_export]
macro_rules! on_both_backplanes {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::BackplaneKind::InProcess).await })*
        }
        $crate::on_redis_and_redis_cluster!($($name),*);
    };
}

/// Runs each named `async fn(BackplaneKind)` of the test file on a real
/// Redis (module `redis`) and on a real Redis Cluster (module `redis_cluster`).
#[macro_export]
macro_rules! on_redis_and_redis_cluster {
    ($($name:ident),* $(,)?) => {
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::BackplaneKind::Redis).await })*
        }
        mod redis_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::BackplaneKind::RedisCluster).await })*
        }
    };
}

/// Default bound on any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(15);

/// Waits for `check` to return `Some`, re-checking every few milliseconds, up
/// to `WAIT`. For state that has no event to wait on (Redis counters, HTTP probes).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Installs a log subscriber for tests once, when `RUST_LOG` is set (quiet otherwise).
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

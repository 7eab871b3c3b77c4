//! What the file routes share ([`Files`]): the store, the limits, the
//! upload rate and the node's chat for tokens and grants.

use std::{sync::Arc, time::Duration};

use axum::http::{HeaderMap, StatusCode};
use governor::{
    RateLimiter,
    clock::{Clock, MonotonicClock},
    state::keyed::HashMapStateStore,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{
    metrics::FileMetrics,
    store::{Backing, FileStore, StoreError},
};
use crate::{
    api::reply::ApiError,
    auth::{AuthError, Identity, presented_token},
    chat::Chat,
    config::FilesConfig,
};

/// Users tracked by the upload rate before the idle ones are forgotten.
const RATE_USERS: usize = 100_000;
/// Images decoded at once (each may take up to 128 MiB).
const DECODES_AT_ONCE: usize = 2;

/// Uploads per user, on the standard library's monotonic clock.
type UploadRate = RateLimiter<String, HashMapStateStore<String>, MonotonicClock>;

/// What the file routes share.
pub struct Files {
    /// The node's chat: tokens, room rules and grants.
    pub(super) chat: Arc<Chat>,
    /// Where files are kept (shared with the chat, for attachments).
    pub(super) store: Arc<FileStore>,
    /// Limits.
    pub(super) config: FilesConfig,
    /// Uploads per user (bounded: idle users are forgotten past [`RATE_USERS`]).
    rate: UploadRate,
    /// Bounds the memory of image decoding.
    pub(super) decodes: Semaphore,
    /// Bounds the uploads streaming at once (`--max-concurrent-uploads`).
    pub(super) uploads: Arc<Semaphore>,
    /// Uploads, bytes, store health.
    pub(super) metrics: FileMetrics,
}

impl Files {
    /// The node's files, kept as `chat`'s configuration says; unattached
    /// ones are swept until `stopped`.
    pub fn new(chat: Arc<Chat>, stopped: CancellationToken) -> Arc<Self> {
        let config = chat.config().files.clone();
        let metrics = FileMetrics::new(&chat.metrics().registry);
        let backing = match &config.s3 {
            Some(s3) => Backing::S3(s3.clone()),
            None => Backing::Local(config.dir.clone()),
        };
        let store = Arc::new(FileStore::new(backing, metrics.clone()));
        tokio::spawn(sweep(store.clone(), config.unattached_ttl, stopped));
        Arc::new(Self {
            store,
            rate: RateLimiter::hashmap_with_clock(config.upload_rate.quota(), MonotonicClock),
            decodes: Semaphore::new(DECODES_AT_ONCE),
            uploads: Arc::new(Semaphore::new(config.max_concurrent_uploads)),
            chat,
            config,
            metrics,
        })
    }

    /// The store, as the chat's source of attachment descriptions.
    pub fn attachments(&self) -> Arc<FileStore> {
        self.store.clone()
    }

    /// The user a request's token (`Authorization: Bearer`, or `query`) names.
    pub(super) fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Identity, ApiError> {
        let refused = |error: AuthError| {
            ApiError::new(StatusCode::UNAUTHORIZED, error.code(), error.to_string())
        };
        match presented_token(headers, query).map_err(refused)? {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send Authorization: Bearer <your chat token>",
            )),
            Some(token) => self.chat.verify(token).map_err(refused),
        }
    }

    /// Takes one upload from `user`'s rate, or says when to retry.
    pub(super) fn take_upload(&self, user: &str) -> Result<(), ApiError> {
        if self.rate.len() > RATE_USERS {
            self.rate.retain_recent();
        }
        self.rate.check_key(&user.to_owned()).map_err(|not_until| {
            ApiError::rate_limited(not_until.wait_time_from(MonotonicClock.now()))
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_file", "no such file")
            }
            StoreError::Failed(why) => {
                tracing::warn!(error = %why, "file store failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the file store did not answer; retry",
                )
            }
        }
    }
}

/// Deletes unattached files past `ttl`, every quarter of it (at most every
/// 10 minutes), until `stopped`. Every node sweeps; deleting twice is harmless.
async fn sweep(store: Arc<FileStore>, ttl: Duration, stopped: CancellationToken) {
    let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopped.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Nothing to sweep before the first upload made the directory.
        if !store.exists().await {
            continue;
        }
        match store.sweep(ttl).await {
            Ok(0) => {}
            Ok(swept) => {
                tracing::info!(swept, "deleted unattached files past --unattached-file-ttl")
            }
            Err(error) => {
                tracing::warn!(%error, "sweeping unattached files failed; retrying later")
            }
        }
    }
}

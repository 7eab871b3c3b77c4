//! Where files are kept: an [`ObjectStore`] (a local directory, created on
//! first use, or an S3-compatible bucket) under one layout, `files/<id>/data` (the bytes as uploaded),
//! `files/<id>/thumbnail` (a PNG, for images) and `files/<id>/meta.json`
//! (a [`FileMeta`], written last: a file without it was never completed and
//! is never served), and `pending/<id>` (an empty marker while no message
//! carries the file: [`FileStore::sweep`] deletes such files once they are
//! older than `--unattached-file-ttl`).

use std::{
    ops::Range,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{StreamExt, stream::BoxStream};
use object_store::{
    ClientOptions, GetOptions, GetRange, GetResult, ObjectStore, PutPayload, RetryConfig,
    WriteMultipart,
    aws::{AmazonS3, AmazonS3Builder},
    local::LocalFileSystem,
    path::Path,
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::metrics::FileMetrics;
use crate::config::S3Settings;

/// Part size of a streamed upload (the store's multipart chunk).
const PART_BYTES: usize = 5 * 1024 * 1024;

/// What is known about a stored file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileMeta {
    /// Its id.
    pub id: Uuid,
    /// The room it was uploaded to: who may read the room may read the file.
    pub room: String,
    /// Who uploaded it (user id).
    pub uploader: String,
    /// The name the uploader gave it.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its type, decided from its bytes.
    pub content_type: String,
    /// For images: width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// For images: height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Whether a thumbnail was made.
    #[serde(default)]
    pub thumbnail: bool,
    /// When it was uploaded (ms since the Unix epoch).
    pub uploaded_at: u64,
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object (or no metadata: an upload that never completed).
    #[error("no such file")]
    NotFound,
    /// The store failed (unreachable, full, not writable).
    #[error("file store: {0}")]
    Failed(String),
}

impl From<object_store::Error> for StoreError {
    fn from(error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { .. } => Self::NotFound,
            other => Self::Failed(other.to_string()),
        }
    }
}

/// Where a [`FileStore`] keeps its objects.
pub enum Backing {
    /// A local directory (shared by the nodes of a cluster, if several).
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Settings),
}

/// The file store of this node.
pub struct FileStore {
    /// The directory or bucket, made into a store on first use.
    backing: Backing,
    /// The store, once the directory exists.
    store: OnceCell<Arc<dyn ObjectStore>>,
    /// Store errors and latency.
    metrics: FileMetrics,
}

/// An upload being streamed into the store.
pub struct Upload {
    /// The multipart writer.
    writer: WriteMultipart,
    /// Counts its parts' latency.
    started: Instant,
    /// The file it is for.
    id: Uuid,
}

impl FileStore {
    /// A store in `backing` (a directory is created when first needed).
    pub fn new(backing: Backing, metrics: FileMetrics) -> Self {
        Self {
            backing,
            store: OnceCell::new(),
            metrics,
        }
    }

    async fn store(&self) -> Result<&Arc<dyn ObjectStore>, StoreError> {
        self.store
            .get_or_try_init(|| async {
                match &self.backing {
                    Backing::Local(dir) => {
                        let made = dir.clone();
                        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&made))
                            .await
                            .expect("creating a directory does not panic")
                            .map_err(|e| {
                                StoreError::Failed(format!("creating {}: {e}", dir.display()))
                            })?;
                        let local = LocalFileSystem::new_with_prefix(dir)
                            .map_err(|e| StoreError::Failed(e.to_string()))?;
                        Ok(Arc::new(local) as Arc<dyn ObjectStore>)
                    }
                    Backing::S3(settings) => Ok(Arc::new(s3(settings)?) as Arc<dyn ObjectStore>),
                }
            })
            .await
            .inspect_err(|_| self.metrics.store_error("open"))
    }

    /// Whether there may be files: the store was opened here, or its
    /// directory exists (another node, or an earlier run, made it).
    pub async fn exists(&self) -> bool {
        match &self.backing {
            _ if self.store.initialized() => true,
            Backing::S3(_) => true,
            Backing::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || dir.is_dir())
                    .await
                    .unwrap_or(false)
            }
        }
    }

    fn path(id: Uuid, part: &str) -> Path {
        Path::from(format!("files/{id}/{part}"))
    }

    /// Starts streaming `id`'s data into the store.
    pub async fn begin(&self, id: Uuid) -> Result<Upload, StoreError> {
        let store = self.store().await?;
        let upload = store
            .put_multipart(&Self::path(id, "data"))
            .await
            .inspect_err(|_| self.metrics.store_error("put"))?;
        Ok(Upload {
            writer: WriteMultipart::new_with_chunk_size(upload, PART_BYTES),
            started: Instant::now(),
            id,
        })
    }

    /// Writes `chunk` of an upload, waiting while too many parts are in flight.
    pub async fn write(&self, upload: &mut Upload, chunk: &[u8]) -> Result<(), StoreError> {
        upload
            .writer
            .wait_for_capacity(2)
            .await
            .inspect_err(|_| self.metrics.store_error("put"))?;
        upload.writer.write(chunk);
        Ok(())
    }

    /// Completes an upload: the data is in the store.
    pub async fn finish(&self, upload: Upload) -> Result<(), StoreError> {
        let started = upload.started;
        upload
            .writer
            .finish()
            .await
            .inspect_err(|_| self.metrics.store_error("put"))?;
        self.metrics.store_seconds("put", started.elapsed());
        Ok(())
    }

    /// Abandons an upload: nothing of it stays.
    pub async fn abort(&self, upload: Upload) {
        if let Err(error) = upload.writer.abort().await {
            tracing::debug!(%error, "an abandoned upload was not cleaned up");
        }
        self.remove_folder(upload.id).await;
    }

    /// Removes the local directory's folder of `id` once it is empty (a
    /// bucket has no folders).
    async fn remove_folder(&self, id: Uuid) {
        if let Backing::Local(dir) = &self.backing {
            let folder = dir.join("files").join(id.to_string());
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir(folder)).await;
        }
    }

    /// Stores a small object of `id` (a thumbnail, the metadata) whole.
    pub async fn put(&self, id: Uuid, part: &str, bytes: Bytes) -> Result<(), StoreError> {
        let started = Instant::now();
        let store = self.store().await?;
        store
            .put(&Self::path(id, part), PutPayload::from_bytes(bytes))
            .await
            .inspect_err(|_| self.metrics.store_error("put"))?;
        self.metrics.store_seconds("put", started.elapsed());
        Ok(())
    }

    /// Records `meta`: the file is complete and may be served; it is
    /// marked pending until a message carries it.
    pub async fn put_meta(&self, meta: &FileMeta) -> Result<(), StoreError> {
        let store = self.store().await?;
        store
            .put(&Self::pending(meta.id), PutPayload::default())
            .await
            .inspect_err(|_| self.metrics.store_error("put"))?;
        let json = serde_json::to_vec(meta).expect("file metadata serializes");
        self.put(meta.id, "meta.json", Bytes::from(json)).await
    }

    fn pending(id: Uuid) -> Path {
        Path::from(format!("pending/{id}"))
    }

    /// A message carries `ids`: they are no longer swept.
    pub async fn attached(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let store = self.store().await?;
        for id in ids {
            match store.delete(&Self::pending(*id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    self.metrics.store_error("delete");
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    /// Deletes the files no message carries that were uploaded more than
    /// `ttl` ago (their ids are UUIDv7: the time is in the id); how many.
    pub async fn sweep(&self, ttl: std::time::Duration) -> Result<usize, StoreError> {
        let store = self.store().await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut expired = Vec::new();
        let prefix = Path::from("pending");
        let mut listed = store.list(Some(&prefix));
        while let Some(object) = listed.next().await {
            let object = object.inspect_err(|_| self.metrics.store_error("get"))?;
            let Some(id) = object
                .location
                .filename()
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            let uploaded = id.get_timestamp().map(|t| {
                let (secs, nanos) = t.to_unix();
                std::time::Duration::new(secs, nanos)
            });
            if uploaded.is_some_and(|at| now.saturating_sub(at) > ttl) {
                expired.push(id);
            }
        }
        drop(listed);
        for id in &expired {
            self.delete(*id).await?;
            self.attached(std::slice::from_ref(id)).await?;
        }
        Ok(expired.len())
    }

    /// The metadata of a complete file.
    pub async fn meta(&self, id: Uuid) -> Result<FileMeta, StoreError> {
        let bytes = self.read(id, "meta.json", None).await?.1;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Failed(format!("metadata: {e}")))
    }

    /// Reads `id`'s `part`, or `range` of it; with the object's whole size.
    pub async fn read(
        &self,
        id: Uuid,
        part: &str,
        range: Option<Range<u64>>,
    ) -> Result<(u64, Bytes), StoreError> {
        let started = Instant::now();
        let result = self.get(id, part, range).await?;
        let size = result.meta.size;
        let bytes = result
            .bytes()
            .await
            .inspect_err(|_| self.metrics.store_error("get"))?;
        self.metrics.store_seconds("get", started.elapsed());
        Ok((size, bytes))
    }

    /// Streams `id`'s `part`, or `range` of it (within the object).
    pub async fn stream(
        &self,
        id: Uuid,
        part: &str,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, object_store::Result<Bytes>>, StoreError> {
        Ok(self.get(id, part, range).await?.into_stream())
    }

    /// Starts reading `id`'s `part`, or `range` of it.
    async fn get(
        &self,
        id: Uuid,
        part: &str,
        range: Option<Range<u64>>,
    ) -> Result<GetResult, StoreError> {
        let store = self.store().await?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = store
            .get_opts(&Self::path(id, part), options)
            .await
            .inspect_err(|e| {
                if !matches!(e, object_store::Error::NotFound { .. }) {
                    self.metrics.store_error("get");
                }
            })?;
        Ok(result)
    }

    /// Removes everything of `id`.
    pub async fn delete(&self, id: Uuid) -> Result<(), StoreError> {
        let store = self.store().await?;
        let prefix = Path::from(format!("files/{id}"));
        let mut listed = store.list(Some(&prefix));
        while let Some(object) = listed.next().await {
            let object = object.inspect_err(|_| self.metrics.store_error("delete"))?;
            match store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    self.metrics.store_error("delete");
                    return Err(error.into());
                }
            }
        }
        drop(listed);
        self.remove_folder(id).await;
        Ok(())
    }
}

/// A client of the bucket `settings` names (credentials from the settings,
/// else from the environment: `AWS_ACCESS_KEY_ID` ...).
fn s3(settings: &S3Settings) -> Result<AmazonS3, StoreError> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region);
    // A store that is down fails an upload within seconds, not minutes.
    let mut client = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60));
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
        client = client.with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(id) = &settings.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &settings.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    };
    builder
        .with_retry(retry)
        .with_client_options(client)
        .build()
        .map_err(|e| StoreError::Failed(format!("S3 settings: {e}")))
}

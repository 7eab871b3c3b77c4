//! Files and images in chat: where uploads are kept (`--files-dir`, or an
//! S3-compatible bucket with `--s3-bucket`) and how much a user may upload
//! (`--max-upload-bytes`, `--upload-rate`).

use std::{path::PathBuf, time::Duration};

use crate::auth::Rate;

/// Default directory of the local file store, relative to the working directory.
pub const DEFAULT_FILES_DIR: &str = "chorus-data/files";

/// Default largest upload: 25 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;

/// An S3-compatible bucket (AWS S3, MinIO, Ceph, s3s-fs ...).
#[derive(Clone)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// The service's URL (`None`: AWS for the region).
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// Access key id (`None`: from `AWS_ACCESS_KEY_ID` or the instance's role).
    pub access_key_id: Option<String>,
    /// Secret access key (`None`: from `AWS_SECRET_ACCESS_KEY` or the role).
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// How files are kept and limited.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// The local directory uploads are kept in (created on the first upload),
    /// unless `s3` is set.
    pub dir: PathBuf,
    /// The bucket uploads are kept in, shared by every node.
    pub s3: Option<S3Settings>,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Uploads per user (per node).
    pub upload_rate: Rate,
    /// A file no message carries is deleted this long after its upload.
    pub unattached_ttl: Duration,
    /// Uploads this node takes at once (each holds up to a 5 MiB part in memory).
    pub max_concurrent_uploads: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_FILES_DIR),
            s3: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            upload_rate: Rate::new(60.0 / 3600.0, 20),
            unattached_ttl: Duration::from_secs(3600),
            max_concurrent_uploads: 64,
        }
    }
}

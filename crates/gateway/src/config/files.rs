//! Files and images in chat: where uploads are kept and how much a user may
//! upload (`--files-dir`, `--max-upload-bytes`, `--upload-rate`).

use std::{path::PathBuf, time::Duration};

use crate::auth::Rate;

/// Default directory of the local file store, relative to the working directory.
pub const DEFAULT_FILES_DIR: &str = "chorus-data/files";

/// Default largest upload: 25 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;

/// How files are kept and limited.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// The local directory uploads are kept in (created on the first upload).
    pub dir: PathBuf,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Uploads per user (per node).
    pub upload_rate: Rate,
    /// A file no message carries is deleted this long after its upload.
    pub unattached_ttl: Duration,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_FILES_DIR),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            upload_rate: Rate::new(60.0 / 3600.0, 20),
            unattached_ttl: Duration::from_secs(3600),
        }
    }
}

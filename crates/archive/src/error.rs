//! What can go wrong with the archive.

use thiserror::Error;

/// An archive operation that did not happen.
#[derive(Debug, Error)]
pub enum ArchiveError {
    /// The database refused or failed a statement.
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool (the database is down, or
    /// every connection is busy past the wait).
    #[error("database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The database URL is not one.
    #[error("database URL: {0}")]
    Url(String),
    /// The TLS settings (`--database-ca-file`) cannot be used.
    #[error("database TLS: {0}")]
    Tls(String),
    /// The schema could not be brought up to date.
    #[error("schema migration: {0}")]
    Migration(#[from] refinery::Error),
    /// A log entry that is not an archived kind (a bug, or a newer node's).
    #[error("log entry {seq}: {why}")]
    Entry {
        /// Its place in the room.
        seq: u64,
        /// What is wrong with it.
        why: String,
    },
}

//! The archive: every stored message and every change to it kept in
//! PostgreSQL, exactly once, so history outlives Redis's bounded Streams and
//! can be searched.
//!
//! - [`entry`]: what is archived, decoded from a room's log entries;
//! - [`store`]: the database: schema migrations, appending a room's entries
//!   in one transaction (exactly once, whoever writes), paging;
//! - [`search`]: full-text search in the rooms a caller may read;
//! - [`removal`]: retention and a user's messages erased on request;
//! - [`archiver`]: the task in every node that archives new entries;
//! - [`metrics`]: what it counts.

pub mod archiver;
pub mod entry;
pub mod error;
pub mod metrics;
pub mod removal;
pub mod retention;
pub mod search;
pub mod store;

pub use archiver::Archiver;
pub use entry::{Entry, EntryBody};
pub use error::ArchiveError;
pub use metrics::ArchiveMetrics;
pub use removal::Sent;
pub use retention::RetentionRule;
pub use search::{Fragment, Hit, SearchQuery};
pub use store::{Appended, Archive, ArchiveSettings};

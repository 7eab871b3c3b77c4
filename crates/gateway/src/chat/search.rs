//! Full-text search of the archive, for the `search` command and
//! `GET /api/v1/search`: a user searches the rooms their token may read
//! (and their own direct messages); the server API searches every room.
//! Every hit is checked against the same policy once more before it leaves.

use chorus_archive::{Hit, SearchQuery};
use chorus_protocol::{RoomName, SearchHit, SnippetPart, commands};

use super::Chat;
use crate::auth::{Access, Grants};

/// Who searches.
#[derive(Clone, Copy)]
pub enum Searcher<'a> {
    /// A user, within their token's rooms.
    User {
        /// Their id (their direct-message rooms).
        id: &'a str,
        /// What their token grants.
        grants: &'a Grants,
    },
    /// The server API (a key with the `history` scope): every room.
    Server,
}

/// Why a search was not answered.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A room named in `rooms` is not one the searcher may read.
    #[error("your token does not allow reading {0}")]
    Forbidden(String),
    /// The archive did not answer.
    #[error("the archive did not answer; retry later")]
    Unavailable,
    /// The node keeps no archive (`--database-url`).
    #[error("this server keeps no archive to search")]
    NoArchive,
}

/// A page of hits, best first, and whether more follow.
pub struct Found {
    /// The hits.
    pub hits: Vec<SearchHit>,
    /// Whether a larger `offset` finds more.
    pub more: bool,
}

impl Chat {
    /// Searches the archive for `searcher`.
    pub async fn search(
        &self,
        searcher: Searcher<'_>,
        search: &commands::Search,
    ) -> Result<Found, SearchError> {
        let archive = self.archive().ok_or(SearchError::NoArchive)?;
        if let Some(rooms) = &search.rooms
            && let Some(room) = rooms.iter().find(|room| !self.may_read(searcher, room))
        {
            return Err(SearchError::Forbidden(room.to_string()));
        }
        let (user, readable) = match searcher {
            Searcher::User { id, grants } => (
                Some(id.to_owned()),
                self.config().auth.policy.readable(grants),
            ),
            Searcher::Server => (None, vec!["*".to_owned()]),
        };
        let query = SearchQuery {
            text: search.q.clone(),
            user,
            readable,
            rooms: search
                .rooms
                .as_ref()
                .map(|rooms| rooms.iter().map(|room| room.as_str().to_owned()).collect()),
            limit: search.limit as usize,
            offset: search.offset as usize,
        };
        let started = std::time::Instant::now();
        let metrics = archive.metrics();
        let (hits, more) = archive.search(&query).await.map_err(|error| {
            tracing::warn!(%error, "search failed in the archive");
            metrics.searches.with_label_values(&["error"]).inc();
            metrics.errors.with_label_values(&["search"]).inc();
            SearchError::Unavailable
        })?;
        metrics.searches.with_label_values(&["ok"]).inc();
        metrics
            .search_seconds
            .observe(started.elapsed().as_secs_f64());
        let hits = hits
            .into_iter()
            .filter(|hit| self.may_read(searcher, &hit.message.room))
            .map(shown)
            .collect();
        Ok(Found { hits, more })
    }

    /// Whether `searcher` may read `room` (the same rule as `history`).
    fn may_read(&self, searcher: Searcher<'_>, room: &RoomName) -> bool {
        match searcher {
            Searcher::Server => true,
            Searcher::User { id, grants } => {
                self.config().auth.policy.access(id, grants, room) != Access::Denied
            }
        }
    }
}

fn shown(hit: Hit) -> SearchHit {
    SearchHit {
        message: hit.message,
        snippet: hit
            .snippet
            .into_iter()
            .map(|part| SnippetPart {
                text: part.text,
                hit: part.hit,
            })
            .collect(),
        rank: hit.rank,
    }
}

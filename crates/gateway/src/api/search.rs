//! `GET /api/v1/search`: full-text search of the archive, for a user's token
//! (the rooms it may read, and the user's direct messages) or an API key
//! with the `history` scope (every room).

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chorus_protocol::{SearchHit, commands};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    caller::{Caller, bearer},
    reply::{ApiError, ApiQuery, ErrorBody, Refusals},
};
use crate::{
    auth::{AuthError, Scope},
    chat::{
        Chat,
        search::{SearchError, Searcher},
    },
};

/// Query of `GET /api/v1/search`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchParams {
    /// What to look for: words, "quoted phrases", `or`, `-word` (1-256 bytes).
    pub q: String,
    /// Only these rooms: names separated by commas (at most 100).
    pub rooms: Option<String>,
    /// Hits per page (1-100; 20 when absent, larger asks get 100).
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// Hits to skip (0-1000).
    #[param(minimum = 0, maximum = 1000)]
    pub offset: Option<i64>,
}

/// A page of search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// The query, as searched (trimmed).
    pub q: String,
    /// The messages found, best first.
    pub hits: Vec<SearchHit>,
    /// Whether more hits follow (ask again with a larger `offset`).
    pub more: bool,
}

/// Searches the archive.
#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "messages",
    params(SearchParams),
    responses(
        (status = 200, description = "Hits, best first", body = SearchResults),
        (status = 503, description = "No archive, or it did not answer (`archive_unavailable`)", body = ErrorBody),
        Refusals,
    ),
    security(("api_key" = []))
)]
pub async fn search(
    State(chat): State<Arc<Chat>>,
    headers: HeaderMap,
    params: Result<ApiQuery<SearchParams>, ApiError>,
) -> Result<Json<SearchResults>, ApiError> {
    // Who asks is settled first: a refused caller learns nothing of its query.
    let presented = bearer(&chat, &headers)?;
    let user = match chat.config().api_keys.find(presented) {
        Some(_) => {
            Caller::with_key(&chat, presented)?.require(Scope::History)?;
            None
        }
        None => Some(chat.verify(presented).map_err(unauthorized)?),
    };
    let ApiQuery(params) = params?;
    let number = |n: Option<i64>, what: &'static str| match n {
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| ApiError::bad("invalid_query", what)),
        None => Ok(None),
    };
    let limit = number(params.limit, "limit is a number from 1")?;
    let offset = number(params.offset, "offset is a number from 0 to 1000")?;
    let rooms = params
        .rooms
        .map(|rooms| rooms.split(',').map(str::to_owned).collect());
    let search = commands::Search::new(params.q, rooms, limit, offset)
        .map_err(|message| ApiError::bad("invalid_query", message))?;
    let searcher = match &user {
        None => Searcher::Server,
        Some(identity) => Searcher::User {
            id: &identity.user.id,
            grants: &identity.grants,
        },
    };
    let found = chat.search(searcher, &search).await;
    let found = found.map_err(|error| match error {
        SearchError::Forbidden(_) => {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", error.to_string())
        }
        SearchError::Unavailable | SearchError::NoArchive => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "archive_unavailable",
            error.to_string(),
        ),
    })?;
    Ok(Json(SearchResults {
        q: search.q,
        hits: found.hits,
        more: found.more,
    }))
}

/// A user's token that was refused (a credential that is neither a key nor
/// a token is `invalid_key`, as on every server API route).
fn unauthorized(error: AuthError) -> ApiError {
    match error.code() {
        "invalid_token" => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_key",
            "neither a key of this cluster nor a valid token",
        ),
        code => ApiError::new(StatusCode::UNAUTHORIZED, code, error.to_string()),
    }
}

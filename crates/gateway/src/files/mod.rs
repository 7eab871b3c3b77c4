//! Files and images in chat, under `/api/v1/` on the main port: a member
//! uploads a file to a room (`POST /rooms/{room}/files`, streamed into the
//! store, its type decided from its bytes, images given a thumbnail), and
//! whoever may read the room downloads it (`GET /files/{id}`, with range
//! requests, or its thumbnail), served so that a browser never runs it.
//! Users authenticate with their chat token. docs/api.md has the routes.

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};

mod attach;
mod download;
mod kind;
mod metadata;
mod metrics;
mod state;
mod store;
mod thumbnail;
mod upload;

pub use state::Files;

/// The file routes, to nest under `/api/v1` on the main port.
pub fn routes<S: Clone + Send + Sync + 'static>(files: Arc<Files>) -> Router<S> {
    Router::new()
        .route("/rooms/{room}/files", post(upload::upload))
        .route("/files/{id}", get(download::data))
        .route("/files/{id}/thumbnail", get(download::thumbnail))
        // Uploads are streamed and bounded by --max-upload-bytes.
        .layer(DefaultBodyLimit::disable())
        .with_state(files)
}

//! The server API: HTTP and JSON under `/api/v1/`, for application backends
//! holding an API key (see [`crate::auth::ApiKeys`]): post as a bot or the
//! system ([`messages`]), change any message ([`changes`]), read rooms
//! ([`rooms`]), list users' connections and the rooms with members
//! ([`listings`]), disconnect users and revoke their tokens ([`users`]), list
//! and replay webhook dead letters ([`webhooks`]). Every
//! route checks its key and scope ([`caller::Caller`]) and answers bad input with a
//! status and a code ([`reply`]). The OpenAPI 3.1 document is generated
//! from these handlers and served at `/api/v1/openapi.json`; docs/api.md
//! explains it with examples.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

mod archive;
mod caller;
mod changes;
pub(crate) mod input;
mod listings;
mod messages;
pub(crate) mod reply;
mod rooms;
mod search;
mod users;
mod webhooks;

use crate::chat::Chat;

/// The server API's routes, to nest under `/api/v1`.
pub fn routes<S: Clone + Send + Sync + 'static>(chat: Arc<Chat>) -> Router<S> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route(
            "/rooms/{room}/messages",
            post(messages::publish).get(messages::history),
        )
        .route("/broadcast", post(messages::broadcast))
        .route(
            "/rooms/{room}/messages/{seq}",
            axum::routing::patch(changes::edit).delete(changes::delete),
        )
        .route(
            "/rooms/{room}/messages/{seq}/reactions",
            post(changes::react),
        )
        .route("/search", get(search::search))
        .route("/rooms/{room}/export", get(archive::export))
        .route(
            "/users/{user}/messages",
            axum::routing::delete(archive::erase),
        )
        .route("/rooms", get(listings::rooms))
        .route("/rooms/{room}", get(rooms::info))
        .route("/rooms/{room}/presence", get(rooms::presence))
        .route("/users/{user}", get(listings::user))
        .route("/users/{user}/disconnect", post(users::disconnect))
        .route("/users/{user}/revoke", post(users::revoke))
        .route(
            "/webhooks/{endpoint}/dead-letters",
            get(webhooks::dead_letters),
        )
        .route(
            "/webhooks/{endpoint}/dead-letters/replay",
            post(webhooks::replay),
        )
        .fallback(|| async {
            reply::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such server API route; see /api/v1/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(reply::MAX_REQUEST_BYTES))
        .with_state(chat)
}

/// The OpenAPI document of the server API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chorus server API",
        description = "Post as a bot or the system, change any message, read rooms, list users' connections and the rooms with members, disconnect users and revoke their tokens. Authenticate with `Authorization: Bearer <API key>`; see docs/api.md.",
    ),
    paths(
        messages::publish,
        messages::broadcast,
        messages::history,
        search::search,
        archive::export,
        changes::edit,
        changes::delete,
        changes::react,
        rooms::info,
        rooms::presence,
        listings::rooms,
        listings::user,
        users::disconnect,
        users::revoke,
        archive::erase,
        webhooks::dead_letters,
        webhooks::replay,
    ),
    modifiers(&BearerKey),
    tags(
        (name = "messages", description = "Post, read and change messages"),
        (name = "rooms", description = "Where a room stands, who is in it, which rooms have members"),
        (name = "users", description = "Where users are connected; disconnect them, revoke their tokens"),
        (name = "webhooks", description = "Webhook dead letters"),
    )
)]
pub struct ApiDoc;

/// Declares the `api_key` bearer scheme the paths name.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A server API key (chorus api-key)"))
                    .build(),
            ),
        );
    }
}

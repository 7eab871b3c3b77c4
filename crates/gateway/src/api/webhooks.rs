//! Webhook dead letters through the server API (the `webhooks` scope): list
//! an endpoint's (`GET /webhooks/{endpoint}/dead-letters`) and send them
//! again (`POST /webhooks/{endpoint}/dead-letters/replay`).

use std::sync::Arc;

use axum::{Json, extract::State, http::StatusCode};
use chorus_backplane::{DEAD_LETTERS_MAX, webhook_partition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{
    caller::Caller,
    reply::{ApiError, ApiPath, ApiQuery, Body, BodyRefusals, ErrorBody, Refusals},
};
use crate::{auth::Scope, chat::Chat};

/// `?limit=` of the dead-letter list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadQuery {
    /// At most this many, oldest first (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// An endpoint's dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    /// The endpoint.
    pub endpoint: String,
    /// The events, oldest first, as they were sent (`id`, `type`, `timestamp`, `data`).
    pub events: Vec<Value>,
}

/// How many dead letters to replay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// At most this many, oldest first (1-10000, default all, up to 10,000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub max: Option<i64>,
}

/// Dead letters queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// The endpoint.
    pub endpoint: String,
    /// How many were queued again (for this endpoint only, with their `webhook-id`).
    pub replayed: usize,
}

/// Lists an endpoint's dead letters.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{endpoint}/dead-letters",
    tag = "webhooks",
    params(("endpoint" = String, Path, description = "The endpoint's name"), DeadQuery),
    responses(
        (status = 200, description = "The dead letters, oldest first", body = DeadLetters),
        (status = 404, description = "No endpoint of that name (`unknown_endpoint`)", body = ErrorBody),
        Refusals,
    ),
    security(("api_key" = []))
)]
pub async fn dead_letters(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(endpoint): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeadQuery>,
) -> Result<Json<DeadLetters>, ApiError> {
    caller.require(Scope::Webhooks)?;
    known(&chat, &endpoint)?;
    let limit = match query.limit {
        None => 100,
        Some(n @ 1..=1000) => n.unsigned_abs() as usize,
        Some(_) => return Err(ApiError::bad("invalid_query", "limit is 1 to 1000")),
    };
    let letters = chat
        .backplane()
        .webhooks
        .dead_letters(&endpoint, limit)
        .await?;
    let events = letters
        .iter()
        .filter_map(|bytes| serde_json::from_slice(bytes).ok())
        .collect();
    Ok(Json(DeadLetters { endpoint, events }))
}

/// Sends an endpoint's dead letters again, oldest first (to it only).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{endpoint}/dead-letters/replay",
    tag = "webhooks",
    params(("endpoint" = String, Path, description = "The endpoint's name")),
    request_body = ReplayRequest,
    responses(
        (status = 202, description = "Queued again; delivered like new events", body = Replayed),
        (status = 404, description = "No endpoint of that name (`unknown_endpoint`)", body = ErrorBody),
        Refusals,
        BodyRefusals,
    ),
    security(("api_key" = []))
)]
pub async fn replay(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(endpoint): ApiPath<String>,
    Body(request): Body<ReplayRequest>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    caller.require(Scope::Webhooks)?;
    known(&chat, &endpoint)?;
    let max = match request.max {
        None => DEAD_LETTERS_MAX,
        Some(n @ 1..=10_000) => n.unsigned_abs() as usize,
        Some(_) => return Err(ApiError::bad("invalid_request", "max is 1 to 10000")),
    };
    let queue = &chat.backplane().webhooks;
    let letters = queue.exhume(&endpoint, max).await?;
    let mut replayed = 0;
    for (i, letter) in letters.iter().enumerate() {
        let room = serde_json::from_slice::<Value>(letter)
            .ok()
            .and_then(|v| v["data"]["room"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if let Err(error) = queue
            .append(webhook_partition(&room), letter.clone(), Some(&endpoint))
            .await
        {
            // Taken out but not queued: put them back as dead letters.
            for rest in &letters[i..] {
                let _ = queue.bury(&endpoint, rest.clone()).await;
            }
            return Err(error.into());
        }
        replayed += 1;
    }
    tracing::info!(key = %caller.name, %endpoint, replayed, "webhook dead letters replayed");
    Ok((StatusCode::ACCEPTED, Json(Replayed { endpoint, replayed })))
}

fn known(chat: &Chat, endpoint: &str) -> Result<(), ApiError> {
    let configured = chat.config().webhooks.as_ref();
    match configured.is_some_and(|c| c.endpoints.iter().any(|e| e.name == endpoint)) {
        true => Ok(()),
        false => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_endpoint",
            "no webhook endpoint of that name",
        )),
    }
}

//! Reading a room through the server API (the `presence` scope): where it
//! stands (`GET /rooms/{room}`) and who is in it (`GET /rooms/{room}/presence`).

use std::sync::Arc;

use axum::{Json, extract::State};
use chorus_protocol::Present;
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    caller::Caller,
    input,
    reply::{ApiError, ApiPath, Refusals},
};
use crate::{auth::Scope, chat::Chat};

/// Where a room stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomInfo {
    /// The room.
    pub room: String,
    /// Its numbering: a larger epoch means earlier history was lost (0: the
    /// room never had a message).
    pub epoch: u64,
    /// Its last sequence number (0: no message in this epoch).
    pub seq: u64,
    /// How many users are in it now, across the cluster.
    pub members_online: u64,
}

/// Who is in a room now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomPresence {
    /// The room.
    pub room: String,
    /// How many users are present.
    pub total: u64,
    /// At most 1000 of them, by id, with their status.
    pub members: Vec<Present>,
}

/// A room's epoch, last sequence number and online count.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{room}",
    tag = "rooms",
    params(("room" = String, Path, description = "The room")),
    responses((status = 200, description = "Where the room stands", body = RoomInfo), Refusals),
    security(("api_key" = []))
)]
pub async fn info(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<RoomInfo>, ApiError> {
    caller.require(Scope::Presence)?;
    let room = input::room(&chat, &room)?;
    let backplane = chat.backplane();
    let (positions, present) = tokio::join!(
        backplane.log.positions(std::slice::from_ref(&room)),
        backplane.presence.list(&room, 0),
    );
    let position = positions?.first().copied();
    Ok(Json(RoomInfo {
        room: room.as_str().to_owned(),
        epoch: position.map_or(0, |p| p.epoch),
        seq: position.map_or(0, |p| p.seq),
        members_online: present?.0,
    }))
}

/// Who is in a room now, with their status.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{room}/presence",
    tag = "rooms",
    params(("room" = String, Path, description = "The room")),
    responses((status = 200, description = "The room's members online", body = RoomPresence), Refusals),
    security(("api_key" = []))
)]
pub async fn presence(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<RoomPresence>, ApiError> {
    caller.require(Scope::Presence)?;
    let room = input::room(&chat, &room)?;
    let (total, members) = chat.members(&room).await?;
    Ok(Json(RoomPresence {
        room: room.as_str().to_owned(),
        total,
        members,
    }))
}

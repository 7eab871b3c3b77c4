//! What the cluster holds now, through the server API (the `presence`
//! scope): a user's connections and rooms (`GET /users/{user}`), the rooms
//! with members, paged by name (`GET /rooms`). Every node is asked
//! ([`crate::chat::queries::Queries::ask`]); the answer names the nodes that did not answer in time.

use std::{collections::BTreeSet, sync::Arc};

use axum::{Json, extract::State};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    caller::Caller,
    input,
    reply::{ApiError, ApiPath, ApiQuery, Refusals},
};
use crate::{
    auth::Scope,
    chat::{
        Chat,
        queries::{Answer, MAX_ROOMS_PAGE, Question},
    },
};

/// Rooms one page lists unless `limit` says otherwise.
const DEFAULT_ROOMS_PAGE: usize = 100;
/// Room counts read from the backplane at once for one page.
const COUNTS_AT_ONCE: usize = 16;

/// A user's connections and rooms across the cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserListing {
    /// The user.
    pub user: String,
    /// Whether the user has a connection on a node that answered.
    pub online: bool,
    /// Their connections, by node and id.
    pub connections: Vec<ConnectionListing>,
    /// Every room any of their connections is in, by name.
    pub rooms: Vec<String>,
    /// Nodes alive that did not answer within 2 s: the lists may lack what
    /// they hold.
    pub nodes_missing: Vec<String>,
}

/// One connection of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionListing {
    /// The node holding it.
    pub node: String,
    /// Its id: the `conn` of its `welcome`.
    pub id: String,
    /// `json` or `msgpack`.
    pub encoding: String,
    /// When it authenticated (ms since the Unix epoch).
    pub connected_at: u64,
    /// The rooms it is in, by name.
    pub rooms: Vec<String>,
}

/// Where a user is connected, on every node, and in which rooms.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user}",
    tag = "users",
    params(("user" = String, Path, description = "The user's id (the tokens' `sub`)")),
    responses((status = 200, description = "The user's connections and rooms", body = UserListing), Refusals),
    security(("api_key" = []))
)]
pub async fn user(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<UserListing>, ApiError> {
    caller.require(Scope::Presence)?;
    input::user(&user)?;
    let gathered = chat.queries().ask(Question::User(user.clone())).await?;
    let mut connections = Vec::new();
    let mut rooms = BTreeSet::new();
    for (node, answer) in gathered.answers {
        let Answer::User(found) = answer else {
            continue;
        };
        for connection in found {
            rooms.extend(connection.rooms.iter().cloned());
            connections.push(ConnectionListing {
                node: node.clone(),
                id: connection.conn,
                encoding: connection.encoding,
                connected_at: connection.since,
                rooms: connection.rooms,
            });
        }
    }
    connections.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
    Ok(Json(UserListing {
        user,
        online: !connections.is_empty(),
        connections,
        rooms: rooms.into_iter().collect(),
        nodes_missing: gathered.missing,
    }))
}

/// Which page of rooms.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomsQuery {
    /// Rooms named after this one (the previous page's `next`).
    pub after: Option<String>,
    /// Page size: default 100, at most 1000 (larger asks get 1000).
    #[param(minimum = 1)]
    pub limit: Option<i64>,
}

/// A room with members.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomListing {
    /// The room.
    pub room: String,
    /// How many users are in it now, across the cluster.
    pub members_online: u64,
}

/// A page of the rooms with members, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomsPage {
    /// The rooms, in name order.
    pub rooms: Vec<RoomListing>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
    /// Nodes alive that did not answer within 2 s: the page may lack rooms
    /// whose members are all on them.
    pub nodes_missing: Vec<String>,
}

/// The rooms with members on any node, in name order, with their counts.
#[utoipa::path(
    get,
    path = "/api/v1/rooms",
    tag = "rooms",
    params(RoomsQuery),
    responses((status = 200, description = "A page of rooms", body = RoomsPage), Refusals),
    security(("api_key" = []))
)]
pub async fn rooms(
    State(chat): State<Arc<Chat>>,
    caller: Caller,
    ApiQuery(query): ApiQuery<RoomsQuery>,
) -> Result<Json<RoomsPage>, ApiError> {
    caller.require(Scope::Presence)?;
    let limit = match query.limit {
        None => DEFAULT_ROOMS_PAGE,
        Some(n) if n < 1 => return Err(ApiError::bad("invalid_query", "limit is at least 1")),
        Some(n) => usize::try_from(n).map_or(MAX_ROOMS_PAGE, |n| n.min(MAX_ROOMS_PAGE)),
    };
    if let Some(after) = &query.after {
        chorus_protocol::RoomName::parse(after)
            .map_err(|_| ApiError::bad("invalid_query", "after is a room name"))?;
    }
    let question = Question::Rooms {
        after: query.after,
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
    };
    let gathered = chat.queries().ask(question).await?;
    let mut names = BTreeSet::new();
    for (_, answer) in gathered.answers {
        if let Answer::Rooms(rooms) = answer {
            names.extend(rooms);
        }
    }
    // A node lists at most `limit`: past the page's end there may be more.
    let names: Vec<String> = names.into_iter().take(limit).collect();
    let next = (names.len() == limit).then(|| names[limit - 1].clone());
    let backplane = chat.backplane();
    let rooms: Vec<RoomListing> = stream::iter(names)
        .map(|name| async move {
            let room = chorus_protocol::RoomName::parse(&name)
                .map_err(|_| ApiError::bad("invalid_room", "a node listed an invalid room name"))?;
            let (count, _) = backplane.presence.list(&room, 0).await?;
            // Listed by a node, so someone is in it even if their entry is
            // not written yet.
            Ok::<_, ApiError>(RoomListing {
                room: name,
                members_online: count.max(1),
            })
        })
        .buffered(COUNTS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(Json(RoomsPage {
        rooms,
        next,
        nodes_missing: gathered.missing,
    }))
}

//! Reading room history for clients: what a join (or resume) gets, and pages
//! for `history` over WebSocket and `GET /api/rooms/{room}/messages`.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use chorus_backplane::{BackplaneError, Overlay, Page, Position, Read, Reader};
use chorus_protocol::{
    Before, ChatMessage, Envelope, EnvelopeBody, MessageChange, Reaction, Resume, RoomName,
    ServerEvent,
};
use serde::Deserialize;

use crate::{
    auth::Access,
    node::Node,
    server::{presented_token, refusal, unauthorized},
};

/// Estimated encoded size of a message beyond its body (ids, names, keys).
const MESSAGE_OVERHEAD: usize = 256;

/// What a joining client gets before the room's live messages.
pub struct Catchup {
    /// The room's position at the read: `joined` announces it.
    pub position: Position,
    /// Messages (and, on a resume, changes) to send, oldest first.
    pub items: Vec<Item>,
    /// For a resume: whether `items` are exactly the missed ones.
    pub recovered: Option<bool>,
    /// The joining user's read marker and unread count.
    pub reader: Reader,
}

/// One entry of a room's history as a client gets it.
pub enum Item {
    /// A message, as it is now (edited text, tombstone, reactions).
    Message(ChatMessage),
    /// A change to an earlier message, at its own sequence number.
    Change(u64, MessageChange),
}

impl Item {
    /// The event that carries this entry to a client.
    pub fn event(&self) -> ServerEvent<'_> {
        match self {
            Self::Message(message) => ServerEvent::Message(message),
            Self::Change(seq, change) => change.event(*seq),
        }
    }
}

/// Reads the messages a join should deliver: the missed ones for a resume when
/// they are all still in history (and fit); for a resume from an epoch the
/// backplane has since lost, the whole new epoch when it is all still there
/// (and fits); the latest ones otherwise.
pub async fn for_join(
    node: &Node,
    room: &RoomName,
    user: &str,
    resume: Option<Resume>,
    wanted: Option<u32>,
) -> Result<Catchup, BackplaneError> {
    let history = &node.config.history;
    let budget = budget(node);
    if let Some(resume) = resume {
        let read = Read::After {
            seq: resume.after,
            limit: history.resume_max,
        };
        let page = node.backplane.read_as(room, read, user).await?;
        let head = page.position;
        let continuous = match page.entries.first() {
            Some(first) => first.seq == resume.after + 1,
            None => resume.after == head.seq,
        };
        let recovered = head.epoch == resume.epoch
            && resume.after <= head.seq
            && continuous
            && !page.more
            && estimated_bytes(&page) <= budget;
        node.metrics.resumed(recovered);
        if recovered {
            return Ok(Catchup {
                position: head,
                reader: page.reader.unwrap_or(NO_READER),
                items: decode_items(room, page.entries),
                recovered: Some(true),
            });
        }
        if head.epoch > resume.epoch {
            // The backplane lost the room's history since the client left: what
            // it missed before is gone, but none of the new epoch need be.
            let read = Read::After {
                seq: 0,
                limit: history.resume_max,
            };
            let page = node.backplane.read_as(room, read, user).await?;
            let whole = match page.entries.first() {
                Some(first) => first.seq == 1,
                None => page.position.seq == 0,
            };
            if whole && !page.more && estimated_bytes(&page) <= budget {
                return Ok(Catchup {
                    position: page.position,
                    reader: page.reader.unwrap_or(NO_READER),
                    items: decode_items(room, page.entries),
                    recovered: Some(false),
                });
            }
        }
    }
    let limit = wanted
        .map_or(history.on_join, |n| n as usize)
        .min(history.page_max);
    let read = Read::Latest { limit };
    let mut page = node.backplane.read_as(room, read, user).await?;
    fit(&mut page, budget);
    Ok(Catchup {
        position: page.position,
        reader: page.reader.unwrap_or(NO_READER),
        items: decode_items(room, page.entries),
        recovered: resume.map(|_| false),
    })
}

/// A page of history older than `before` (the newest when absent), oldest first.
pub async fn page(
    node: &Node,
    room: &RoomName,
    before: Option<Before>,
    limit: Option<u32>,
) -> Result<(Position, Vec<ChatMessage>, bool), BackplaneError> {
    let page_max = node.config.history.page_max;
    let limit = limit.map_or(page_max, |n| (n as usize).clamp(1, page_max));
    let read = match before {
        None => Read::Latest { limit },
        Some(Before::Seq(seq)) => Read::Before { seq, limit },
        Some(Before::Id(id)) => Read::BeforeId {
            id: id.to_string(),
            limit,
        },
    };
    let mut page = node.backplane.read(room, read).await?;
    fit(&mut page, budget(node));
    Ok((page.position, decode(room, page.entries), page.more))
}

/// Bytes of history one client may be sent at once: half its outbound queue.
fn budget(node: &Node) -> usize {
    node.config.outbox_bytes / 2
}

fn estimated_bytes(page: &Page) -> usize {
    page.entries
        .iter()
        .map(|e| e.payload.len() + MESSAGE_OVERHEAD)
        .sum()
}

/// Drops the oldest messages of a page until it fits the budget (more then remain).
fn fit(page: &mut Page, budget: usize) {
    let mut total = estimated_bytes(page);
    let mut drop = 0;
    while total > budget && drop < page.entries.len() {
        total -= page.entries[drop].payload.len() + MESSAGE_OVERHEAD;
        drop += 1;
    }
    if drop > 0 {
        page.entries.drain(..drop);
        page.more = true;
    }
}

/// A reader with no marker in a room with nothing to read (when the backplane
/// answered without one, which a read made for a user never does).
const NO_READER: Reader = Reader {
    marker: None,
    unread: 0,
};

/// Decodes stored envelopes into messages (as they are now) and changes.
pub fn decode_items(room: &RoomName, entries: Vec<chorus_backplane::Stored>) -> Vec<Item> {
    entries
        .into_iter()
        .filter_map(|entry| match Envelope::decode(&entry.payload) {
            Ok(Envelope {
                body: EnvelopeBody::Message(mut message),
                ..
            }) => {
                message.seq = entry.seq;
                if let Some(overlay) = entry.overlay {
                    apply(&mut message, overlay);
                }
                Some(Item::Message(message))
            }
            Ok(Envelope {
                body: EnvelopeBody::Change(change),
                ..
            }) => Some(Item::Change(entry.seq, change)),
            // Signals are never stored; one in history would be a bug elsewhere.
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%room, seq = entry.seq, %error, "skipping undecodable history entry");
                None
            }
        })
        .collect()
}

/// Decodes stored envelopes into messages as they are now (a backwards page
/// holds no changes).
pub fn decode(room: &RoomName, entries: Vec<chorus_backplane::Stored>) -> Vec<ChatMessage> {
    decode_items(room, entries)
        .into_iter()
        .filter_map(|item| match item {
            Item::Message(message) => Some(message),
            Item::Change(..) => None,
        })
        .collect()
}

/// Gives a message its current state: edited text, tombstone, reactions.
fn apply(message: &mut ChatMessage, overlay: Overlay) {
    if overlay.deleted.is_some() {
        message.body.clear();
        message.mentions.clear();
        message.deleted = true;
        return;
    }
    if let Some(body) = overlay.body {
        message.body = body;
        message.edited = overlay.edited;
    }
    message.reactions = overlay
        .reactions
        .into_iter()
        .map(|(emoji, users)| Reaction {
            emoji,
            count: users.len(),
            users,
        })
        .collect();
}

/// Query of `GET /api/rooms/{room}/messages`.
#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    /// Older than this sequence number.
    before: Option<u64>,
    /// Older than this message.
    before_id: Option<String>,
    /// Page size (clamped to `--history-page-max`).
    limit: Option<u32>,
}

/// `GET /api/rooms/{room}/messages`: a page of history, for a bearer token that may join the room.
pub async fn messages(
    State(node): State<Arc<Node>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Response {
    let token = match presented_token(&headers, None) {
        Err(error) => return unauthorized(&node, &error),
        Ok(None) => {
            return refusal(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send Authorization: Bearer <token>",
            );
        }
        Ok(Some(token)) => token,
    };
    let identity = match node.verify(token) {
        Ok(identity) => identity,
        Err(error) => return unauthorized(&node, &error),
    };
    let Ok(room) = RoomName::parse(&room) else {
        return refusal(StatusCode::BAD_REQUEST, "invalid_room", "invalid room name");
    };
    if node.config.room_rules.check(room.as_str()).is_err() {
        return refusal(StatusCode::BAD_REQUEST, "invalid_room", "invalid room name");
    }
    let Ok(Query(query)) = query else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "before and limit are numbers, before_id a message id",
        );
    };
    let before = match Before::from_fields(query.before, query.before_id.as_deref()) {
        Ok(before) => before,
        Err(message) => return refusal(StatusCode::BAD_REQUEST, "invalid_query", message),
    };
    let access = node
        .config
        .auth
        .policy
        .access(&identity.user.id, &identity.grants, &room);
    if access == Access::Denied {
        return refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your token does not allow reading this room",
        );
    }
    match page(&node, &room, before, query.limit).await {
        Ok((position, messages, more)) => Json(serde_json::json!({
            "room": room,
            "epoch": position.epoch,
            "seq": position.seq,
            "messages": messages,
            "more": more,
        }))
        .into_response(),
        Err(BackplaneError::UnknownMessage) => refusal(
            StatusCode::NOT_FOUND,
            "unknown_message",
            "no message with that id in the room's history",
        ),
        Err(_) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "backplane_unavailable",
            "history could not be read; retry",
        ),
    }
}

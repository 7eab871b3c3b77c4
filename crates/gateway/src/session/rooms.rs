//! Room commands of a session: join (with history or resume), leave, send and
//! history. Split from `session` to keep each file readable in one sitting.

use bytes::Bytes;
use chorus_backplane::{BackplaneError, Dedup, Outgoing, Published};
use chorus_protocol::{Before, ChatMessage, Envelope, ErrorCode, Resume, RoomName, ServerEvent};
use uuid::Uuid;

use super::{Session, unix_millis};
use crate::{
    auth::Access,
    history,
    hub::{Member, StaleRead, ws_message},
};

/// Reads of a join's history tried before giving up (each retry follows a newer epoch).
const JOIN_READ_ATTEMPTS: usize = 3;

impl Session {
    pub(super) async fn join(
        &mut self,
        room: RoomName,
        resume: Option<Resume>,
        wanted: Option<u32>,
        reference: Option<String>,
    ) {
        if let Err(wait) = self.limit(false) {
            return self.rate_limited(wait, "join", reference, &room);
        }
        if let Err(message) = self.node.config.room_rules.check(room.as_str()) {
            return self.error(ErrorCode::InvalidRoom, message, reference, Some(&room));
        }
        if self.access(&room) == Access::Denied {
            return self.error(
                ErrorCode::Forbidden,
                "your token does not allow joining this room".into(),
                reference,
                Some(&room),
            );
        }
        if self.rooms.contains(&room) {
            return self.error(
                ErrorCode::AlreadyJoined,
                "already a member of this room".into(),
                reference,
                Some(&room),
            );
        }
        if self.rooms.len() >= self.node.config.max_rooms {
            let message = format!(
                "a connection may be in at most {} rooms",
                self.node.config.max_rooms
            );
            return self.error(ErrorCode::TooManyRooms, message, reference, Some(&room));
        }
        if let Err(error) = self.node.subscriptions.acquire(&room).await {
            let message = format!("could not join: {error}");
            return self.error(
                ErrorCode::BackplaneUnavailable,
                message,
                reference,
                Some(&room),
            );
        }
        // Become a member in catch-up mode first, then read history: every message
        // is then either in the history read or kept aside for this member.
        let member = Member::joining(self.outbox.clone(), self.encoding);
        self.node.hub.begin_join(&room, self.conn, member);
        let user = self.user_id().to_owned();
        for _ in 0..JOIN_READ_ATTEMPTS {
            let catchup = history::for_join(&self.node, &room, &user, resume, wanted).await;
            let catchup = match catchup {
                Ok(catchup) => catchup,
                Err(error) => return self.join_failed(&room, &error, reference),
            };
            let head = catchup.position;
            let marker = catchup.reader.marker;
            let read_seq = marker.filter(|m| m.epoch == head.epoch).map(|m| m.seq);
            let mut frames = Vec::with_capacity(catchup.items.len() + 1);
            frames.push(self.frame(&ServerEvent::Joined {
                room: &room,
                epoch: head.epoch,
                seq: head.seq,
                recovered: catchup.recovered,
                read_seq,
                unread: catchup.reader.unread,
                reference: reference.as_deref(),
            }));
            frames.extend(catchup.items.iter().map(|item| self.frame(&item.event())));
            match self
                .node
                .hub
                .finish_join(&room, self.conn, catchup.position, frames)
            {
                Ok(()) => {
                    self.presence_enter(&room).await;
                    self.rooms.insert(room);
                    return;
                }
                Err(StaleRead) => continue,
            }
        }
        let unavailable =
            BackplaneError::Unavailable("room history changed during the join".into());
        self.join_failed(&room, &unavailable, reference);
    }

    fn join_failed(&mut self, room: &RoomName, error: &BackplaneError, reference: Option<String>) {
        self.node.hub.remove(room, self.conn);
        self.node.subscriptions.release(room);
        let message = format!("could not join: {error}");
        self.error(
            ErrorCode::BackplaneUnavailable,
            message,
            reference,
            Some(room),
        );
    }

    fn frame(&self, event: &ServerEvent<'_>) -> axum::extract::ws::Message {
        ws_message(self.encoding.encode(event))
    }

    pub(super) async fn history(
        &mut self,
        room: RoomName,
        before: Option<Before>,
        limit: Option<u32>,
        reference: Option<String>,
    ) {
        if let Err(wait) = self.limit(false) {
            return self.rate_limited(wait, "join", reference, &room);
        }
        if self.access(&room) == Access::Denied {
            return self.error(
                ErrorCode::Forbidden,
                "your token does not allow reading this room".into(),
                reference,
                Some(&room),
            );
        }
        match history::page(&self.node, &room, before, limit).await {
            Ok((position, messages, more)) => self.reply(&ServerEvent::History {
                room: &room,
                epoch: position.epoch,
                messages: &messages,
                more,
                reference: reference.as_deref(),
            }),
            Err(BackplaneError::UnknownMessage) => self.error(
                ErrorCode::UnknownMessage,
                "no message with that id in the room's history".into(),
                reference,
                Some(&room),
            ),
            Err(error) => self.error(
                ErrorCode::BackplaneUnavailable,
                format!("could not read history: {error}"),
                reference,
                Some(&room),
            ),
        }
    }

    pub(super) fn leave(&mut self, room: RoomName, reference: Option<String>) {
        if let Err(wait) = self.limit(false) {
            return self.rate_limited(wait, "join", reference, &room);
        }
        if !self.rooms.remove(&room) {
            return self.error(
                ErrorCode::NotJoined,
                "not a member of this room".into(),
                reference,
                Some(&room),
            );
        }
        self.stop_typing(&room);
        self.presence_exit(&room);
        // Stop membership first, then reply: no message of the room comes after `left`.
        self.node.hub.remove(&room, self.conn);
        self.reply(&ServerEvent::Left {
            room: &room,
            reference: reference.as_deref(),
            reason: None,
        });
        self.node.subscriptions.release(&room);
    }

    pub(super) async fn send(
        &mut self,
        room: RoomName,
        body: String,
        client_msg_id: Option<String>,
        mentions: Vec<String>,
        reference: Option<String>,
    ) {
        self.node.metrics.messages_received.inc();
        if let Err(wait) = self.limit(true) {
            return self.rate_limited(wait, "send", reference, &room);
        }
        if !self.in_room(&room, "sending to it", &reference) || !self.may_post(&room, &reference) {
            return;
        }
        if body.is_empty() {
            return self.error(
                ErrorCode::EmptyBody,
                "message body is empty".into(),
                reference,
                Some(&room),
            );
        }
        let max = self.node.config.max_body_bytes;
        if body.len() > max {
            let message = format!("message body is {} bytes; the limit is {max}", body.len());
            return self.error(ErrorCode::BodyTooLarge, message, reference, Some(&room));
        }
        let from = self
            .authed
            .as_ref()
            .expect("send needs authentication")
            .identity
            .user
            .clone();
        let (id, ts) = (Uuid::now_v7(), unix_millis());
        // A retry with the same client id gets this acceptance back: "<id>:<ts>".
        let dedup = client_msg_id.map(|client_id| Dedup {
            key: format!("{}:{}:{client_id}", from.id.len(), from.id),
            reply: Bytes::from(format!("{id}:{ts}")),
        });
        let message = ChatMessage {
            id,
            room,
            from,
            ts,
            body,
            seq: 0,
            mentions,
            edited: None,
            deleted: false,
            reactions: Vec::new(),
        };
        let room = message.room.clone();
        // A direct message is also noticed to both users' other connections,
        // and a message mentioning users to theirs.
        let noticed = room.direct_members().is_some() || !message.mentions.is_empty();
        let mut noticed = noticed.then(|| message.clone());
        let outgoing = Outgoing {
            payload: Envelope::message(self.node.config.node_id.as_str(), message).encode(),
            id: id.to_string(),
            ts,
            sender: self.user_id().to_owned(),
            dedup,
        };
        let started = std::time::Instant::now();
        let published = self.node.backplane.publish(&room, outgoing).await;
        self.node
            .metrics
            .publish_latency
            .observe(started.elapsed().as_secs_f64());
        match published {
            Ok(published) => {
                // The message ends the sender's typing: members clear the indicator
                // when it arrives, and the next keystroke's start is relayed at once.
                self.typing.remove(&room);
                let (id, ts, seq, duplicate) = match published {
                    Published::New(position) => {
                        self.node.metrics.messages_published.inc();
                        if let Some(mut message) = noticed.take() {
                            message.seq = position.seq;
                            self.notice_message(&message).await;
                        }
                        (id, ts, position.seq, false)
                    }
                    Published::Duplicate { seq, reply, .. } => {
                        self.node.metrics.duplicate_sends.inc();
                        let (id, ts) = original_acceptance(&reply).unwrap_or((id, ts));
                        (id, ts, seq, true)
                    }
                };
                self.reply(&ServerEvent::Sent {
                    room: &room,
                    id,
                    ts,
                    seq,
                    duplicate,
                    reference: reference.as_deref(),
                });
            }
            Err(error) => {
                let message = format!("message not delivered: {error}");
                self.error(
                    ErrorCode::BackplaneUnavailable,
                    message,
                    reference,
                    Some(&room),
                );
            }
        }
    }
}

/// Parses the stored acceptance of an idempotent send: `<id>:<ts>`.
fn original_acceptance(reply: &[u8]) -> Option<(Uuid, u64)> {
    let (id, ts) = std::str::from_utf8(reply).ok()?.split_once(':')?;
    Some((Uuid::parse_str(id).ok()?, ts.parse().ok()?))
}

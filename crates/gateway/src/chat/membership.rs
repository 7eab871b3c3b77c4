//! The rooms one connection is in, and the one way into and out of each.
//!
//! Joining is, in order: hold the room's subscription, become a member in
//! catch-up mode, read the history (again if the room moved to a newer epoch
//! meanwhile), queue `joined` and the history with the live messages kept
//! aside, count the user in (presence). Leaving, whatever the reason (a
//! `leave`, a refreshed token that lost the room, the connection closing), is
//! the reverse: end the user's typing, count them out, stop the membership,
//! give the subscription back. The connection's own user channel (for its
//! notices) is held the same way.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use chorus_backplane::BackplaneError;
use chorus_protocol::{Encoding, Resume, RoomName, Sender, ServerEvent};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{
    auth::Grants,
    chat::{
        Chat,
        frames::encode,
        hub::{ConnId, Member, StaleRead},
        outbox::Outbox,
        typing,
        typing::Typing,
    },
};

/// Reads of a join's history tried before giving up (each retry follows a newer epoch).
const JOIN_READ_ATTEMPTS: usize = 3;

/// Longest a new connection waits for its user's channel before going on without it.
const PERSONAL_SUBSCRIBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a join did not happen (nothing of it is left behind).
#[derive(Debug, thiserror::Error)]
pub enum JoinFailed {
    /// The backplane could not subscribe or read the history.
    #[error("could not join: {0}")]
    Backplane(#[from] BackplaneError),
    /// The room's history kept moving to newer epochs while it was read.
    #[error("could not join: the room's history changed during the join; retry")]
    HistoryMoved,
}

/// What a join asks for.
pub struct JoinRequest<'a> {
    /// Resume after this point instead of getting the latest messages.
    pub resume: Option<Resume>,
    /// How many recent messages a fresh join gets.
    pub history: Option<u32>,
    /// The command's `ref`, for `joined`.
    pub reference: Option<&'a str>,
}

/// One connection's rooms.
pub struct Memberships {
    /// The node.
    chat: Arc<Chat>,
    /// The connection.
    conn: ConnId,
    /// The connection's id as its `welcome` named it (for the server API's listings).
    public_id: Uuid,
    /// Where its frames go.
    outbox: Arc<Outbox>,
    /// How it wants events encoded.
    encoding: Encoding,
    /// Joined rooms (at most `max_rooms`), with this connection's typing in each.
    rooms: HashMap<RoomName, Typing>,
    /// The shard room of the user's own channel, once held.
    personal: Option<RoomName>,
}

impl Memberships {
    /// No rooms yet.
    pub fn new(
        chat: Arc<Chat>,
        (conn, public_id): (ConnId, Uuid),
        outbox: Arc<Outbox>,
        encoding: Encoding,
    ) -> Self {
        Self {
            chat,
            conn,
            public_id,
            outbox,
            encoding,
            rooms: HashMap::new(),
            personal: None,
        }
    }

    /// The connection's id.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Whether the connection is in `room`.
    pub fn contains(&self, room: &RoomName) -> bool {
        self.rooms.contains_key(room)
    }

    /// How many rooms the connection is in.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// The rooms the connection is in.
    pub fn rooms(&self) -> impl Iterator<Item = &RoomName> {
        self.rooms.keys()
    }

    /// The connection's typing in `room`, if it is in it.
    pub fn typing(&mut self, room: &RoomName) -> Option<&mut Typing> {
        self.rooms.get_mut(room)
    }

    /// Joins `room` as `user`: on `Ok`, `joined` and the history are queued
    /// and the room's messages follow; on `Err`, nothing of the join is left.
    pub async fn join(
        &mut self,
        room: RoomName,
        user: &Sender,
        request: JoinRequest<'_>,
    ) -> Result<(), JoinFailed> {
        let chat = self.chat.clone();
        chat.subscriptions.acquire(&room).await?;
        // Become a member in catch-up mode first, then read history: every message
        // is then either in the history read or kept aside for this member.
        let member = Member::joining(self.outbox.clone(), self.encoding);
        chat.hub.begin_join(&room, self.conn, member);
        let joined = self.catch_up(&room, &user.id, &request).await;
        if let Err(failed) = joined {
            chat.hub.remove(&room, self.conn);
            chat.subscriptions.release(&room);
            return Err(failed);
        }
        // Counted here; the presence task adds the entry (a join never waits for it).
        self.chat.presence.enter(&room, user);
        self.rooms.insert(room, Typing::default());
        Ok(())
    }

    /// Reads the join's history and hands it to the hub with `joined`.
    async fn catch_up(
        &self,
        room: &RoomName,
        user: &str,
        request: &JoinRequest<'_>,
    ) -> Result<(), JoinFailed> {
        let history = self.chat.history();
        for _ in 0..JOIN_READ_ATTEMPTS {
            let catchup = history
                .for_join(room, user, request.resume, request.history)
                .await?;
            let head = catchup.position;
            let marker = catchup.reader.marker;
            let read_seq = marker.filter(|m| m.epoch == head.epoch).map(|m| m.seq);
            let mut frames = Vec::with_capacity(catchup.items.len() + 1);
            frames.push(self.frame(&ServerEvent::Joined {
                room,
                epoch: head.epoch,
                seq: head.seq,
                recovered: catchup.recovered,
                read_seq,
                unread: catchup.reader.unread,
                reference: request.reference,
            }));
            frames.extend(catchup.items.iter().map(|item| self.frame(&item.event())));
            match self.chat.hub.finish_join(room, self.conn, head, frames) {
                Ok(()) => return Ok(()),
                Err(StaleRead) => continue,
            }
        }
        Err(JoinFailed::HistoryMoved)
    }

    fn frame(&self, event: &ServerEvent<'_>) -> Bytes {
        encode(self.encoding, event)
    }

    /// Leaves `room` (as `user`): typing ends, presence counts the user out,
    /// no message of the room is queued after this returns. `false` if the
    /// connection was not in it.
    pub fn leave(&mut self, room: &RoomName, user: &Sender) -> bool {
        let Some(mut typing) = self.rooms.remove(room) else {
            return false;
        };
        if typing.stop(Instant::now()) {
            self.relay_typing(room, user, false);
        }
        // The user's last local connection here ends their presence (not
        // awaited: a departures task ends it, room by room).
        self.chat.presence.exit(room, &user.id);
        self.chat.hub.remove(room, self.conn);
        self.chat.subscriptions.release(room);
        true
    }

    /// Leaves every room and the user's channel (the connection is closing).
    pub fn leave_all(&mut self, user: Option<&Sender>) {
        if let Some(room) = self.personal.take() {
            if let Some(user) = user {
                self.chat.notices.remove(&user.id, self.conn);
            }
            self.chat.subscriptions.release(&room);
        }
        let rooms: Vec<RoomName> = self.rooms.keys().cloned().collect();
        for room in rooms {
            match user {
                Some(user) => {
                    self.leave(&room, user);
                }
                None => {
                    self.rooms.remove(&room);
                    self.chat.hub.remove(&room, self.conn);
                    self.chat.subscriptions.release(&room);
                }
            }
        }
    }

    /// Relays that `user` started (`active`) or stopped typing in `room`.
    /// Awaited for a start (it keeps its place among the connection's
    /// commands); best effort: a lost signal only lapses on the clients.
    pub async fn typing_signal(&self, room: &RoomName, user: &Sender, active: bool) {
        let payload = typing::signal(&self.chat.config.node_id, room, user, active);
        if let Err(error) = self.chat.backplane.pubsub.signal(room, payload).await {
            tracing::debug!(%error, %room, "typing signal not relayed");
        }
    }

    /// [`Self::typing_signal`] without waiting (from a leave or a close).
    fn relay_typing(&self, room: &RoomName, user: &Sender, active: bool) {
        let payload = typing::signal(&self.chat.config.node_id, room, user, active);
        let (pubsub, room) = (self.chat.backplane.pubsub.clone(), room.clone());
        tokio::spawn(async move {
            if let Err(error) = pubsub.signal(&room, payload).await {
                tracing::debug!(%error, %room, "typing signal not relayed");
            }
        });
    }

    /// The user's first local connection in `room` makes them present
    /// (awaited, so the join precedes a later leave).
    /// Holds the user's own channel for this connection (once, after
    /// authentication), so notices to the user reach it.
    pub async fn enter_personal(&mut self, user: &str, grants: Arc<Grants>) {
        if self.personal.is_some() {
            return;
        }
        let room = RoomName::user_shard(user);
        // Bounded: a connection never waits long for its notices channel.
        let acquired = tokio::time::timeout(
            PERSONAL_SUBSCRIBE_TIMEOUT,
            self.chat.subscriptions.acquire(&room),
        )
        .await;
        match acquired {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                // Rooms still work; only notices to this user miss this connection.
                tracing::warn!(%error, "could not subscribe to the user's channel");
                return;
            }
            Err(_) => {
                // The owner gives back the reference of an acquirer that went away.
                tracing::warn!("subscribing to the user's channel timed out");
                return;
            }
        }
        let delivery = (self.outbox.clone(), self.encoding);
        self.chat
            .notices
            .add(user, (self.conn, self.public_id), delivery, grants);
        self.personal = Some(room);
    }

    /// The connection's token was refreshed: what it grants now.
    pub fn update_grants(&self, user: &str, grants: Arc<Grants>) {
        self.chat.notices.update_grants(user, self.conn, grants);
    }
}

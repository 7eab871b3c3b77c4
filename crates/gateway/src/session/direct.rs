//! A user's own channel and direct conversations.
//!
//! Every authenticated connection registers with the hub under its user and
//! holds a subscription to its user's shard room (`RoomName::user_shard`), so
//! a notice published there for the user reaches all of the user's
//! connections on every node.
//! `dm` joins the two-person room and tells both users; each message in a
//! direct room is also noticed to both users, for their connections that have
//! not joined it.

use chorus_protocol::{ChatMessage, Envelope, ErrorCode, NoticeKind, RoomName, Sender, UserNotice};

use super::Session;

/// Longest a new connection waits for its user's channel before going on without it.
const PERSONAL_SUBSCRIBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Session {
    /// Joins this connection to its user's own room (once, after authentication).
    pub(super) async fn enter_personal(&mut self) {
        if self.personal.is_some() {
            return;
        }
        let Some(authed) = &self.authed else {
            return;
        };
        let user = authed.identity.user.id.clone();
        let grants = authed.identity.grants.clone();
        let room = RoomName::user_shard(&user);
        // Bounded: a connection never waits long for its notices channel.
        let acquired = tokio::time::timeout(
            PERSONAL_SUBSCRIBE_TIMEOUT,
            self.node.subscriptions.acquire(&room),
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
        self.node.hub.add_user_connection(
            &user,
            self.conn,
            self.outbox.clone(),
            self.encoding,
            grants,
        );
        self.personal = Some(room);
    }

    /// Leaves the user's own room (the connection is closing).
    pub(super) fn leave_personal(&mut self) {
        if let Some(room) = self.personal.take() {
            if let Some(authed) = &self.authed {
                let user = &authed.identity.user.id;
                self.node.hub.remove_user_connection(user, self.conn);
            }
            self.node.subscriptions.release(&room);
        }
    }

    pub(super) async fn direct(&mut self, other: String, reference: Option<String>) {
        let Some(me) = self.authed.as_ref().map(|a| a.identity.user.clone()) else {
            return;
        };
        let Some(room) = RoomName::direct(&me.id, &other) else {
            return self.error(
                ErrorCode::InvalidCommand,
                "a direct conversation needs another user's id".into(),
                reference,
                None,
            );
        };
        if self.rooms.contains(&room) {
            return self.error(
                ErrorCode::AlreadyJoined,
                "already in this conversation".into(),
                reference,
                Some(&room),
            );
        }
        self.join(room.clone(), None, None, reference).await;
        if self.rooms.contains(&room) {
            self.notice_both(&room, &me, &other, NoticeKind::DmStarted)
                .await;
        }
        // Otherwise the join answered with its error.
    }

    /// After a message in a direct room: tells both users' connections that have
    /// not joined it.
    pub(super) async fn notice_direct_message(&self, message: &ChatMessage) {
        let Some((a, b)) = message.room.direct_members() else {
            return;
        };
        let other = if a == message.from.id { b } else { a };
        let kind = NoticeKind::Message(message.clone());
        self.notice_both(&message.room, &message.from, other, kind)
            .await;
    }

    /// After a stored message: a direct one is noticed to both users'
    /// connections outside the room, and each mentioned user gets a `mention`
    /// (their nodes deliver it only where their token may read the room).
    pub(super) async fn notice_message(&self, message: &ChatMessage) {
        let direct = message.room.direct_members();
        if direct.is_some() {
            self.notice_direct_message(message).await;
        }
        let node = &self.node.config.node_id;
        let notices = message
            .mentions
            .iter()
            .filter(|user| **user != message.from.id)
            .filter(|user| direct.is_none_or(|(a, b)| *user != a && *user != b))
            .map(|user| {
                let kind = NoticeKind::Mention(message.clone());
                let payload = notice_payload(node, user, &message.room, &message.from, kind);
                self.notice_user(user, &message.room, payload)
            });
        futures_util::future::join_all(notices).await;
    }

    async fn notice_both(&self, room: &RoomName, me: &Sender, other: &str, kind: NoticeKind) {
        for user in [me.id.as_str(), other] {
            let payload = notice_payload(&self.node.config.node_id, user, room, me, kind.clone());
            self.notice_user(user, room, payload).await;
        }
    }

    /// Tells every connection of this connection's user (a read marker, a draft).
    pub(super) async fn notice_self(&self, room: &RoomName, kind: NoticeKind) {
        let Some(me) = self.authed.as_ref().map(|a| &a.identity.user) else {
            return;
        };
        let payload = notice_payload(&self.node.config.node_id, &me.id, room, me, kind);
        self.notice_user(&me.id, room, payload).await;
    }

    async fn notice_user(&self, user: &str, room: &RoomName, payload: bytes::Bytes) {
        let shard = RoomName::user_shard(user);
        if let Err(error) = self.node.backplane.signal(&shard, payload).await {
            tracing::debug!(%error, %room, "notice not relayed");
        }
    }
}

fn notice_payload(
    node: &str,
    to: &str,
    room: &RoomName,
    by: &Sender,
    kind: NoticeKind,
) -> bytes::Bytes {
    let notice = UserNotice {
        to: to.to_owned(),
        room: room.clone(),
        by: by.clone(),
        kind,
    };
    Envelope::notice(node, notice).encode()
}

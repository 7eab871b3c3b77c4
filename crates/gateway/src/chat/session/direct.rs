//! `dm`: joins the two-person room and tells both users (each message in a
//! direct room is noticed to both users too; see `chat::publish`).

use chorus_protocol::{ErrorCode, NoticeKind, RoomName, commands};

use super::{Handled, Refusal, Session};
use crate::chat::notices;

impl Session {
    pub(super) async fn direct(&mut self, dm: commands::Dm, reference: Option<&str>) -> Handled {
        let me = self.user().clone();
        let Some(room) = RoomName::direct(&me.id, &dm.user) else {
            let message = "a direct conversation needs another user's id";
            return Err(Refusal::new(ErrorCode::InvalidCommand, message));
        };
        if self.memberships.contains(&room) {
            let message = "already in this conversation";
            return Err(Refusal::new(ErrorCode::AlreadyJoined, message).in_room(&room));
        }
        let join = commands::Join {
            room: room.clone(),
            resume: None,
            history: None,
        };
        self.join(join, reference)
            .await
            .map_err(|refusal| refusal.in_room(&room))?;
        let node = self.chat.config().node_id.as_str();
        let pubsub = self.chat.backplane().pubsub.as_ref();
        for user in [me.id.as_str(), dm.user.as_str()] {
            notices::send(pubsub, node, user, (&room, &me), NoticeKind::DmStarted).await;
        }
        Ok(())
    }

    /// Tells every connection of this connection's user (a read marker, a draft).
    pub(super) async fn notice_self(&self, room: &RoomName, kind: NoticeKind) {
        let me = self.user();
        let node = self.chat.config().node_id.as_str();
        let pubsub = self.chat.backplane().pubsub.as_ref();
        notices::send(pubsub, node, &me.id, (room, me), kind).await;
    }
}

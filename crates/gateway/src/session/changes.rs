//! Edits, deletes and reactions: checked here (membership, posting rights,
//! text limits), then by the backplane against the message itself (it exists,
//! is not deleted, and is the user's own unless they moderate the room), which
//! stores the change in the room's order and relays it like a message.

use chorus_backplane::{
    Change, ChangeOp, ChangeRefusal, Changed, MAX_EMOJI_PER_MESSAGE, MAX_USERS_PER_EMOJI,
};
use chorus_protocol::{
    ChangeKind, Envelope, ErrorCode, MessageChange, RoomName, ServerEvent, Target,
};
use uuid::Uuid;

use super::{Session, unix_millis};

impl Session {
    /// `edit`, `delete`, `react` and `unreact`.
    pub(super) async fn change_message(
        &mut self,
        room: RoomName,
        target: Target,
        kind: ChangeKind,
        reference: Option<String>,
    ) {
        if let Err(wait) = self.limit(true) {
            return self.rate_limited(wait, "send", reference, &room);
        }
        if !self.in_room(&room, "changing its messages", &reference)
            || !self.may_post(&room, &reference)
        {
            return;
        }
        if let ChangeKind::Edit(body) = &kind {
            let max = self.node.config.max_body_bytes;
            if body.is_empty() {
                let message = "the new text is empty; delete the message instead".into();
                return self.error(ErrorCode::EmptyBody, message, reference, Some(&room));
            }
            if body.len() > max {
                let message = format!("message body is {} bytes; the limit is {max}", body.len());
                return self.error(ErrorCode::BodyTooLarge, message, reference, Some(&room));
            }
        }
        let by = self
            .authed
            .as_ref()
            .expect("changes need authentication")
            .identity
            .user
            .clone();
        let ts = unix_millis();
        let op = match &kind {
            ChangeKind::Edit(text) => ChangeOp::Edit(text.clone()),
            ChangeKind::Delete => ChangeOp::Delete,
            ChangeKind::React(emoji) => ChangeOp::React(emoji.clone()),
            ChangeKind::Unreact(emoji) => ChangeOp::Unreact(emoji.clone()),
        };
        let change = Change {
            target: target.seq,
            target_id: target.id.map(|id| id.to_string()),
            by: by.id.clone(),
            moderator: self.may_moderate(&room),
            op,
            payload: Envelope::change(
                self.node.config.node_id.as_str(),
                MessageChange {
                    room: room.clone(),
                    target: target.seq,
                    by,
                    ts,
                    kind,
                },
            )
            .encode(),
            id: Uuid::now_v7().to_string(),
            ts,
        };
        let seq = match self.node.backplane.change(&room, change).await {
            Ok(Changed::Applied(position)) => Some(position.seq),
            Ok(Changed::Unchanged) => None,
            Ok(Changed::Refused(why)) => {
                let (code, message) = refusal(why);
                return self.error(code, message, reference, Some(&room));
            }
            Err(error) => {
                let message = format!("change not made: {error}");
                let code = ErrorCode::BackplaneUnavailable;
                return self.error(code, message, reference, Some(&room));
            }
        };
        self.reply(&ServerEvent::Changed {
            room: &room,
            target: target.seq,
            seq,
            reference: reference.as_deref(),
        });
    }
}

/// The error a refused change gets.
fn refusal(why: ChangeRefusal) -> (ErrorCode, String) {
    match why {
        ChangeRefusal::UnknownMessage => (
            ErrorCode::UnknownMessage,
            "no message with that sequence number (and id) in the room's history".into(),
        ),
        ChangeRefusal::NotAMessage => (
            ErrorCode::UnknownMessage,
            "that sequence number is a change to a message, not a message".into(),
        ),
        ChangeRefusal::NotYours => (
            ErrorCode::NotYourMessage,
            "only its sender or a moderator of the room may edit or delete a message".into(),
        ),
        ChangeRefusal::Deleted => (ErrorCode::MessageDeleted, "the message was deleted".into()),
        ChangeRefusal::TooManyReactions => (
            ErrorCode::TooManyReactions,
            format!(
                "a message takes at most {MAX_EMOJI_PER_MESSAGE} different emoji, each from at most {MAX_USERS_PER_EMOJI} users"
            ),
        ),
    }
}

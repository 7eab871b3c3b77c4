//! Edits, deletes and reactions: checked here (membership, posting rights,
//! text limits), then by the backplane against the message itself (it exists,
//! is not deleted, and is the user's own unless they moderate the room), which
//! stores the change in the room's order and relays it like a message.

use chorus_backplane::{ChangeRefusal, Changed, MAX_EMOJI_PER_MESSAGE, MAX_USERS_PER_EMOJI};
use chorus_protocol::{ChangeKind, ErrorCode, RoomName, ServerEvent, Target, commands};

use super::{Handled, Limited, Refusal, Session};
use crate::chat::change::Edit;

impl Session {
    pub(super) async fn edit(&mut self, edit: commands::Edit, reference: Option<&str>) -> Handled {
        self.may_change(&edit.room)?;
        let empty = "the new text is empty; delete the message instead";
        self.check_text(&edit.body, "message body", Some(empty))?;
        let kind = ChangeKind::Edit(edit.body);
        self.change_message(edit.room, edit.target, kind, reference)
            .await
    }

    pub(super) async fn delete(
        &mut self,
        delete: commands::Delete,
        reference: Option<&str>,
    ) -> Handled {
        self.may_change(&delete.room)?;
        self.change_message(delete.room, delete.target, ChangeKind::Delete, reference)
            .await
    }

    pub(super) async fn react(
        &mut self,
        react: commands::React,
        reference: Option<&str>,
    ) -> Handled {
        self.may_change(&react.room)?;
        let kind = if react.add {
            ChangeKind::React(react.emoji)
        } else {
            ChangeKind::Unreact(react.emoji)
        };
        self.change_message(react.room, react.target, kind, reference)
            .await
    }

    /// A change costs a send; the connection must be in the room and may post to it.
    fn may_change(&mut self, room: &RoomName) -> Handled {
        self.take(Limited::Send)?;
        self.in_room(room, "changing its messages")?;
        self.may_post(room)
    }

    async fn change_message(
        &mut self,
        room: RoomName,
        target: Target,
        kind: ChangeKind,
        reference: Option<&str>,
    ) -> Handled {
        let edit = Edit {
            room: room.clone(),
            target,
            kind,
            by: self.user().clone(),
            moderator: self.may_moderate(&room),
        };
        let target = edit.target;
        let seq = match self.chat.change(edit).await? {
            Changed::Applied(position) => Some(position.seq),
            Changed::Unchanged => None,
            Changed::Refused(why) => return Err(refusal(why)),
        };
        self.reply(&ServerEvent::Changed {
            room: &room,
            target: target.seq,
            seq,
            reference,
        });
        Ok(())
    }
}

/// The error a refused change gets.
fn refusal(why: ChangeRefusal) -> Refusal {
    match why {
        ChangeRefusal::UnknownMessage => Refusal::new(
            ErrorCode::UnknownMessage,
            "no message with that sequence number (and id) in the room's history",
        ),
        ChangeRefusal::NotAMessage => Refusal::new(
            ErrorCode::UnknownMessage,
            "that sequence number is a change to a message, not a message",
        ),
        ChangeRefusal::NotYours => Refusal::new(
            ErrorCode::NotYourMessage,
            "only its sender or a moderator of the room may edit or delete a message",
        ),
        ChangeRefusal::Deleted => {
            Refusal::new(ErrorCode::MessageDeleted, "the message was deleted")
        }
        ChangeRefusal::TooManyReactions => Refusal::new(
            ErrorCode::TooManyReactions,
            format!(
                "a message takes at most {MAX_EMOJI_PER_MESSAGE} different emoji, each from at most {MAX_USERS_PER_EMOJI} users"
            ),
        ),
    }
}

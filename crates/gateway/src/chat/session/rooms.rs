//! Room commands of a session: join (with history or resume), leave, send and
//! history.

use chorus_protocol::{Attachment, ErrorCode, RoomName, ServerEvent, commands};
use uuid::Uuid;

use super::{Access, Handled, Limited, Refusal, Session};
use crate::chat::{
    attachments::AttachmentError,
    membership::JoinRequest,
    publish::Post,
    publish_hook::{Question, Verdict},
};

impl Session {
    pub(super) async fn join(&mut self, join: commands::Join, reference: Option<&str>) -> Handled {
        self.take(Limited::Join)?;
        let room = join.room;
        let config = self.chat.config();
        config
            .room_rules
            .check(room.as_str())
            .map_err(|message| Refusal::new(ErrorCode::InvalidRoom, message))?;
        if self.access(&room) == Access::Denied {
            let message = "your token does not allow joining this room";
            return Err(Refusal::new(ErrorCode::Forbidden, message));
        }
        if self.memberships.contains(&room) {
            let message = "already a member of this room";
            return Err(Refusal::new(ErrorCode::AlreadyJoined, message));
        }
        if self.memberships.len() >= config.max_rooms {
            let message = format!("a connection may be in at most {} rooms", config.max_rooms);
            return Err(Refusal::new(ErrorCode::TooManyRooms, message));
        }
        let request = JoinRequest {
            resume: join.resume,
            history: join.history,
            reference,
        };
        let user = self.user().clone();
        self.memberships.join(room, &user, request).await?;
        Ok(())
    }

    pub(super) async fn history(
        &mut self,
        history: commands::History,
        reference: Option<&str>,
    ) -> Handled {
        self.take(Limited::Join)?;
        let room = history.room;
        if self.access(&room) == Access::Denied {
            let message = "your token does not allow reading this room";
            return Err(Refusal::new(ErrorCode::Forbidden, message));
        }
        let (position, messages, more) = self
            .chat
            .history()
            .page(&room, history.before, history.limit)
            .await?;
        self.reply(&ServerEvent::History {
            room: &room,
            epoch: position.epoch,
            messages: &messages,
            more,
            reference,
        });
        Ok(())
    }

    pub(super) fn leave(&mut self, leave: commands::Leave, reference: Option<&str>) -> Handled {
        self.take(Limited::Join)?;
        let user = self.user().clone();
        if !self.memberships.leave(&leave.room, &user) {
            let message = "not a member of this room";
            return Err(Refusal::new(ErrorCode::NotJoined, message));
        }
        // Membership ended first: no message of the room comes after `left`.
        self.reply(&ServerEvent::Left {
            room: &leave.room,
            reference,
            reason: None,
        });
        Ok(())
    }

    pub(super) async fn send(&mut self, send: commands::Send, reference: Option<&str>) -> Handled {
        self.chat.metrics().messages_received.inc();
        self.take(Limited::Send)?;
        let room = send.room;
        self.in_room(&room, "sending to it")?;
        self.may_post(&room)?;
        // A message of files alone may have an empty body.
        let empty = send
            .attachments
            .is_empty()
            .then_some("message body is empty");
        self.check_text(&send.body, "message body", empty)?;
        let attachments = self.attachments(&room, &send.attachments).await?;
        let mut post = Post {
            room: room.clone(),
            from: self.user().clone(),
            body: send.body,
            client_msg_id: send.client_msg_id,
            mentions: send.mentions,
            attachments,
        };
        if let Some(hook) = &self.chat.publish_hook {
            let question = Question {
                room: &post.room,
                from: &post.from,
                body: &post.body,
                client_msg_id: post.client_msg_id.as_deref(),
                mentions: &post.mentions,
            };
            match hook.ask(question, self.chat.config().max_body_bytes).await {
                Verdict::Allow => {}
                Verdict::Replace(body) => post.body = body,
                Verdict::Reject(reason) => return Err(Refusal::new(ErrorCode::Rejected, reason)),
                Verdict::Unavailable => {
                    return Err(Refusal::new(
                        ErrorCode::HookUnavailable,
                        "the message could not be checked; nothing was stored; retry later",
                    ));
                }
            }
        }
        let accepted = self.chat.publish(post).await?;
        // The message ends the sender's typing: members clear the indicator
        // when it arrives, and the next keystroke's start is relayed at once.
        if let Some(typing) = self.memberships.typing(&room) {
            typing.forget();
        }
        self.reply(&ServerEvent::Sent {
            room: &room,
            id: accepted.id,
            ts: accepted.ts,
            seq: accepted.seq,
            duplicate: accepted.duplicate,
            reference,
        });
        Ok(())
    }

    /// The descriptions of the files a `send` attaches: each uploaded by
    /// this user to `room` (`unknown_attachment` otherwise).
    async fn attachments(&self, room: &RoomName, ids: &[Uuid]) -> Result<Vec<Attachment>, Refusal> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let unavailable = || {
            Refusal::new(
                ErrorCode::StoreUnavailable,
                "the file store did not answer; nothing was stored; retry",
            )
        };
        let source = self.chat.attachments.get().ok_or_else(unavailable)?;
        source
            .describe(&self.user().id, room, ids)
            .await
            .map_err(|error| match error {
                AttachmentError::Unknown(_) => {
                    Refusal::new(ErrorCode::UnknownAttachment, error.to_string())
                }
                AttachmentError::Unavailable => unavailable(),
            })
    }
}

//! Edits, deletes and reactions as the backplane stores them: a change in
//! the room's order, checked against the message itself (it exists, is not
//! deleted, and is the author's own unless a moderator changes it), relayed
//! like a message. Used by a client's commands and by the server API.

use chorus_backplane::{BackplaneError, Change, ChangeOp, Changed, Read};
use chorus_protocol::{
    ChangeKind, Envelope, EnvelopeBody, MessageChange, RoomName, Sender, Target,
};
use uuid::Uuid;

use super::{Chat, publish::unix_millis};

/// One change to one message.
pub struct Edit {
    /// The room of the message.
    pub room: RoomName,
    /// The message (by `seq`, and its id when the client gave it).
    pub target: Target,
    /// What changes.
    pub kind: ChangeKind,
    /// Who changes it.
    pub by: Sender,
    /// Whether `by` may change other users' messages.
    pub moderator: bool,
}

impl Chat {
    /// Stores and relays `edit` in the room's order.
    pub async fn change(&self, edit: Edit) -> Result<Changed, BackplaneError> {
        let ts = unix_millis();
        let id = Uuid::now_v7().to_string();
        // For the webhook event, when one is wanted.
        let queued = self.config.webhooks.is_some().then(|| {
            (
                edit.room.clone(),
                edit.target.seq,
                edit.kind.clone(),
                edit.by.clone(),
            )
        });
        let deleting = matches!(edit.kind, ChangeKind::Delete);
        let op = match &edit.kind {
            ChangeKind::Edit(text) => ChangeOp::Edit(text.clone()),
            ChangeKind::Delete => ChangeOp::Delete,
            ChangeKind::React(emoji) => ChangeOp::React(emoji.clone()),
            ChangeKind::Unreact(emoji) => ChangeOp::Unreact(emoji.clone()),
        };
        let change = Change {
            target: edit.target.seq,
            target_id: edit.target.id.map(|id| id.to_string()),
            by: edit.by.id.clone(),
            moderator: edit.moderator,
            op,
            payload: Envelope::change(
                self.config.node_id.as_str(),
                MessageChange {
                    room: edit.room.clone(),
                    target: edit.target.seq,
                    by: edit.by,
                    ts,
                    kind: edit.kind,
                },
            )
            .encode(),
            id: id.clone(),
            ts,
        };
        let (room, target) = (edit.room.clone(), edit.target.seq);
        let changed = self.backplane.log.change(&edit.room, change).await?;
        if matches!(changed, Changed::Applied(_)) {
            self.note_for_archive(&room).await?;
            if deleting {
                self.discard_files(&room, target).await;
            }
        }
        if let (Changed::Applied(position), Some((room, target, kind, by))) = (&changed, queued) {
            let at = (&room, target, position.seq);
            self.change_event(at, (&kind, &by), (&id, ts)).await?;
        }
        Ok(changed)
    }

    /// Deletes the files of the message at `seq` in `room`, which was just
    /// deleted (best effort: a failure is logged; the files are no longer
    /// listed anywhere, and only readers of the room could fetch them).
    async fn discard_files(&self, room: &RoomName, seq: u64) {
        let Some(files) = self.attachments.get() else {
            return;
        };
        let read = Read::After {
            seq: seq.saturating_sub(1),
            limit: 1,
        };
        let page = match self.backplane.log.read(room, read).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, %room, seq, "a deleted message's files were not looked up");
                return;
            }
        };
        let ids: Vec<Uuid> = page
            .entries
            .iter()
            .filter(|entry| entry.seq == seq)
            .filter_map(|entry| match Envelope::decode(&entry.payload) {
                Ok(Envelope {
                    body: EnvelopeBody::Message(message),
                    ..
                }) => Some(message.attachments),
                _ => None,
            })
            .flatten()
            .map(|attachment| attachment.id)
            .collect();
        if !ids.is_empty() {
            files.discard(&ids).await;
        }
    }
}

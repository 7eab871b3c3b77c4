//! A room's log entry as the archive takes it: a message, or a change to one.

use chorus_protocol::{ChangeKind, ChatMessage, Envelope, EnvelopeBody, MessageChange, Reaction};

use crate::ArchiveError;

/// One entry of a room's log, at its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number in the room's epoch.
    pub seq: u64,
    /// What it is.
    pub body: EntryBody,
}

/// A message or a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBody {
    /// A message, as stored.
    Message(Box<ChatMessage>),
    /// An edit, delete or reaction of an earlier message.
    Change(MessageChange),
}

impl Entry {
    /// Decodes a log entry's envelope (as the backplane stores it).
    pub fn decode(seq: u64, payload: &[u8]) -> Result<Self, ArchiveError> {
        let bad = |why: String| ArchiveError::Entry { seq, why };
        let envelope = Envelope::decode(payload).map_err(|e| bad(e.to_string()))?;
        let body = match envelope.body {
            EnvelopeBody::Message(mut message) => {
                message.seq = seq;
                EntryBody::Message(Box::new(message))
            }
            EnvelopeBody::Change(change) => EntryBody::Change(change),
            _ => return Err(bad("neither a message nor a change".into())),
        };
        Ok(Self { seq, body })
    }
}

/// Applies `change` to `message` as history shows it (docs/protocol.md,
/// "edit / delete", "react / unreact").
pub fn apply(message: &mut ChatMessage, change: &MessageChange) {
    if message.deleted {
        return;
    }
    match &change.kind {
        ChangeKind::Edit(body) => {
            message.body.clone_from(body);
            message.edited = Some(change.ts);
        }
        ChangeKind::Delete => {
            message.deleted = true;
            message.body.clear();
            message.mentions.clear();
            message.attachments.clear();
            message.reactions.clear();
        }
        ChangeKind::React(emoji) => {
            let user = &change.by.id;
            match message.reactions.iter_mut().find(|r| &r.emoji == emoji) {
                Some(reaction) if !reaction.users.contains(user) => {
                    reaction.users.push(user.clone());
                    reaction.count = reaction.users.len();
                }
                Some(_) => {}
                None => message.reactions.push(Reaction {
                    emoji: emoji.clone(),
                    count: 1,
                    users: vec![user.clone()],
                }),
            }
        }
        ChangeKind::Unreact(emoji) => {
            if let Some(reaction) = message.reactions.iter_mut().find(|r| &r.emoji == emoji) {
                reaction.users.retain(|u| u != &change.by.id);
                reaction.count = reaction.users.len();
            }
            message.reactions.retain(|r| r.count > 0);
        }
    }
}

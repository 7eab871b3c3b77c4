//! Changes to stored messages: edits, deletes and reactions.
//!
//! A change is checked against the message it targets (it must be a message
//! of the room's history, not deleted, and for an edit or delete the changer's
//! own unless they moderate), applied to the message's overlay (its current
//! text, deletion and reactions, which history reads return with the message)
//! and stored and relayed as the room's next entry, all in one atomic step.
//! Redis does this in `change.lua`; [`Overlay::apply`] is the same rule for the
//! in-process bus.

use bytes::Bytes;
use serde::Deserialize;

use crate::Position;

/// Most distinct emoji on one message.
pub const MAX_EMOJI_PER_MESSAGE: usize = 20;
/// Most users reacting with one emoji to one message.
pub const MAX_USERS_PER_EMOJI: usize = 1000;

/// A change to apply to a stored message.
#[derive(Debug, Clone)]
pub struct Change {
    /// The changed message's sequence number (in the room's current epoch).
    pub target: u64,
    /// The changed message's id, when the client named it: refused unless it matches.
    pub target_id: Option<String>,
    /// Who changes it (user id).
    pub by: String,
    /// Whether `by` may edit or delete anyone's message in the room.
    pub moderator: bool,
    /// What to do.
    pub op: ChangeOp,
    /// The change's envelope, stored and relayed like a message.
    pub payload: Bytes,
    /// The change's own id (history entries all have one).
    pub id: String,
    /// Acceptance time in milliseconds since the Unix epoch.
    pub ts: u64,
}

/// What a [`Change`] does to its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOp {
    /// Replace the text.
    Edit(String),
    /// Delete: the message becomes a tombstone.
    Delete,
    /// Add `by`'s reaction with this emoji.
    React(String),
    /// Take back `by`'s reaction with this emoji.
    Unreact(String),
}

impl ChangeOp {
    /// The op's name and argument as `change.lua` takes them.
    pub(crate) fn script_args(&self) -> (&'static str, &str) {
        match self {
            Self::Edit(text) => ("edit", text),
            Self::Delete => ("delete", ""),
            Self::React(emoji) => ("add", emoji),
            Self::Unreact(emoji) => ("remove", emoji),
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Applied, stored and relayed at this position.
    Applied(Position),
    /// Nothing to do (the reaction was already there, or not there): nothing stored.
    Unchanged,
    /// Refused: nothing stored.
    Refused(ChangeRefusal),
}

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRefusal {
    /// No such message in the room's history (or its id differs).
    UnknownMessage,
    /// The target is itself a change, not a message.
    NotAMessage,
    /// An edit or delete of someone else's message, without moderating.
    NotYours,
    /// The message was deleted.
    Deleted,
    /// Past [`MAX_EMOJI_PER_MESSAGE`] or [`MAX_USERS_PER_EMOJI`].
    TooManyReactions,
}

/// The current state of a changed message, returned with it by history reads
/// (stored by Redis as JSON with one-letter keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Overlay {
    /// The text after the last edit.
    #[serde(rename = "t", default)]
    pub body: Option<String>,
    /// When it was last edited (ms).
    #[serde(rename = "e", default)]
    pub edited: Option<u64>,
    /// When it was deleted (ms).
    #[serde(rename = "d", default)]
    pub deleted: Option<u64>,
    /// Reactions: emoji and who, in the order first added.
    #[serde(rename = "r", default)]
    pub reactions: Vec<(String, Vec<String>)>,
}

impl Overlay {
    /// Applies `op` by `by` at `ts` (the caller checked who may); `Ok(false)`
    /// when it changes nothing.
    pub fn apply(&mut self, by: &str, op: &ChangeOp, ts: u64) -> Result<bool, ChangeRefusal> {
        if self.deleted.is_some() {
            return Err(ChangeRefusal::Deleted);
        }
        match op {
            ChangeOp::Edit(text) => {
                self.body = Some(text.clone());
                self.edited = Some(ts);
            }
            ChangeOp::Delete => {
                *self = Self {
                    deleted: Some(ts),
                    ..Self::default()
                };
            }
            ChangeOp::React(emoji) => {
                let slot = match self.reactions.iter().position(|(e, _)| e == emoji) {
                    Some(slot) => slot,
                    None if self.reactions.len() >= MAX_EMOJI_PER_MESSAGE => {
                        return Err(ChangeRefusal::TooManyReactions);
                    }
                    None => {
                        self.reactions.push((emoji.clone(), Vec::new()));
                        self.reactions.len() - 1
                    }
                };
                let users = &mut self.reactions[slot].1;
                if users.iter().any(|u| u == by) {
                    return Ok(false);
                }
                if users.len() >= MAX_USERS_PER_EMOJI {
                    return Err(ChangeRefusal::TooManyReactions);
                }
                users.push(by.to_owned());
            }
            ChangeOp::Unreact(emoji) => {
                let Some(slot) = self.reactions.iter().position(|(e, _)| e == emoji) else {
                    return Ok(false);
                };
                let users = &mut self.reactions[slot].1;
                let Some(at) = users.iter().position(|u| u == by) else {
                    return Ok(false);
                };
                users.remove(at);
                if users.is_empty() {
                    self.reactions.remove(slot);
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_count_once_per_user_and_vanish_when_empty() {
        let mut overlay = Overlay::default();
        let thumbs = ChangeOp::React("👍".into());
        assert_eq!(overlay.apply("ann", &thumbs, 1), Ok(true));
        assert_eq!(overlay.apply("ann", &thumbs, 2), Ok(false));
        assert_eq!(overlay.apply("bob", &thumbs, 3), Ok(true));
        assert_eq!(
            overlay.reactions,
            vec![("👍".to_owned(), vec!["ann".to_owned(), "bob".to_owned()])]
        );
        let back = ChangeOp::Unreact("👍".into());
        assert_eq!(overlay.apply("ann", &back, 4), Ok(true));
        assert_eq!(overlay.apply("ann", &back, 5), Ok(false));
        assert_eq!(overlay.apply("bob", &back, 6), Ok(true));
        assert!(overlay.reactions.is_empty());
    }

    #[test]
    fn a_deleted_message_takes_no_more_changes() {
        let mut overlay = Overlay::default();
        overlay
            .apply("ann", &ChangeOp::Edit("v2".into()), 1)
            .unwrap();
        overlay.apply("ann", &ChangeOp::Delete, 2).unwrap();
        assert_eq!(overlay.body, None);
        assert_eq!(overlay.deleted, Some(2));
        assert_eq!(
            overlay.apply("ann", &ChangeOp::React("x".into()), 3),
            Err(ChangeRefusal::Deleted)
        );
    }

    #[test]
    fn emoji_per_message_are_bounded() {
        let mut overlay = Overlay::default();
        for n in 0..MAX_EMOJI_PER_MESSAGE {
            overlay
                .apply("ann", &ChangeOp::React(format!("e{n}")), 1)
                .unwrap();
        }
        assert_eq!(
            overlay.apply("ann", &ChangeOp::React("one-more".into()), 2),
            Err(ChangeRefusal::TooManyReactions)
        );
    }

    #[test]
    fn reads_the_json_that_change_lua_writes() {
        let overlay: Overlay =
            serde_json::from_str(r#"{"t":"v2","e":1764590000000,"r":[["👍",["ann","bob"]]]}"#)
                .unwrap();
        assert_eq!(overlay.body.as_deref(), Some("v2"));
        assert_eq!(overlay.edited, Some(1_764_590_000_000));
        assert_eq!(overlay.reactions[0].1.len(), 2);
        let empty: Overlay = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Overlay::default());
    }
}

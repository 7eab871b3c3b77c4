//! Node-to-node envelopes carried on the backplane (MessagePack, named fields so
//! that nodes of neighbouring versions can read each other during a rolling deploy).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{ChatMessage, RoomName, Sender};

/// Version of the envelope layout this build writes.
pub const ENVELOPE_VERSION: u8 = 1;

/// What travels on a room's channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Layout version; readers skip versions they do not know.
    pub v: u8,
    /// Id of the node that accepted the message (for metrics and debugging).
    pub origin: String,
    /// When the origin published it (µs since the Unix epoch; 0 from older nodes),
    /// for the end-to-end delivery latency.
    #[serde(default)]
    pub published_us: u64,
    /// The payload.
    pub body: EnvelopeBody,
}

/// The kinds of payload an envelope can carry; later kinds (edits, presence ...) are added here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeBody {
    /// A chat message.
    Message(ChatMessage),
    /// Someone started or stopped typing (an unstored signal, not a message).
    Typing(TypingSignal),
    /// Someone's read marker moved (the marker itself is stored apart).
    Receipt(ReceiptSignal),
    /// Something for one user's connections (on the user's own channel).
    Notice(UserNotice),
    /// A user's first connection came into a room, or the last one went.
    Presence(PresenceSignal),
    /// An edit, delete or reaction: numbered and stored like a message.
    Change(MessageChange),
    /// A user present in the room set their status (an unstored signal).
    Status(StatusSignal),
}

/// A change to a stored message, itself stored in the room's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageChange {
    /// The room.
    pub room: RoomName,
    /// Sequence number of the changed message (same epoch as the change).
    pub target: u64,
    /// Who changed it.
    pub by: Sender,
    /// When (ms since the Unix epoch).
    pub ts: u64,
    /// What changed.
    pub kind: ChangeKind,
}

impl MessageChange {
    /// The client event for this change, stored at `seq`.
    pub fn event(&self, seq: u64) -> crate::ServerEvent<'_> {
        use crate::ServerEvent;
        let (room, target, by, ts) = (&self.room, self.target, &self.by, self.ts);
        match &self.kind {
            ChangeKind::Edit(body) => ServerEvent::Edited {
                room,
                seq,
                target,
                body,
                by,
                ts,
            },
            ChangeKind::Delete => ServerEvent::Deleted {
                room,
                seq,
                target,
                by,
                ts,
            },
            ChangeKind::React(emoji) | ChangeKind::Unreact(emoji) => ServerEvent::Reaction {
                room,
                seq,
                target,
                emoji,
                user: by,
                action: if matches!(self.kind, ChangeKind::React(_)) {
                    "add"
                } else {
                    "remove"
                },
            },
        }
    }
}

/// What a [`MessageChange`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The text is now this.
    Edit(String),
    /// The message is gone (a tombstone stays).
    Delete,
    /// `by` added this emoji.
    React(String),
    /// `by` took this emoji back.
    Unreact(String),
}

/// A user's status as relayed to a room they are in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSignal {
    /// The room.
    pub room: RoomName,
    /// Whose status.
    pub user: Sender,
    /// `online` or `away`.
    pub status: String,
}

/// A presence change as relayed between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceSignal {
    /// The room.
    pub room: RoomName,
    /// Who.
    pub user: Sender,
    /// Came (true) or went (false).
    pub online: bool,
}

/// A notice on a user's own channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNotice {
    /// The user whose connections get it.
    pub to: String,
    /// The room it is about.
    pub room: RoomName,
    /// Who caused it.
    pub by: Sender,
    /// What happened.
    pub kind: NoticeKind,
}

/// What a [`UserNotice`] says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A direct conversation started.
    DmStarted,
    /// A message in a direct conversation (for connections not in the room).
    Message(ChatMessage),
    /// The user's read marker moved (for connections not in the room).
    Read(u64),
    /// The user's draft for the room changed (empty: cleared).
    Draft(String),
    /// The user was mentioned in this message (for connections not in the
    /// room that may read it).
    Mention(ChatMessage),
    /// The user set their status (`room` is unused).
    Status(String),
    /// Close every connection of the user with this close code (the server
    /// API's disconnect and revoke; `room` is unused).
    Disconnect(u16),
}

impl NoticeKind {
    /// Whether connections in the notice's room skip it (they hear it there).
    pub fn skips_members(&self) -> bool {
        matches!(self, Self::Message(_) | Self::Read(_) | Self::Mention(_))
    }
}

/// A read receipt as relayed between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptSignal {
    /// The room read.
    pub room: RoomName,
    /// Who read it.
    pub from: Sender,
    /// Up to this sequence number.
    pub seq: u64,
}

/// A typing indicator as relayed between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingSignal {
    /// The room typed in.
    pub room: RoomName,
    /// Who is typing.
    pub from: Sender,
    /// Started (true) or stopped (false).
    pub active: bool,
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Bytes that are not an envelope.
    #[error("undecodable envelope: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// An envelope from a newer layout.
    #[error("unsupported envelope version {0}")]
    Version(u8),
}

impl Envelope {
    /// Wraps a chat message from node `origin`.
    pub fn message(origin: impl Into<String>, message: ChatMessage) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            origin: origin.into(),
            published_us: unix_micros(),
            body: EnvelopeBody::Message(message),
        }
    }

    /// Wraps a typing signal from node `origin`.
    pub fn typing(origin: impl Into<String>, signal: TypingSignal) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            origin: origin.into(),
            published_us: unix_micros(),
            body: EnvelopeBody::Typing(signal),
        }
    }

    /// Wraps a read receipt from node `origin`.
    pub fn receipt(origin: impl Into<String>, signal: ReceiptSignal) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            origin: origin.into(),
            published_us: unix_micros(),
            body: EnvelopeBody::Receipt(signal),
        }
    }

    /// Wraps a notice for a user from node `origin`.
    pub fn notice(origin: impl Into<String>, notice: UserNotice) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            origin: origin.into(),
            published_us: unix_micros(),
            body: EnvelopeBody::Notice(notice),
        }
    }

    /// Wraps a presence change from node `origin`.
    pub fn presence(origin: impl Into<String>, signal: PresenceSignal) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            origin: origin.into(),
            published_us: unix_micros(),
            body: EnvelopeBody::Presence(signal),
        }
    }

    /// Wraps a change to a stored message from node `origin`.
    pub fn change(origin: impl Into<String>, change: MessageChange) -> Self {
        Self::wrap(origin, EnvelopeBody::Change(change))
    }

    /// Wraps a status signal from node `origin`.
    pub fn status(origin: impl Into<String>, signal: StatusSignal) -> Self {
        Self::wrap(origin, EnvelopeBody::Status(signal))
    }

    fn wrap(origin: impl Into<String>, body: EnvelopeBody) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            origin: origin.into(),
            published_us: unix_micros(),
            body,
        }
    }

    /// Encodes the envelope for the backplane.
    pub fn encode(&self) -> Bytes {
        Bytes::from(rmp_serde::to_vec_named(self).expect("envelope encoding is infallible"))
    }

    /// Decodes an envelope read from the backplane.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let envelope: Envelope = rmp_serde::from_slice(bytes)?;
        if envelope.v > ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(envelope.v));
        }
        Ok(envelope)
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope::message(
            "node-a",
            ChatMessage {
                id: uuid::Uuid::now_v7(),
                room: RoomName::parse("lobby").unwrap(),
                from: Sender {
                    id: "u1".into(),
                    name: Some("Ann".into()),
                    avatar: None,
                    kind: None,
                },
                ts: 1_700_000_000_000,
                body: "hello 👋".into(),
                seq: 0,
                epoch: None,
                mentions: Vec::new(),
                edited: None,
                deleted: false,
                reactions: Vec::new(),
                attachments: Vec::new(),
            },
        )
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn rejects_garbage_and_future_versions() {
        assert!(matches!(
            Envelope::decode(b"\xc1garbage"),
            Err(EnvelopeError::Decode(_))
        ));
        let mut e = sample();
        e.v = ENVELOPE_VERSION + 1;
        assert!(matches!(
            Envelope::decode(&e.encode()),
            Err(EnvelopeError::Version(_))
        ));
    }
}

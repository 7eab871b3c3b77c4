//! Commands a client sends. Decoding is two-step: a raw form with plain strings,
//! then validation into typed commands, so every failure maps to one [`ErrorCode`].

use serde::Deserialize;

use crate::{ErrorCode, RoomName};

/// Longest `ref` accepted, in bytes.
pub const MAX_REF_BYTES: usize = 64;

/// Longest token accepted in `auth` or `refresh`, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Longest client message id accepted in `send`, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;

/// Most users one `send` may mention.
pub const MAX_MENTIONS: usize = 20;

/// Longest user id accepted in `mentions` or `dm`, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Longest emoji (or short code) accepted in `react`, in bytes.
pub const MAX_EMOJI_BYTES: usize = 64;

/// A client's correlation tag, echoed on the reply or error for the command that carried it.
pub type Ref = Option<String>;

/// Where a client left a room: the room's epoch and the last sequence number it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The room's epoch when the client last saw it (see `joined`).
    pub epoch: u64,
    /// The last sequence number the client received in that epoch.
    pub after: u64,
}

/// Where a `history` page ends (exclusive): a sequence number or a message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Messages with a smaller sequence number.
    Seq(u64),
    /// Messages older than the one with this id.
    Id(uuid::Uuid),
}

impl Before {
    /// The page end from the `before` and `before_id` fields (of a command or a
    /// query string); `Err` says what is wrong with them.
    pub fn from_fields(
        before: Option<u64>,
        before_id: Option<&str>,
    ) -> Result<Option<Self>, &'static str> {
        match (before, before_id) {
            (None, None) => Ok(None),
            (Some(seq), None) => Ok(Some(Self::Seq(seq))),
            (None, Some(id)) => uuid::Uuid::parse_str(id)
                .map(|id| Some(Self::Id(id)))
                .map_err(|_| "before_id must be a message id (a UUID)"),
            (Some(_), Some(_)) => Err("give before or before_id, not both"),
        }
    }
}

/// The message an edit, delete or reaction is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Its sequence number in the room's current epoch.
    pub seq: u64,
    /// Its id, when the client gave it: the change is refused unless it matches
    /// (guards against a sequence number of an older epoch).
    pub id: Option<uuid::Uuid>,
}

/// A validated command from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Join a room: receive its recent history (or what was missed since `resume`),
    /// then its messages from now on.
    Join {
        room: RoomName,
        /// Resume after this point instead of getting the latest messages.
        resume: Option<Resume>,
        /// How many recent messages to get on a fresh join (the server clamps it).
        history: Option<u32>,
        reference: Ref,
    },
    /// Leave a room: no more of its messages after the `left` reply.
    Leave { room: RoomName, reference: Ref },
    /// Send a text message to a joined room.
    Send {
        room: RoomName,
        body: String,
        /// The client's own id for this message: a retry with the same id is not stored twice.
        client_msg_id: Option<String>,
        /// Users to notify (ids, distinct, at most [`MAX_MENTIONS`]).
        mentions: Vec<String>,
        reference: Ref,
    },
    /// Change the text of a message (your own, or any with a moderator grant).
    Edit {
        room: RoomName,
        target: Target,
        body: String,
        reference: Ref,
    },
    /// Delete a message (your own, or any with a moderator grant).
    Delete {
        room: RoomName,
        target: Target,
        reference: Ref,
    },
    /// Add (`add`) or take back an emoji reaction on a message.
    React {
        room: RoomName,
        target: Target,
        emoji: String,
        add: bool,
        reference: Ref,
    },
    /// Set your status as the rooms you are in see it: `away` or `online`.
    Status { away: bool, reference: Ref },
    /// Page backwards through a room's history.
    History {
        room: RoomName,
        /// Older than this; the newest messages when absent.
        before: Option<Before>,
        /// Page size (the server clamps it).
        limit: Option<u32>,
        reference: Ref,
    },
    /// The user started (`active`) or stopped typing in a joined room. Never
    /// stored; relayed to the room's other members at most once per throttle window.
    Typing {
        room: RoomName,
        active: bool,
        reference: Ref,
    },
    /// Mark a joined room read up to `seq` (of the room's current epoch).
    Read {
        room: RoomName,
        seq: u64,
        reference: Ref,
    },
    /// Ask for a joined room's read markers (who has read up to where).
    Receipts { room: RoomName, reference: Ref },
    /// Start (or reopen) the direct conversation with `user`: join its room and
    /// tell both users' connections.
    Dm { user: String, reference: Ref },
    /// Save (empty `text`: clear) this user's unsent text for a room, for
    /// their other devices.
    Draft {
        room: RoomName,
        text: String,
        reference: Ref,
    },
    /// Ask for this user's saved drafts.
    Drafts { reference: Ref },
    /// Ask who is in a joined room now.
    Presence { room: RoomName, reference: Ref },
    /// Application-level ping; answered with `pong`.
    Ping { reference: Ref },
    /// Authenticate with a token (the first frame, when no token came with the upgrade).
    Auth { token: String, reference: Ref },
    /// Replace the connection's token before it expires; same user only.
    Refresh { token: String, reference: Ref },
}

/// Why a frame did not become a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct CommandError {
    /// What the client should match on.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub detail: String,
    /// The command's `ref`, when it could be read, so the error can be correlated.
    pub reference: Ref,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawCommand {
    Join {
        room: String,
        #[serde(default)]
        epoch: Option<u64>,
        #[serde(default)]
        after: Option<u64>,
        #[serde(default)]
        history: Option<u32>,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Leave {
        room: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Send {
        room: String,
        body: String,
        #[serde(default)]
        client_msg_id: Option<String>,
        #[serde(default)]
        mentions: Vec<String>,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Edit {
        room: String,
        seq: u64,
        #[serde(default)]
        id: Option<String>,
        body: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Delete {
        room: String,
        seq: u64,
        #[serde(default)]
        id: Option<String>,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    React {
        room: String,
        seq: u64,
        #[serde(default)]
        id: Option<String>,
        emoji: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Unreact {
        room: String,
        seq: u64,
        #[serde(default)]
        id: Option<String>,
        emoji: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Status {
        status: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    History {
        room: String,
        #[serde(default)]
        before: Option<u64>,
        #[serde(default)]
        before_id: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Typing {
        room: String,
        #[serde(default)]
        state: Option<String>,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Read {
        room: String,
        seq: u64,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Receipts {
        room: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Dm {
        user: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Draft {
        room: String,
        #[serde(default)]
        text: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Drafts {
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Presence {
        room: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Ping {
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Auth {
        token: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    Refresh {
        token: String,
        #[serde(rename = "ref", default)]
        reference: Ref,
    },
    #[serde(other)]
    Unknown,
}

/// Decodes a JSON text frame.
pub fn decode_json(text: &str) -> Result<Command, CommandError> {
    match serde_json::from_str::<RawCommand>(text) {
        // serde would also read a tagged enum from an array; a command is an object.
        Ok(_) if !text.trim_start().starts_with('{') => {
            Err(invalid("a command is a JSON object".into()))
        }
        Ok(raw) => validate(raw),
        Err(e) => Err(match e.classify() {
            serde_json::error::Category::Data => invalid(e.to_string()),
            _ => malformed(format!("not a JSON object: {e}")),
        }),
    }
}

/// Decodes a MessagePack binary frame (a map with the same keys as the JSON form).
pub fn decode_msgpack(bytes: &[u8]) -> Result<Command, CommandError> {
    use rmp_serde::decode::Error as E;
    /// The `type` field alone: MessagePack lets serde read an integer as a variant
    /// index, so the tag is checked to be a string first (as JSON requires).
    #[derive(Deserialize)]
    struct TypeTag<'a> {
        #[serde(rename = "type", borrow)]
        _kind: &'a str,
    }
    let is_map = matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf));
    let tagged = if is_map {
        rmp_serde::from_slice::<TypeTag<'_>>(bytes).map(|_| ())
    } else {
        Ok(())
    };
    match tagged.and_then(|()| rmp_serde::from_slice::<RawCommand>(bytes)) {
        Ok(_) if !is_map => Err(invalid("a command is a MessagePack map".into())),
        Ok(raw) => validate(raw),
        Err(e @ (E::Syntax(_) | E::OutOfRange | E::Utf8Error(_))) => Err(invalid(e.to_string())),
        Err(e) => Err(malformed(format!("not a MessagePack map: {e}"))),
    }
}

fn validate(raw: RawCommand) -> Result<Command, CommandError> {
    let command = match raw {
        RawCommand::Join {
            room,
            epoch,
            after,
            history,
            reference,
        } => {
            let reference = check_ref(reference)?;
            let resume = match (epoch, after) {
                (Some(epoch), Some(after)) => Some(Resume { epoch, after }),
                (None, None) => None,
                _ => {
                    return Err(CommandError {
                        code: ErrorCode::InvalidCommand,
                        detail: "to resume, give both epoch and after (from joined and messages)"
                            .into(),
                        reference,
                    });
                }
            };
            Command::Join {
                room: room_name(&room, &reference)?,
                resume,
                history,
                reference,
            }
        }
        RawCommand::Leave { room, reference } => {
            let reference = check_ref(reference)?;
            Command::Leave {
                room: room_name(&room, &reference)?,
                reference,
            }
        }
        RawCommand::Send {
            room,
            body,
            client_msg_id,
            mentions,
            reference,
        } => {
            let reference = check_ref(reference)?;
            Command::Send {
                room: room_name(&room, &reference)?,
                body,
                client_msg_id: check_client_msg_id(client_msg_id, &reference)?,
                mentions: check_mentions(mentions, &reference)?,
                reference,
            }
        }
        RawCommand::Edit {
            room,
            seq,
            id,
            body,
            reference,
        } => {
            let reference = check_ref(reference)?;
            Command::Edit {
                room: room_name(&room, &reference)?,
                target: target(seq, id, &reference)?,
                body,
                reference,
            }
        }
        RawCommand::Delete {
            room,
            seq,
            id,
            reference,
        } => {
            let reference = check_ref(reference)?;
            Command::Delete {
                room: room_name(&room, &reference)?,
                target: target(seq, id, &reference)?,
                reference,
            }
        }
        RawCommand::React {
            room,
            seq,
            id,
            emoji,
            reference,
        } => react(room, seq, id, emoji, true, reference)?,
        RawCommand::Unreact {
            room,
            seq,
            id,
            emoji,
            reference,
        } => react(room, seq, id, emoji, false, reference)?,
        RawCommand::Status { status, reference } => {
            let reference = check_ref(reference)?;
            let away = match status.as_str() {
                "online" => false,
                "away" => true,
                _ => return Err(invalid_with("status must be online or away", reference)),
            };
            Command::Status { away, reference }
        }
        RawCommand::History {
            room,
            before,
            before_id,
            limit,
            reference,
        } => {
            let reference = check_ref(reference)?;
            let before = Before::from_fields(before, before_id.as_deref()).map_err(|detail| {
                CommandError {
                    code: ErrorCode::InvalidCommand,
                    detail: detail.into(),
                    reference: reference.clone(),
                }
            })?;
            Command::History {
                room: room_name(&room, &reference)?,
                before,
                limit,
                reference,
            }
        }
        RawCommand::Typing {
            room,
            state,
            reference,
        } => {
            let reference = check_ref(reference)?;
            let active = match state.as_deref() {
                None | Some("start") => true,
                Some("stop") => false,
                Some(_) => {
                    return Err(CommandError {
                        code: ErrorCode::InvalidCommand,
                        detail: "typing state must be start or stop".into(),
                        reference,
                    });
                }
            };
            Command::Typing {
                room: room_name(&room, &reference)?,
                active,
                reference,
            }
        }
        RawCommand::Read {
            room,
            seq,
            reference,
        } => {
            let reference = check_ref(reference)?;
            if seq == 0 {
                return Err(CommandError {
                    code: ErrorCode::InvalidCommand,
                    detail: "seq must be a message's sequence number (1 or more)".into(),
                    reference,
                });
            }
            Command::Read {
                room: room_name(&room, &reference)?,
                seq,
                reference,
            }
        }
        RawCommand::Receipts { room, reference } => {
            let reference = check_ref(reference)?;
            Command::Receipts {
                room: room_name(&room, &reference)?,
                reference,
            }
        }
        RawCommand::Dm { user, reference } => Command::Dm {
            user,
            reference: check_ref(reference)?,
        },
        RawCommand::Draft {
            room,
            text,
            reference,
        } => {
            let reference = check_ref(reference)?;
            Command::Draft {
                room: room_name(&room, &reference)?,
                text,
                reference,
            }
        }
        RawCommand::Drafts { reference } => Command::Drafts {
            reference: check_ref(reference)?,
        },
        RawCommand::Presence { room, reference } => {
            let reference = check_ref(reference)?;
            Command::Presence {
                room: room_name(&room, &reference)?,
                reference,
            }
        }
        RawCommand::Ping { reference } => Command::Ping {
            reference: check_ref(reference)?,
        },
        RawCommand::Auth { token, reference } => {
            let reference = check_ref(reference)?;
            Command::Auth {
                token: check_token(token, &reference)?,
                reference,
            }
        }
        RawCommand::Refresh { token, reference } => {
            let reference = check_ref(reference)?;
            Command::Refresh {
                token: check_token(token, &reference)?,
                reference,
            }
        }
        RawCommand::Unknown => {
            return Err(CommandError {
                code: ErrorCode::UnknownCommand,
                detail:
                    "unknown command type; expected auth, refresh, join, leave, send, edit, delete, react, unreact, history, typing, read, receipts, dm, draft, drafts, presence, status or ping"
                    .into(),
                reference: None,
            });
        }
    };
    Ok(command)
}

mod checks;
use checks::{
    check_client_msg_id, check_mentions, check_ref, check_token, invalid, invalid_with, malformed,
    react, room_name, target,
};

#[cfg(test)]
mod tests;

//! Decoding a frame into a [`Command`]: the raw form (plain strings, as the
//! client wrote them) and its validation into typed commands.

use serde::Deserialize;

use super::{
    Before, Command, CommandError, CommandKind, Ref, Resume,
    checks::{self, Invalid},
    commands,
};
use crate::ErrorCode;

/// What every command has: its `type` (a string) and its `ref`. Read first,
/// so that an error about the rest of the command carries the `ref`.
#[derive(Deserialize)]
struct Head {
    /// The command's type (checked to be a string; [`RawKind`] reads it).
    #[serde(rename = "type")]
    _kind: String,
    /// The correlation tag.
    #[serde(rename = "ref", default)]
    reference: Ref,
}

/// The fields of each `type`, as written.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawKind {
    Join {
        room: String,
        #[serde(default)]
        epoch: Option<u64>,
        #[serde(default)]
        after: Option<u64>,
        #[serde(default)]
        history: Option<u32>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        body: String,
        #[serde(default)]
        client_msg_id: Option<String>,
        #[serde(default)]
        mentions: Vec<String>,
        #[serde(default)]
        attachments: Vec<String>,
    },
    Edit {
        room: String,
        seq: u64,
        #[serde(default)]
        id: Option<String>,
        body: String,
    },
    Delete {
        room: String,
        seq: u64,
        #[serde(default)]
        id: Option<String>,
    },
    React {
        room: String,
        seq: u64,
        #[serde(default)]
        id: Option<String>,
        emoji: String,
    },
    Unreact {
        room: String,
        seq: u64,
        #[serde(default)]
        id: Option<String>,
        emoji: String,
    },
    Status {
        status: String,
    },
    History {
        room: String,
        #[serde(default)]
        before: Option<u64>,
        #[serde(default)]
        epoch: Option<u64>,
        #[serde(default)]
        before_id: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
    },
    Typing {
        room: String,
        #[serde(default)]
        state: Option<String>,
    },
    Search {
        q: String,
        #[serde(default)]
        rooms: Option<Vec<String>>,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        offset: Option<u32>,
    },
    Read {
        room: String,
        seq: u64,
    },
    Receipts {
        room: String,
    },
    Dm {
        user: String,
    },
    Draft {
        room: String,
        #[serde(default)]
        text: String,
    },
    Drafts {},
    Presence {
        room: String,
    },
    Ping {},
    Auth {
        token: String,
    },
    Refresh {
        token: String,
    },
    #[serde(other)]
    Unknown,
}

/// Decodes a JSON text frame.
pub fn decode_json(text: &str) -> Result<Command, CommandError> {
    let classify = |e: serde_json::Error, reference: &Ref| match e.classify() {
        serde_json::error::Category::Data => failure(ErrorCode::InvalidCommand, e, reference),
        _ => failure(
            ErrorCode::MalformedFrame,
            format!("not a JSON object: {e}"),
            reference,
        ),
    };
    let head = serde_json::from_str::<Head>(text).map_err(|e| classify(e, &None))?;
    // serde would also read a struct from an array; a command is an object.
    if !text.trim_start().starts_with('{') {
        return Err(failure(
            ErrorCode::InvalidCommand,
            "a command is a JSON object",
            &None,
        ));
    }
    let reference = checks::reference(head.reference)?;
    let kind = serde_json::from_str::<RawKind>(text).map_err(|e| classify(e, &reference))?;
    validate(reference, kind)
}

/// Decodes a MessagePack binary frame (a map with the same keys as the JSON form).
pub fn decode_msgpack(bytes: &[u8]) -> Result<Command, CommandError> {
    use rmp_serde::decode::Error as E;
    let classify = |e: E, reference: &Ref| match e {
        E::Syntax(_) | E::OutOfRange | E::Utf8Error(_) => {
            failure(ErrorCode::InvalidCommand, e, reference)
        }
        e => failure(
            ErrorCode::MalformedFrame,
            format!("not a MessagePack map: {e}"),
            reference,
        ),
    };
    // The head also checks that `type` is a string: MessagePack would let
    // serde read an integer as a variant index.
    let head = rmp_serde::from_slice::<Head>(bytes).map_err(|e| classify(e, &None))?;
    if !matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf)) {
        return Err(failure(
            ErrorCode::InvalidCommand,
            "a command is a MessagePack map",
            &None,
        ));
    }
    let reference = checks::reference(head.reference)?;
    let kind = rmp_serde::from_slice::<RawKind>(bytes).map_err(|e| classify(e, &reference))?;
    validate(reference, kind)
}

/// The error `code` saying `detail`, for a command with `reference`.
fn failure(code: ErrorCode, detail: impl ToString, reference: &Ref) -> CommandError {
    CommandError {
        code,
        detail: detail.to_string(),
        reference: reference.clone(),
    }
}

fn validate(reference: Ref, kind: RawKind) -> Result<Command, CommandError> {
    match kind.validate() {
        Ok(kind) => Ok(Command { reference, kind }),
        Err(Invalid { code, detail }) => Err(CommandError {
            code,
            detail,
            reference,
        }),
    }
}

impl RawKind {
    fn validate(self) -> Result<CommandKind, Invalid> {
        use checks::{room, target};
        Ok(match self {
            Self::Join {
                room: name,
                epoch,
                after,
                history,
            } => {
                let resume = match (epoch, after) {
                    (Some(epoch), Some(after)) => Some(Resume { epoch, after }),
                    (None, None) => None,
                    _ => {
                        return Err(Invalid::command(
                            "to resume, give both epoch and after (from joined and messages)",
                        ));
                    }
                };
                CommandKind::Join(commands::Join {
                    room: room(&name)?,
                    resume,
                    history,
                })
            }
            Self::Leave { room: name } => {
                CommandKind::Leave(commands::Leave { room: room(&name)? })
            }
            Self::Send {
                room: name,
                body,
                client_msg_id,
                mentions,
                attachments,
            } => CommandKind::Send(commands::Send {
                room: room(&name)?,
                body,
                client_msg_id: checks::client_msg_id(client_msg_id)?,
                mentions: checks::mentions(mentions)?,
                attachments: checks::attachments(attachments)?,
            }),
            Self::Edit {
                room: name,
                seq,
                id,
                body,
            } => CommandKind::Edit(commands::Edit {
                room: room(&name)?,
                target: target(seq, id)?,
                body,
            }),
            Self::Delete {
                room: name,
                seq,
                id,
            } => CommandKind::Delete(commands::Delete {
                room: room(&name)?,
                target: target(seq, id)?,
            }),
            Self::React {
                room,
                seq,
                id,
                emoji,
            } => checks::react(&room, seq, id, emoji, true)?,
            Self::Unreact {
                room,
                seq,
                id,
                emoji,
            } => checks::react(&room, seq, id, emoji, false)?,
            Self::Status { status } => CommandKind::Status(commands::Status {
                away: match status.as_str() {
                    "online" => false,
                    "away" => true,
                    _ => return Err(Invalid::command("status must be online or away")),
                },
            }),
            Self::History {
                room: name,
                before,
                epoch,
                before_id,
                limit,
            } => {
                let before = Before::from_fields(before, epoch, before_id.as_deref())
                    .map_err(Invalid::command)?;
                CommandKind::History(commands::History {
                    room: room(&name)?,
                    before,
                    limit,
                })
            }
            Self::Search {
                q,
                rooms,
                limit,
                offset,
            } => CommandKind::Search(
                commands::Search::new(q, rooms, limit, offset).map_err(Invalid::command)?,
            ),
            Self::Typing { room: name, state } => {
                let active = match state.as_deref() {
                    None | Some("start") => true,
                    Some("stop") => false,
                    Some(_) => return Err(Invalid::command("typing state must be start or stop")),
                };
                CommandKind::Typing(commands::Typing {
                    room: room(&name)?,
                    active,
                })
            }
            Self::Read { room: name, seq } => {
                if seq == 0 {
                    return Err(Invalid::command(
                        "seq must be a message's sequence number (1 or more)",
                    ));
                }
                CommandKind::Read(commands::Read {
                    room: room(&name)?,
                    seq,
                })
            }
            Self::Receipts { room: name } => {
                CommandKind::Receipts(commands::Receipts { room: room(&name)? })
            }
            Self::Dm { user } => CommandKind::Dm(commands::Dm { user }),
            Self::Draft { room: name, text } => CommandKind::Draft(commands::Draft {
                room: room(&name)?,
                text,
            }),
            Self::Drafts {} => CommandKind::Drafts(commands::Drafts),
            Self::Presence { room: name } => {
                CommandKind::Presence(commands::Presence { room: room(&name)? })
            }
            Self::Ping {} => CommandKind::Ping(commands::Ping),
            Self::Auth { token } => CommandKind::Auth(commands::Auth {
                token: checks::token(token)?,
            }),
            Self::Refresh { token } => CommandKind::Refresh(commands::Refresh {
                token: checks::token(token)?,
            }),
            Self::Unknown => {
                return Err(Invalid {
                    code: ErrorCode::UnknownCommand,
                    detail: "unknown command type; expected auth, refresh, join, leave, send, edit, delete, react, unreact, history, typing, read, receipts, dm, draft, drafts, presence, status or ping".into(),
                });
            }
        })
    }
}

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
        reference: Ref,
    },
    /// Page backwards through a room's history.
    History {
        room: RoomName,
        /// Older than this; the newest messages when absent.
        before: Option<Before>,
        /// Page size (the server clamps it).
        limit: Option<u32>,
        reference: Ref,
    },
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
            reference,
        } => {
            let reference = check_ref(reference)?;
            Command::Send {
                room: room_name(&room, &reference)?,
                body,
                client_msg_id: check_client_msg_id(client_msg_id, &reference)?,
                reference,
            }
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
                    "unknown command type; expected auth, refresh, join, leave, send, history or ping"
                    .into(),
                reference: None,
            });
        }
    };
    Ok(command)
}

fn check_ref(reference: Ref) -> Result<Ref, CommandError> {
    match reference {
        Some(r) if r.len() > MAX_REF_BYTES => Err(CommandError {
            code: ErrorCode::InvalidRef,
            detail: format!("ref is longer than {MAX_REF_BYTES} bytes"),
            reference: None,
        }),
        other => Ok(other),
    }
}

fn check_token(token: String, reference: &Ref) -> Result<String, CommandError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(CommandError {
            code: ErrorCode::InvalidToken,
            detail: format!("token must be 1 to {MAX_TOKEN_BYTES} bytes"),
            reference: reference.clone(),
        });
    }
    Ok(token)
}

fn check_client_msg_id(
    id: Option<String>,
    reference: &Ref,
) -> Result<Option<String>, CommandError> {
    match id {
        Some(id)
            if id.is_empty()
                || id.len() > MAX_CLIENT_MSG_ID_BYTES
                || id.chars().any(char::is_control) =>
        {
            Err(CommandError {
                code: ErrorCode::InvalidCommand,
                detail: format!(
                    "client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_BYTES} bytes without control characters"
                ),
                reference: reference.clone(),
            })
        }
        other => Ok(other),
    }
}

fn room_name(room: &str, reference: &Ref) -> Result<RoomName, CommandError> {
    RoomName::parse(room).map_err(|e| CommandError {
        code: ErrorCode::InvalidRoom,
        detail: e.to_string(),
        reference: reference.clone(),
    })
}

fn malformed(detail: String) -> CommandError {
    CommandError {
        code: ErrorCode::MalformedFrame,
        detail,
        reference: None,
    }
}

fn invalid(detail: String) -> CommandError {
    CommandError {
        code: ErrorCode::InvalidCommand,
        detail,
        reference: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code_of(r: Result<Command, CommandError>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn decodes_every_command_in_json() {
        assert_eq!(
            decode_json(r#"{"type":"join","room":"lobby","ref":"1"}"#).unwrap(),
            Command::Join {
                room: RoomName::parse("lobby").unwrap(),
                resume: None,
                history: None,
                reference: Some("1".into())
            }
        );
        assert_eq!(
            decode_json(r#"{"type":"join","room":"r","epoch":7,"after":41,"history":5}"#).unwrap(),
            Command::Join {
                room: RoomName::parse("r").unwrap(),
                resume: Some(Resume {
                    epoch: 7,
                    after: 41
                }),
                history: Some(5),
                reference: None
            }
        );
        assert!(matches!(
            decode_json(r#"{"type":"history","room":"r","before":9,"limit":3}"#),
            Ok(Command::History {
                before: Some(Before::Seq(9)),
                limit: Some(3),
                ..
            })
        ));
        assert!(matches!(
            decode_json(r#"{"type":"send","room":"r","body":"x","client_msg_id":"c-1"}"#),
            Ok(Command::Send { client_msg_id: Some(ref id), .. }) if id == "c-1"
        ));
        assert!(matches!(
            decode_json(r#"{"type":"send","room":"r","body":"hi","extra":true}"#).unwrap(),
            Command::Send { ref body, reference: None, .. } if body == "hi"
        ));
        assert!(matches!(
            decode_json(r#"{"type":"leave","room":"r"}"#),
            Ok(Command::Leave { .. })
        ));
        assert!(matches!(
            decode_json(r#"{"type":"ping"}"#),
            Ok(Command::Ping { .. })
        ));
    }

    #[test]
    fn classifies_json_failures() {
        assert_eq!(code_of(decode_json("{not json")), ErrorCode::MalformedFrame);
        assert_eq!(code_of(decode_json("")), ErrorCode::MalformedFrame);
        assert_eq!(
            code_of(decode_json(r#"{"type":"dance"}"#)),
            ErrorCode::UnknownCommand
        );
        assert_eq!(
            code_of(decode_json(r#"{"room":"r"}"#)),
            ErrorCode::InvalidCommand
        );
        assert_eq!(
            code_of(decode_json(r#"{"type":"send","room":"r"}"#)),
            ErrorCode::InvalidCommand
        );
        assert_eq!(
            code_of(decode_json(r#"{"type":"join","room":7}"#)),
            ErrorCode::InvalidCommand
        );
        assert_eq!(code_of(decode_json("[1,2]")), ErrorCode::InvalidCommand);
        assert_eq!(
            code_of(decode_json(r#"["ping"]"#)),
            ErrorCode::InvalidCommand
        );
        assert_eq!(
            code_of(decode_json(r#"{"type":"join","room":"a b"}"#)),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code_of(decode_json(r#"{"type":"join","room":"r","after":3}"#)),
            ErrorCode::InvalidCommand
        );
        assert_eq!(
            code_of(decode_json(
                r#"{"type":"join","room":"r","after":-1,"epoch":1}"#
            )),
            ErrorCode::InvalidCommand
        );
        assert_eq!(
            code_of(decode_json(
                r#"{"type":"history","room":"r","before":1,"before_id":"x"}"#
            )),
            ErrorCode::InvalidCommand
        );
        assert_eq!(
            code_of(decode_json(
                r#"{"type":"history","room":"r","before_id":"nope"}"#
            )),
            ErrorCode::InvalidCommand
        );
        let long_id = format!(
            r#"{{"type":"send","room":"r","body":"x","client_msg_id":"{}"}}"#,
            "x".repeat(65)
        );
        assert_eq!(code_of(decode_json(&long_id)), ErrorCode::InvalidCommand);
        let long_ref = format!(r#"{{"type":"ping","ref":"{}"}}"#, "x".repeat(65));
        assert_eq!(code_of(decode_json(&long_ref)), ErrorCode::InvalidRef);
    }

    #[test]
    fn invalid_room_keeps_the_ref() {
        let err = decode_json(r#"{"type":"join","room":"","ref":"r1"}"#).unwrap_err();
        assert_eq!(err.reference.as_deref(), Some("r1"));
    }

    #[test]
    fn decodes_msgpack_maps_and_classifies_failures() {
        #[derive(serde::Serialize)]
        struct Send<'a> {
            r#type: &'a str,
            room: &'a str,
            body: &'a str,
        }
        let bytes = rmp_serde::to_vec_named(&Send {
            r#type: "send",
            room: "r",
            body: "hé",
        })
        .unwrap();
        assert!(
            matches!(decode_msgpack(&bytes), Ok(Command::Send { ref body, .. }) if body == "hé")
        );
        assert_eq!(code_of(decode_msgpack(&[0xc1])), ErrorCode::MalformedFrame);
        assert_eq!(code_of(decode_msgpack(&[])), ErrorCode::MalformedFrame);
        let unknown = rmp_serde::to_vec_named(&Send {
            r#type: "nope",
            room: "r",
            body: "",
        })
        .unwrap();
        assert_eq!(code_of(decode_msgpack(&unknown)), ErrorCode::UnknownCommand);
        assert_eq!(
            code_of(decode_msgpack(&rmp_serde::to_vec(&5u8).unwrap())),
            ErrorCode::InvalidCommand
        );
        #[derive(serde::Serialize)]
        struct BadRoom<'a> {
            r#type: &'a str,
            room: u32,
        }
        let bad = rmp_serde::to_vec_named(&BadRoom {
            r#type: "join",
            room: 7,
        })
        .unwrap();
        assert_eq!(code_of(decode_msgpack(&bad)), ErrorCode::InvalidCommand);
    }

    /// A well-formed command as the client would write it, and what it must decode to.
    fn well_formed() -> impl Strategy<Value = (serde_json::Value, Command)> {
        let room = "[A-Za-z0-9._:@+=-]{1,128}";
        let reference = proptest::option::of("\\PC{0,24}");
        let body = "\\PC{0,200}";
        let token = "[A-Za-z0-9._-]{1,512}";
        prop_oneof![
            (room, reference.clone()).prop_map(|(room, reference)| (
                serde_json::json!({"type": "join", "room": room, "ref": reference}),
                Command::Join {
                    room: RoomName::parse(&room).unwrap(),
                    resume: None,
                    history: None,
                    reference
                },
            )),
            (room, reference.clone()).prop_map(|(room, reference)| (
                serde_json::json!({"type": "leave", "room": room, "ref": reference}),
                Command::Leave {
                    room: RoomName::parse(&room).unwrap(),
                    reference
                },
            )),
            (room, body, reference.clone()).prop_map(|(room, body, reference)| (
                serde_json::json!({"type": "send", "room": room, "body": body, "ref": reference}),
                Command::Send {
                    room: RoomName::parse(&room).unwrap(),
                    body,
                    client_msg_id: None,
                    reference
                },
            )),
            (token, reference.clone()).prop_map(|(token, reference)| (
                serde_json::json!({"type": "auth", "token": token, "ref": reference}),
                Command::Auth { token, reference },
            )),
            (token, reference.clone()).prop_map(|(token, reference)| (
                serde_json::json!({"type": "refresh", "token": token, "ref": reference}),
                Command::Refresh { token, reference },
            )),
            (room, any::<u64>(), any::<u64>(), proptest::option::of(any::<u32>())).prop_map(
                |(room, epoch, after, history)| (
                    serde_json::json!({"type": "join", "room": room, "epoch": epoch, "after": after, "history": history}),
                    Command::Join {
                        room: RoomName::parse(&room).unwrap(),
                        resume: Some(Resume { epoch, after }),
                        history,
                        reference: None
                    },
                )
            ),
            (room, "[!-~]{1,64}").prop_map(|(room, id)| (
                serde_json::json!({"type": "send", "room": room, "body": "b", "client_msg_id": id}),
                Command::Send {
                    room: RoomName::parse(&room).unwrap(),
                    body: "b".into(),
                    client_msg_id: Some(id),
                    reference: None
                },
            )),
            (room, proptest::option::of(any::<u64>()), proptest::option::of(any::<u32>())).prop_map(
                |(room, before, limit)| (
                    serde_json::json!({"type": "history", "room": room, "before": before, "limit": limit}),
                    Command::History {
                        room: RoomName::parse(&room).unwrap(),
                        before: before.map(Before::Seq),
                        limit,
                        reference: None
                    },
                )
            ),
            reference.prop_map(|reference| (
                serde_json::json!({"type": "ping", "ref": reference}),
                Command::Ping { reference },
            )),
        ]
    }

    /// Any JSON value, a few levels deep: what a confused or hostile client might send.
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop_oneof![
                Just("join".to_owned()),
                Just("send".to_owned()),
                Just("auth".to_owned()),
                "\\PC{0,20}"
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("room".to_owned()),
                        Just("body".to_owned()),
                        Just("ref".to_owned()),
                        Just("token".to_owned()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn well_formed_commands_decode_to_themselves_in_both_encodings((json, expected) in well_formed()) {
            let in_json = decode_json(&json.to_string());
            let in_msgpack = decode_msgpack(&rmp_serde::to_vec_named(&json).unwrap());
            match (&expected, &in_json) {
                // A ref over the limit is refused the same way in both encodings.
                (_, Err(e)) if e.code == ErrorCode::InvalidRef => {
                    prop_assert!(json["ref"].as_str().unwrap().len() > MAX_REF_BYTES);
                }
                _ => prop_assert_eq!(in_json.clone(), Ok(expected.clone())),
            }
            prop_assert_eq!(in_msgpack, in_json);
        }

        #[test]
        fn any_json_value_gets_a_command_or_a_documented_code(value in any_json()) {
            let decoded = decode_json(&value.to_string());
            if let Err(error) = &decoded {
                prop_assert!(!error.detail.is_empty());
                prop_assert!(error.code != ErrorCode::Internal);
            }
            // The same value in MessagePack decodes to the same outcome.
            let via_msgpack = decode_msgpack(&rmp_serde::to_vec_named(&value).unwrap());
            prop_assert_eq!(
                via_msgpack.as_ref().err().map(|e| e.code),
                decoded.as_ref().err().map(|e| e.code)
            );
            prop_assert_eq!(via_msgpack.ok(), decoded.ok());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_msgpack(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = decode_json(text);
            }
        }
    }
}

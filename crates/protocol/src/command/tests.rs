//! Decoding and validation of commands.

use super::*;
use crate::{decode_json, decode_msgpack};
use proptest::prelude::*;

fn code_of(r: Result<Command, CommandError>) -> ErrorCode {
    r.unwrap_err().code
}

#[test]
fn decodes_every_command_in_json() {
    assert_eq!(
        decode_json(r#"{"type":"join","room":"lobby","ref":"1"}"#).unwrap(),
        Command {
            reference: Some("1".into()),
            kind: CommandKind::Join(commands::Join {
                room: RoomName::parse("lobby").unwrap(),
                resume: None,
                history: None,
            })
        }
    );
    assert_eq!(
        decode_json(r#"{"type":"join","room":"r","epoch":7,"after":41,"history":5}"#).unwrap(),
        Command {
            reference: None,
            kind: CommandKind::Join(commands::Join {
                room: RoomName::parse("r").unwrap(),
                resume: Some(Resume {
                    epoch: 7,
                    after: 41
                }),
                history: Some(5),
            })
        }
    );
    assert!(matches!(
        decode_json(r#"{"type":"history","room":"r","before":9,"limit":3}"#),
        Ok(Command {
            kind: CommandKind::History(commands::History {
                before: Some(Before::Seq {
                    seq: 9,
                    epoch: None
                }),
                limit: Some(3),
                ..
            }),
            ..
        })
    ));
    assert!(matches!(
        decode_json(r#"{"type":"history","room":"r","before":9,"epoch":5}"#),
        Ok(Command {
            kind: CommandKind::History(commands::History {
                before: Some(Before::Seq {
                    seq: 9,
                    epoch: Some(5)
                }),
                ..
            }),
            ..
        })
    ));
    assert!(decode_json(r#"{"type":"history","room":"r","epoch":5}"#).is_err());
    assert!(matches!(
        decode_json(r#"{"type":"send","room":"r","body":"x","client_msg_id":"c-1"}"#),
        Ok(Command { kind: CommandKind::Send(commands::Send { client_msg_id: Some(ref id), .. }), .. }) if id == "c-1"
    ));
    assert!(matches!(
        decode_json(r#"{"type":"send","room":"r","body":"hi","extra":true}"#).unwrap(),
        Command { kind: CommandKind::Send(commands::Send { ref body, .. }), reference: None } if body == "hi"
    ));
    assert!(matches!(
        decode_json(r#"{"type":"leave","room":"r"}"#),
        Ok(Command {
            kind: CommandKind::Leave(_),
            ..
        })
    ));
    assert!(matches!(
        decode_json(r#"{"type":"ping"}"#),
        Ok(Command {
            kind: CommandKind::Ping(_),
            ..
        })
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
        matches!(decode_msgpack(&bytes), Ok(Command { kind: CommandKind::Send(commands::Send { ref body, .. }), .. }) if body == "hé")
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
            Command {
                reference,
                kind: CommandKind::Join(commands::Join {
                    room: RoomName::parse(&room).unwrap(),
                    resume: None,
                    history: None,
                })
            },
        )),
        (room, reference.clone()).prop_map(|(room, reference)| (
            serde_json::json!({"type": "leave", "room": room, "ref": reference}),
            Command {
                reference,
                kind: CommandKind::Leave(commands::Leave {
                    room: RoomName::parse(&room).unwrap(),
                })
            },
        )),
        (room, body, reference.clone()).prop_map(|(room, body, reference)| (
            serde_json::json!({"type": "send", "room": room, "body": body, "ref": reference}),
            Command {
                reference,
                kind: CommandKind::Send(commands::Send {
                    room: RoomName::parse(&room).unwrap(),
                    body,
                    client_msg_id: None,
                    mentions: Vec::new(),
                    attachments: Vec::new(),
                })
            },
        )),
        (token, reference.clone()).prop_map(|(token, reference)| (
            serde_json::json!({"type": "auth", "token": token, "ref": reference}),
            Command { reference, kind: CommandKind::Auth(commands::Auth { token }) },
        )),
        (token, reference.clone()).prop_map(|(token, reference)| (
            serde_json::json!({"type": "refresh", "token": token, "ref": reference}),
            Command { reference, kind: CommandKind::Refresh(commands::Refresh { token }) },
        )),
        (room, any::<u64>(), any::<u64>(), proptest::option::of(any::<u32>())).prop_map(
            |(room, epoch, after, history)| (
                serde_json::json!({"type": "join", "room": room, "epoch": epoch, "after": after, "history": history}),
                Command {
                    reference: None,
                    kind: CommandKind::Join(commands::Join {
                        room: RoomName::parse(&room).unwrap(),
                        resume: Some(Resume { epoch, after }),
                        history,
                    })
                },
            )
        ),
        (room, "[!-~]{1,64}").prop_map(|(room, id)| (
            serde_json::json!({"type": "send", "room": room, "body": "b", "client_msg_id": id}),
            Command {
                reference: None,
                kind: CommandKind::Send(commands::Send {
                    room: RoomName::parse(&room).unwrap(),
                    body: "b".into(),
                    client_msg_id: Some(id),
                    mentions: Vec::new(),
                    attachments: Vec::new(),
                })
            },
        )),
        (room, proptest::option::of(any::<u64>()), proptest::option::of(any::<u32>())).prop_map(
            |(room, before, limit)| (
                serde_json::json!({"type": "history", "room": room, "before": before, "limit": limit}),
                Command {
                    reference: None,
                    kind: CommandKind::History(commands::History {
                        room: RoomName::parse(&room).unwrap(),
                        before: before.map(|seq| Before::Seq { seq, epoch: None }),
                        limit,
                    })
                },
            )
        ),
        reference.prop_map(|reference| (
            serde_json::json!({"type": "ping", "ref": reference}),
            Command { reference, kind: CommandKind::Ping(commands::Ping) },
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

#[test]
fn typing_defaults_to_start_and_refuses_other_states() {
    let room = RoomName::parse("lobby").unwrap();
    assert_eq!(
        decode_json(r#"{"type":"typing","room":"lobby"}"#).unwrap(),
        Command {
            reference: None,
            kind: CommandKind::Typing(commands::Typing {
                room: room.clone(),
                active: true,
            })
        }
    );
    assert_eq!(
        decode_json(r#"{"type":"typing","room":"lobby","state":"stop","ref":"t"}"#).unwrap(),
        Command {
            reference: Some("t".into()),
            kind: CommandKind::Typing(commands::Typing {
                room,
                active: false,
            })
        }
    );
    let error =
        decode_json(r#"{"type":"typing","room":"lobby","state":"maybe","ref":"t"}"#).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidCommand);
    assert_eq!(error.reference.as_deref(), Some("t"));
    assert_eq!(
        code_of(decode_json(r#"{"type":"typing","room":"no room!"}"#)),
        ErrorCode::InvalidRoom
    );
}

#[test]
fn changes_to_messages_name_their_target() {
    let id = "0190b1f2-3c4d-7e5f-8a9b-0c1d2e3f4a5b";
    let edit = format!(r#"{{"type":"edit","room":"r","seq":7,"id":"{id}","body":"v2","ref":"e"}}"#);
    assert!(matches!(
        decode_json(&edit).unwrap(),
        Command { kind: CommandKind::Edit(commands::Edit { target: Target { seq: 7, id: Some(_) }, ref body, .. }), .. } if body == "v2"
    ));
    assert!(matches!(
        decode_json(r#"{"type":"delete","room":"r","seq":7}"#).unwrap(),
        Command {
            kind: CommandKind::Delete(commands::Delete {
                target: Target { seq: 7, id: None },
                ..
            }),
            ..
        }
    ));
    assert!(matches!(
        decode_json(r#"{"type":"react","room":"r","seq":7,"emoji":"👍"}"#).unwrap(),
        Command { kind: CommandKind::React(commands::React { add: true, ref emoji, .. }), .. } if emoji == "👍"
    ));
    assert!(matches!(
        decode_json(r#"{"type":"unreact","room":"r","seq":7,"emoji":":+1:"}"#).unwrap(),
        Command {
            kind: CommandKind::React(commands::React { add: false, .. }),
            ..
        }
    ));
    for bad in [
        r#"{"type":"edit","room":"r","seq":0,"body":"x","ref":"a"}"#,
        r#"{"type":"delete","room":"r","seq":3,"id":"nope","ref":"a"}"#,
        r#"{"type":"react","room":"r","seq":3,"emoji":"","ref":"a"}"#,
        r#"{"type":"react","room":"r","seq":3,"emoji":"a b","ref":"a"}"#,
    ] {
        let error = decode_json(bad).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidCommand, "{bad}");
        assert_eq!(error.reference.as_deref(), Some("a"), "{bad}");
    }
    let long = "x".repeat(MAX_EMOJI_BYTES + 1);
    let error = decode_json(&format!(
        r#"{{"type":"react","room":"r","seq":3,"emoji":"{long}"}}"#
    ));
    assert_eq!(error.unwrap_err().code, ErrorCode::InvalidCommand);
}

#[test]
fn mentions_are_distinct_and_bounded() {
    let sent = decode_json(r#"{"type":"send","room":"r","body":"hi","mentions":["b","a","b"]}"#);
    assert!(matches!(
        sent.unwrap(),
        Command { kind: CommandKind::Send(commands::Send { ref mentions, .. }), .. } if mentions == &["a".to_owned(), "b".to_owned()]
    ));
    let many: Vec<String> = (0..=MAX_MENTIONS).map(|n| format!("u{n}")).collect();
    let frame = serde_json::json!({"type": "send", "room": "r", "body": "hi", "mentions": many});
    let error = decode_json(&frame.to_string()).unwrap_err();
    assert_eq!(error.code, ErrorCode::TooManyMentions);
    let error = decode_json(r#"{"type":"send","room":"r","body":"hi","mentions":[""]}"#);
    assert_eq!(error.unwrap_err().code, ErrorCode::InvalidCommand);
}

#[test]
fn status_is_online_or_away() {
    assert!(matches!(
        decode_json(r#"{"type":"status","status":"away"}"#).unwrap(),
        Command {
            kind: CommandKind::Status(commands::Status { away: true }),
            ..
        }
    ));
    assert!(matches!(
        decode_json(r#"{"type":"status","status":"online"}"#).unwrap(),
        Command {
            kind: CommandKind::Status(commands::Status { away: false }),
            ..
        }
    ));
    let error = decode_json(r#"{"type":"status","status":"busy"}"#).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidCommand);
}

#[test]
fn errors_after_the_type_and_ref_are_read_carry_the_ref() {
    for (frame, code) in [
        (r#"{"type":"dance","ref":"d"}"#, ErrorCode::UnknownCommand),
        (
            r#"{"type":"send","room":"r","ref":"d"}"#,
            ErrorCode::InvalidCommand,
        ),
        (
            r#"{"type":"join","room":7,"ref":"d"}"#,
            ErrorCode::InvalidCommand,
        ),
    ] {
        let error = decode_json(frame).unwrap_err();
        assert_eq!(
            (error.code, error.reference.as_deref()),
            (code, Some("d")),
            "{frame}"
        );
        let value: serde_json::Value = serde_json::from_str(frame).unwrap();
        let packed = decode_msgpack(&rmp_serde::to_vec_named(&value).unwrap()).unwrap_err();
        assert_eq!(
            packed.reference.as_deref(),
            Some("d"),
            "{frame} in MessagePack"
        );
    }
    // A `type` that is not a string is refused before anything else is read.
    let error = decode_json(r#"{"type":14,"ref":"d"}"#).unwrap_err();
    assert_eq!(
        (error.code, error.reference),
        (ErrorCode::InvalidCommand, None)
    );
}

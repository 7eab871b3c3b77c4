//! Decoding and validation of commands.

use super::*;
use crate::{decode_json, decode_msgpack};

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

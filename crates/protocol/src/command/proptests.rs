//! Property tests of the command decoder: every well-formed command decodes
//! to what it says, in JSON and MessagePack; no input whatever panics it.

use super::*;
use crate::{decode_json, decode_msgpack};
use proptest::prelude::*;

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

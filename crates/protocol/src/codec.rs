//! Client encodings: JSON in text frames, MessagePack in binary frames.

use bytes::Bytes;

use crate::{
    ServerEvent,
    websocket::{self, MAX_SERVER_HEADER, opcode},
};

/// WebSocket subprotocol that selects JSON (also the default without one).
pub const SUBPROTOCOL_JSON: &str = "chorus.json";
/// WebSocket subprotocol that selects MessagePack.
pub const SUBPROTOCOL_MSGPACK: &str = "chorus.msgpack";

/// How events are encoded for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    /// JSON objects in text frames.
    #[default]
    Json,
    /// MessagePack maps (same keys as JSON) in binary frames.
    MsgPack,
}

/// An encoded event, ready to become a WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Payload of a text frame.
    Text(String),
    /// Payload of a binary frame.
    Binary(Vec<u8>),
}

impl Encoding {
    /// Every encoding, for per-encoding caches.
    pub const ALL: [Encoding; 2] = [Encoding::Json, Encoding::MsgPack];

    /// Parses the `encoding` query parameter or a subprotocol name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "json" | SUBPROTOCOL_JSON => Some(Self::Json),
            "msgpack" | SUBPROTOCOL_MSGPACK => Some(Self::MsgPack),
            _ => None,
        }
    }

    /// Short name, as announced in `welcome`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::MsgPack => "msgpack",
        }
    }

    /// Index into per-encoding arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Encodes an event.
    pub fn encode(self, event: &ServerEvent<'_>) -> Frame {
        match self {
            Self::Json => Frame::Text(
                serde_json::to_string(event).expect("event JSON encoding is infallible"),
            ),
            Self::MsgPack => {
                let mut buf = Vec::with_capacity(128);
                let mut ser = rmp_serde::Serializer::new(&mut buf)
                    .with_struct_map()
                    .with_human_readable();
                serde::Serialize::serialize(event, &mut ser)
                    .expect("event MessagePack encoding is infallible");
                Frame::Binary(buf)
            }
        }
    }

    /// `event` as one complete WebSocket frame (header and payload in one
    /// buffer, encoded in place after room reserved for the header): the bytes
    /// every recipient of this encoding is sent.
    pub fn encode_frame(self, event: &ServerEvent<'_>) -> Bytes {
        let mut buf = Vec::with_capacity(192);
        buf.resize(MAX_SERVER_HEADER, 0);
        let kind = match self {
            Self::Json => {
                serde_json::to_writer(&mut buf, event).expect("event JSON encoding is infallible");
                opcode::TEXT
            }
            Self::MsgPack => {
                let mut ser = rmp_serde::Serializer::new(&mut buf)
                    .with_struct_map()
                    .with_human_readable();
                serde::Serialize::serialize(event, &mut ser)
                    .expect("event MessagePack encoding is infallible");
                opcode::BINARY
            }
        };
        websocket::frame_in_place(kind, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChatMessage, RoomName, Sender};

    #[test]
    fn message_event_has_the_same_shape_in_both_encodings() {
        let msg = ChatMessage {
            id: uuid::Uuid::now_v7(),
            room: RoomName::parse("lobby").unwrap(),
            from: Sender {
                id: "u1".into(),
                name: None,
                avatar: None,
                kind: None,
            },
            ts: 42,
            body: "hi".into(),
            seq: 3,
            epoch: None,
            mentions: Vec::new(),
            edited: None,
            deleted: false,
            reactions: Vec::new(),
            attachments: Vec::new(),
        };
        let Frame::Text(json) = Encoding::Json.encode(&ServerEvent::Message(&msg)) else {
            panic!()
        };
        let Frame::Binary(mp) = Encoding::MsgPack.encode(&ServerEvent::Message(&msg)) else {
            panic!()
        };
        let from_json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let from_mp: serde_json::Value = rmp_serde::from_slice(&mp).unwrap();
        assert_eq!(from_json, from_mp);
        assert_eq!(from_json["type"], "message");
        assert_eq!(from_json["id"], msg.id.to_string());
        assert_eq!(from_json["from"], serde_json::json!({"id": "u1"}));

        // The complete frames carry the same payloads after their headers.
        let event = ServerEvent::Message(&msg);
        let text = Encoding::Json.encode_frame(&event);
        assert_eq!((text[0], usize::from(text[1])), (0x81, json.len()));
        assert_eq!(&text[2..], json.as_bytes());
        let binary = Encoding::MsgPack.encode_frame(&event);
        assert_eq!((binary[0], usize::from(binary[1])), (0x82, mp.len()));
        assert_eq!(&binary[2..], &mp[..]);
    }

    #[test]
    fn parses_names() {
        assert_eq!(Encoding::parse("msgpack"), Some(Encoding::MsgPack));
        assert_eq!(Encoding::parse(SUBPROTOCOL_JSON), Some(Encoding::Json));
        assert_eq!(Encoding::parse("xml"), None);
    }
}

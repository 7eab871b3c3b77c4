//! The Chorus wire protocol: what clients send ([`Command`], one type per kind in [`commands`]), what they receive
//! ([`ServerEvent`]), what nodes send each other ([`Envelope`]), and how each is
//! encoded. No I/O lives here; see `docs/protocol.md` for the prose description.

mod codec;
mod codes;
mod command;
mod envelope;
mod event;
mod room;
pub mod websocket;

pub use codec::{Encoding, Frame, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
pub use codes::{ErrorCode, close};
pub use command::{
    Before, Command, CommandError, CommandKind, MAX_ATTACHMENTS, MAX_CLIENT_MSG_ID_BYTES,
    MAX_EMOJI_BYTES, MAX_MENTIONS, MAX_REF_BYTES, MAX_SEARCH_BYTES, MAX_SEARCH_LIMIT,
    MAX_SEARCH_OFFSET, MAX_SEARCH_ROOMS, MAX_TOKEN_BYTES, MAX_USER_ID_BYTES, Ref, Resume, Target,
    commands, decode_json, decode_msgpack,
};
pub use envelope::{
    ChangeKind, ENVELOPE_VERSION, Envelope, EnvelopeBody, EnvelopeError, MessageChange, NoticeKind,
    PresenceSignal, ReceiptSignal, StatusSignal, TypingSignal, UserNotice, unix_micros,
};
pub use event::{
    Attachment, ChatMessage, ErrorReply, Limits, Present, Reaction, ReadMarker, SavedDraft,
    SearchHit, Sender, SenderKind, ServerEvent, SnippetPart, Welcome,
};
pub use room::{DIRECT_PREFIX, MAX_ROOM_NAME_BYTES, RoomName, RoomNameError, USER_SHARDS};

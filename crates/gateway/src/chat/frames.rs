//! Encoding an event once per encoding, for every recipient: the frame is a
//! shared buffer, so handing it to one more outbox allocates nothing.

use axum::extract::ws::Message;
use chorus_protocol::{Encoding, Frame, ServerEvent};

/// One event and its frames, each encoded on first use.
pub struct Frames<'e> {
    /// The event.
    event: &'e ServerEvent<'e>,
    /// Its frame per encoding, once encoded.
    encoded: [Option<Message>; Encoding::ALL.len()],
}

impl<'e> Frames<'e> {
    /// Frames of `event`, none encoded yet.
    pub fn new(event: &'e ServerEvent<'e>) -> Self {
        Self {
            event,
            encoded: Default::default(),
        }
    }

    /// The frame for `encoding` (a cheap clone of the shared buffer).
    pub fn get(&mut self, encoding: Encoding) -> Message {
        self.encoded[encoding.index()]
            .get_or_insert_with(|| encode(encoding, self.event))
            .clone()
    }
}

/// `event` as one WebSocket message in `encoding`.
pub fn encode(encoding: Encoding, event: &ServerEvent<'_>) -> Message {
    match encoding.encode(event) {
        Frame::Text(text) => Message::Text(text.into()),
        Frame::Binary(bytes) => Message::Binary(bytes.into()),
    }
}

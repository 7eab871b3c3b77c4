//! Encoding an event once per encoding, for every recipient: the complete
//! WebSocket frame (header and payload) is one shared buffer, so handing it to
//! one more outbox allocates nothing, and the connection writes it as it is.

use bytes::Bytes;
use chorus_protocol::{Encoding, ServerEvent};

/// One event and its frames, each encoded on first use.
pub struct Frames<'e> {
    /// The event.
    event: &'e ServerEvent<'e>,
    /// Its frame per encoding, once encoded.
    encoded: [Option<Bytes>; Encoding::ALL.len()],
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
    pub fn get(&mut self, encoding: Encoding) -> Bytes {
        self.encoded[encoding.index()]
            .get_or_insert_with(|| encode(encoding, self.event))
            .clone()
    }
}

/// `event` as one complete WebSocket frame in `encoding`.
pub fn encode(encoding: Encoding, event: &ServerEvent<'_>) -> Bytes {
    encoding.encode_frame(event)
}

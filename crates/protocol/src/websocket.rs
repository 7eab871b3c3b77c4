//! WebSocket framing (RFC 6455) for the server side, without I/O.
//!
//! Server frames are never masked, so a message's complete frame (header and
//! payload) is the same bytes for every recipient: [`server_frame`] and
//! [`crate::Encoding::encode_frame`] build it once, and connections write the
//! shared buffer as it is. Client frames go through a [`Decoder`], which keeps
//! nothing between reads but the bytes of an incomplete frame (and of a
//! fragmented message), enforces the RFC's rules for a server (masked client
//! frames, no reserved bits or unknown opcodes, short final control frames,
//! valid UTF-8 text and close frames) and the message size bound.

use bytes::Bytes;
use sha1::{Digest, Sha1};

/// Opcodes (RFC 6455 §5.2).
pub mod opcode {
    /// A further fragment of a message.
    pub const CONTINUATION: u8 = 0x0;
    /// A UTF-8 text message.
    pub const TEXT: u8 = 0x1;
    /// A binary message.
    pub const BINARY: u8 = 0x2;
    /// The closing handshake.
    pub const CLOSE: u8 = 0x8;
    /// A ping, answered with a pong carrying the same payload.
    pub const PING: u8 = 0x9;
    /// A pong.
    pub const PONG: u8 = 0xA;
}

/// Longest header of a server frame (no mask key): 2 bytes and a 64-bit length.
pub const MAX_SERVER_HEADER: usize = 10;

/// Longest payload of a control frame.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The GUID of `Sec-WebSocket-Accept` (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a request's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The header of a final, unmasked server frame: its bytes are the first
/// `.1` of `.0`.
pub fn server_header(opcode: u8, payload_len: usize) -> ([u8; MAX_SERVER_HEADER], usize) {
    let mut header = [0; MAX_SERVER_HEADER];
    header[0] = 0x80 | opcode;
    let used = match payload_len {
        short @ 0..=125 => {
            header[1] = short as u8;
            2
        }
        medium @ 126..=0xFFFF => {
            header[1] = 126;
            header[2..4].copy_from_slice(&(medium as u16).to_be_bytes());
            4
        }
        long => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(long as u64).to_be_bytes());
            10
        }
    };
    (header, used)
}

/// Turns `buffer`, whose first [`MAX_SERVER_HEADER`] bytes were reserved and
/// the rest is the payload, into one complete frame without copying the payload.
pub fn frame_in_place(opcode: u8, mut buffer: Vec<u8>) -> Bytes {
    let payload_len = buffer.len() - MAX_SERVER_HEADER;
    let (header, used) = server_header(opcode, payload_len);
    let start = MAX_SERVER_HEADER - used;
    buffer[start..MAX_SERVER_HEADER].copy_from_slice(&header[..used]);
    Bytes::from(buffer).slice(start..)
}

/// A complete server frame carrying `payload`.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut buffer = Vec::with_capacity(MAX_SERVER_HEADER + payload.len());
    buffer.resize(MAX_SERVER_HEADER, 0);
    buffer.extend_from_slice(payload);
    frame_in_place(opcode, buffer)
}

/// A close frame with `code` and a reason (cut to fit a control frame).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    server_frame(opcode::CLOSE, &payload)
}

/// One whole message or control frame from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping: answer with a pong carrying this payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The client closes, with its close code if it gave one.
    Close(Option<u16>),
}

/// Why a client's bytes end the connection, and the close code that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A rule of the RFC broken (close code 1002).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A message longer than the bound (close code 1009).
    #[error("message exceeds max_frame_bytes")]
    TooBig,
    /// A text message or close reason that is not UTF-8 (close code 1007).
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
}

impl FrameError {
    /// The close code to send before closing.
    pub fn close_code(self) -> u16 {
        match self {
            Self::Protocol(_) => 1002,
            Self::TooBig => 1009,
            Self::InvalidUtf8 => 1007,
        }
    }
}

/// Decodes a client's byte stream into whole messages.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Largest message (all fragments together), in bytes.
    max_message: usize,
    /// Bytes of a frame not complete yet; empty between frames.
    partial: Vec<u8>,
    /// A fragmented message being gathered: whether it is text, and its
    /// bytes so far (boxed: rare, and every connection holds a decoder).
    fragments: Option<Box<(bool, Vec<u8>)>>,
}

/// A parsed frame header.
struct Header {
    /// Last frame of its message.
    fin: bool,
    /// The opcode.
    opcode: u8,
    /// The client's mask key.
    mask: [u8; 4],
    /// Bytes of the header, mask key included.
    len: usize,
    /// Bytes of the payload.
    payload_len: usize,
}

impl Decoder {
    /// A decoder for messages of at most `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            ..Self::default()
        }
    }

    /// Bytes held between reads (an incomplete frame and a fragmented message).
    pub fn held(&self) -> usize {
        self.partial.capacity() + self.fragments.as_ref().map_or(0, |f| f.1.capacity())
    }

    /// Decodes `input`, the bytes just read, appending each whole message or
    /// control frame to `out`, and keeps the bytes of an incomplete frame for
    /// the next call. After an error the connection must be closed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Incoming>) -> Result<(), FrameError> {
        if self.partial.is_empty() {
            let used = self.decode(input, out)?;
            self.partial.extend_from_slice(&input[used..]);
        } else {
            let mut partial = std::mem::take(&mut self.partial);
            partial.extend_from_slice(input);
            let used = self.decode(&partial, out)?;
            if used == partial.len() {
                // Give the capacity back: an idle connection keeps no buffer.
                partial = Vec::new();
            } else {
                partial.drain(..used);
            }
            self.partial = partial;
        }
        Ok(())
    }

    /// Decodes the whole frames at the start of `bytes`; returns their length.
    fn decode(&mut self, bytes: &[u8], out: &mut Vec<Incoming>) -> Result<usize, FrameError> {
        let mut at = 0;
        while let Some(header) = self.header(&bytes[at..])? {
            let end = at + header.len + header.payload_len;
            if bytes.len() < end {
                break;
            }
            let payload = unmask(&bytes[at + header.len..end], header.mask);
            at = end;
            self.frame(&header, payload, out)?;
        }
        Ok(at)
    }

    fn header(&self, bytes: &[u8]) -> Result<Option<Header>, FrameError> {
        let [first, second, ..] = *bytes else {
            return Ok(None);
        };
        let (fin, opcode) = (first & 0x80 != 0, first & 0x0F);
        if first & 0x70 != 0 {
            return Err(FrameError::Protocol("reserved bits set"));
        }
        if second & 0x80 == 0 {
            return Err(FrameError::Protocol("client frames must be masked"));
        }
        let (payload_len, len_bytes) = match second & 0x7F {
            126 if bytes.len() >= 4 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 2),
            127 if bytes.len() >= 10 => {
                let mut length = [0; 8];
                length.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(length), 8)
            }
            126 | 127 => return Ok(None),
            short => (u64::from(short), 0),
        };
        match opcode {
            opcode::CLOSE | opcode::PING | opcode::PONG => {
                if !fin {
                    return Err(FrameError::Protocol("fragmented control frame"));
                }
                if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(FrameError::Protocol("control frame over 125 bytes"));
                }
            }
            opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {}
            _ => return Err(FrameError::Protocol("unknown opcode")),
        }
        let held = self.fragments.as_ref().map_or(0, |f| f.1.len()) as u64;
        if payload_len.saturating_add(held) > self.max_message as u64 {
            return Err(FrameError::TooBig);
        }
        let at = 2 + len_bytes;
        let Some(mask) = bytes.get(at..at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            len: at + 4,
            payload_len: payload_len as usize,
        }))
    }

    fn frame(
        &mut self,
        header: &Header,
        payload: Vec<u8>,
        out: &mut Vec<Incoming>,
    ) -> Result<(), FrameError> {
        match header.opcode {
            opcode::PING => out.push(Incoming::Ping(payload)),
            opcode::PONG => out.push(Incoming::Pong),
            opcode::CLOSE => out.push(Incoming::Close(close_code(&payload)?)),
            opcode::TEXT | opcode::BINARY => {
                if self.fragments.is_some() {
                    return Err(FrameError::Protocol(
                        "a new message inside a fragmented one",
                    ));
                }
                let text = header.opcode == opcode::TEXT;
                if header.fin {
                    out.push(message(text, payload)?);
                } else {
                    self.fragments = Some(Box::new((text, payload)));
                }
            }
            _ => {
                let Some(mut fragments) = self.fragments.take() else {
                    return Err(FrameError::Protocol("a continuation without a message"));
                };
                fragments.1.extend_from_slice(&payload);
                if header.fin {
                    let (text, gathered) = *fragments;
                    out.push(message(text, gathered)?);
                } else {
                    self.fragments = Some(fragments);
                }
            }
        }
        Ok(())
    }
}

fn unmask(masked: &[u8], mask: [u8; 4]) -> Vec<u8> {
    masked
        .iter()
        .zip(mask.iter().cycle())
        .map(|(byte, key)| byte ^ key)
        .collect()
}

fn message(text: bool, payload: Vec<u8>) -> Result<Incoming, FrameError> {
    if text {
        String::from_utf8(payload)
            .map(Incoming::Text)
            .map_err(|_| FrameError::InvalidUtf8)
    } else {
        Ok(Incoming::Binary(payload))
    }
}

/// The code of a close frame's payload (RFC 6455 §5.5.1, §7.4).
fn close_code(payload: &[u8]) -> Result<Option<u16>, FrameError> {
    let (code, reason) = match payload {
        [] => return Ok(None),
        [_] => return Err(FrameError::Protocol("a close payload of one byte")),
        [high, low, reason @ ..] => (u16::from_be_bytes([*high, *low]), reason),
    };
    if std::str::from_utf8(reason).is_err() {
        return Err(FrameError::InvalidUtf8);
    }
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => Ok(Some(code)),
        _ => Err(FrameError::Protocol("a close code that may not be sent")),
    }
}

#[cfg(test)]
mod tests;

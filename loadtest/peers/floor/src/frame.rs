//! The parts of RFC 6455 the floor needs: the opening handshake, a client
//! frame's header (masked, unfragmented), and building a server frame.

use std::rc::Rc;

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Opcode of a text frame.
pub const TEXT: u8 = 0x1;
/// Opcode of a pong frame.
pub const PONG: u8 = 0xA;

/// What the start of a client's byte stream holds.
#[derive(Debug, PartialEq)]
pub enum Parsed<'a> {
    /// Not a whole frame yet.
    Incomplete,
    /// A text frame: its masked payload and mask, and the frame's length.
    Text {
        masked: &'a [u8],
        mask: [u8; 4],
        length: usize,
    },
    /// A ping, answered with a pong carrying the same payload.
    Ping {
        masked: &'a [u8],
        mask: [u8; 4],
        length: usize,
    },
    /// A frame the floor does not act on (pong, binary).
    Ignored { length: usize },
    /// The client closes, or broke a rule: answer with this close code and go.
    Close { code: u16 },
}

/// The `Sec-WebSocket-Key` of a complete upgrade request at the start of
/// `bytes`, and the request's length; `Ok(None)` while incomplete.
pub fn handshake(bytes: &[u8]) -> Result<Option<(String, usize)>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(length) = request.parse(bytes)? else {
        return Ok(None);
    };
    let key = request
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("sec-websocket-key"))
        .and_then(|header| std::str::from_utf8(header.value).ok())
        .ok_or(httparse::Error::HeaderName)?;
    Ok(Some((key.trim().to_owned(), length)))
}

/// `Sec-WebSocket-Accept` for a key.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Parses the client frame at the start of `bytes`.
pub fn parse(bytes: &[u8], max_payload: usize) -> Parsed<'_> {
    let [first, second, ..] = *bytes else {
        return Parsed::Incomplete;
    };
    let (fin, reserved, opcode) = (first & 0x80 != 0, first & 0x70, first & 0x0F);
    if reserved != 0 || second & 0x80 == 0 {
        return Parsed::Close { code: 1002 };
    }
    let (payload_len, mut at) = match second & 0x7F {
        126 if bytes.len() >= 4 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
        127 if bytes.len() >= 10 => {
            let mut length = [0; 8];
            length.copy_from_slice(&bytes[2..10]);
            (u64::from_be_bytes(length), 10)
        }
        126 | 127 => return Parsed::Incomplete,
        short => (u64::from(short), 2),
    };
    if payload_len > max_payload as u64 {
        return Parsed::Close { code: 1009 };
    }
    let payload_len = payload_len as usize;
    if bytes.len() < at + 4 + payload_len {
        return Parsed::Incomplete;
    }
    let mask = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
    at += 4;
    let masked = &bytes[at..at + payload_len];
    let length = at + payload_len;
    match (fin, opcode) {
        (false, _) | (true, 0x0) => Parsed::Close { code: 1003 },
        (true, 0x1) => Parsed::Text {
            masked,
            mask,
            length,
        },
        (true, 0x9) => Parsed::Ping {
            masked,
            mask,
            length,
        },
        (true, 0x2 | 0xA) => Parsed::Ignored { length },
        (true, 0x8) => Parsed::Close { code: 1000 },
        _ => Parsed::Close { code: 1002 },
    }
}

/// A complete unmasked server frame with the unmasked payload, built once and
/// shared by every recipient.
pub fn server_frame(opcode: u8, masked: &[u8], mask: [u8; 4]) -> Rc<[u8]> {
    let mut frame = Vec::with_capacity(masked.len() + 10);
    frame.push(0x80 | opcode);
    match masked.len() {
        short @ 0..=125 => frame.push(short as u8),
        medium @ 126..=0xFFFF => {
            frame.push(126);
            frame.extend_from_slice(&(medium as u16).to_be_bytes());
        }
        long => {
            frame.push(127);
            frame.extend_from_slice(&(long as u64).to_be_bytes());
        }
    }
    frame.extend(masked.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    Rc::from(frame)
}

/// A close frame with `code`.
pub fn close_frame(code: u16) -> Rc<[u8]> {
    let [high, low] = code.to_be_bytes();
    Rc::from(vec![0x88, 2, high, low])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut frame = server_frame(opcode, payload, [0; 4]).to_vec();
        frame[1] |= 0x80;
        let at = frame.len() - payload.len();
        frame.splice(at..at, mask);
        for (index, byte) in frame[at + 4..].iter_mut().enumerate() {
            *byte ^= mask[index % 4];
        }
        frame
    }

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn a_masked_text_frame_becomes_an_unmasked_server_frame() {
        for size in [0, 5, 125, 126, 300, 70_000] {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let bytes = client_frame(TEXT, &payload, [1, 2, 3, 4]);
            let Parsed::Text {
                masked,
                mask,
                length,
            } = parse(&bytes, 100_000)
            else {
                panic!("not text at {size}");
            };
            assert_eq!(length, bytes.len());
            let built = server_frame(TEXT, masked, mask);
            assert_eq!(&built[built.len() - size..], &payload[..]);
            assert!(matches!(
                parse(&bytes[..bytes.len() - 1], 100_000),
                Parsed::Incomplete
            ));
        }
    }

    #[test]
    fn bad_frames_close() {
        let unmasked = server_frame(TEXT, b"hi", [0; 4]);
        assert_eq!(parse(&unmasked, 10), Parsed::Close { code: 1002 });
        let big = client_frame(TEXT, &[0; 200], [9; 4]);
        assert_eq!(parse(&big, 100), Parsed::Close { code: 1009 });
        let mut fragment = client_frame(TEXT, b"hi", [9; 4]);
        fragment[0] &= 0x7F;
        assert_eq!(parse(&fragment, 10), Parsed::Close { code: 1003 });
    }

    #[test]
    fn the_handshake_waits_for_the_whole_request() {
        let request = b"GET /ws HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: abc==\r\n\r\n";
        assert_eq!(handshake(&request[..20]).unwrap(), None);
        assert_eq!(
            handshake(request).unwrap(),
            Some(("abc==".to_owned(), request.len()))
        );
    }
}

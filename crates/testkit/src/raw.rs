//! A WebSocket client at the byte level, for behaviour a well-behaved library
//! would hide: one that never answers pings, because it never writes.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::WAIT;

/// A frame read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// The unmasked payload.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code, for a close frame that has one.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// A connection that completed the handshake and then only listens.
pub struct SilentClient {
    /// The socket.
    stream: TcpStream,
    /// Bytes after the HTTP response.
    buffer: Vec<u8>,
}

impl SilentClient {
    /// Upgrades `GET /ws` on `addr` as a new user and writes nothing afterwards.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, Some(&crate::token(&crate::fresh_user()))).await
    }

    /// Upgrades `GET /ws` on `addr`, with `token` if given, and writes nothing afterwards.
    pub async fn connect_with(addr: SocketAddr, token: Option<&str>) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connecting");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("sending the upgrade");
        let mut buffer = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("upgrade in time")
                .expect("read");
            assert!(n > 0, "connection closed during the upgrade");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        assert!(
            buffer.starts_with(b"HTTP/1.1 101"),
            "upgrade refused: {}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.drain(..head_end);
        Self { stream, buffer }
    }

    /// Reads until the server closes the TCP connection; returns every frame it sent.
    pub async fn frames_until_closed(mut self) -> Vec<RawFrame> {
        tokio::time::timeout(WAIT, self.stream.read_to_end(&mut self.buffer))
            .await
            .expect("the server closes in time")
            .expect("reading");
        parse_frames(&self.buffer)
    }
}

fn parse_frames(mut bytes: &[u8]) -> Vec<RawFrame> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, header) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if bytes.len() < header + len {
            break;
        }
        frames.push(RawFrame {
            opcode,
            payload: bytes[header..header + len].to_vec(),
        });
        bytes = &bytes[header + len..];
    }
    frames
}

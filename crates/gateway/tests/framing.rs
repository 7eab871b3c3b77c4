//! The node's own WebSocket layer against a raw TCP client: the opening
//! handshake (RFC 6455 §4.2), the framing rules a server enforces (§5), and
//! what a client may do that libraries rarely do (fragments, pings between
//! fragments, a close without a code).

use std::time::Duration;

use chorus_testkit::{BackplaneKind, Cluster};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

const WAIT: Duration = Duration::from_secs(15);
/// The key of RFC 6455's example, and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Sends a raw HTTP request and reads the response head.
async fn request(stream: &mut TcpStream, head: &str) -> String {
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        let read = timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("a response in time");
        assert_eq!(
            read.unwrap(),
            1,
            "closed before the response's end: {response:?}"
        );
        response.push(byte[0]);
    }
    String::from_utf8(response).unwrap()
}

fn upgrade_head(addr: &str, extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut bytes = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        short @ 0..=125 => bytes.push(0x80 | short as u8),
        medium => {
            bytes.push(0x80 | 126);
            bytes.extend_from_slice(&(medium as u16).to_be_bytes());
        }
    }
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    bytes
}

/// Reads one server frame: (opcode, payload). Server frames are never masked.
async fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    timeout(WAIT, async {
        let mut head = [0; 2];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7F {
            126 => usize::from(stream.read_u16().await.unwrap()),
            127 => stream.read_u64().await.unwrap() as usize,
            short => usize::from(short),
        };
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await.unwrap();
        assert_eq!(head[0] & 0x80, 0x80, "server frames are final");
        (head[0] & 0x0F, payload)
    })
    .await
    .expect("a frame in time")
}

/// Reads frames until a text event of `kind`.
async fn event(stream: &mut TcpStream, kind: &str) -> Value {
    loop {
        let (opcode, payload) = read_frame(stream).await;
        assert_eq!(opcode, 1, "expected text, got opcode {opcode}: {payload:?}");
        let event: Value = serde_json::from_slice(&payload).unwrap();
        if event["type"] == kind {
            return event;
        }
    }
}

/// An upgraded raw connection (anonymous: it may only ping before `auth`).
async fn open(cluster: &Cluster) -> TcpStream {
    let addr = cluster.nodes[0].addr.to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let response = request(&mut stream, &upgrade_head(&addr, "")).await;
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    event(&mut stream, "welcome").await;
    stream
}

/// The close frame's code.
async fn close_code(stream: &mut TcpStream) -> u16 {
    loop {
        let (opcode, payload) = read_frame(stream).await;
        if opcode == 8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_follows_the_rfc_and_refuses_what_is_not_an_upgrade() {
    let cluster = Cluster::start(BackplaneKind::InProcess, 1).await;
    let addr = cluster.nodes[0].addr.to_string();

    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let offered = "Sec-WebSocket-Protocol: other, chorus.msgpack\r\n";
    let response = request(&mut stream, &upgrade_head(&addr, offered)).await;
    let lower = response.to_ascii_lowercase();
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert!(lower.contains(&format!(
        "sec-websocket-accept: {}",
        ACCEPT.to_ascii_lowercase()
    )));
    assert!(
        lower.contains("sec-websocket-protocol: chorus.msgpack"),
        "{response}"
    );
    let (opcode, _) = read_frame(&mut stream).await;
    assert_eq!(
        opcode, 2,
        "the welcome comes in MessagePack, a binary frame"
    );

    let mut plain = TcpStream::connect(&addr).await.unwrap();
    let response = request(
        &mut plain,
        &format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");

    let mut old = TcpStream::connect(&addr).await.unwrap();
    let head = upgrade_head(&addr, "").replace("Version: 13", "Version: 8");
    let response = request(&mut old, &head).await;
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{response}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_and_pings_between_them_make_one_command() {
    let cluster = Cluster::start(BackplaneKind::InProcess, 1).await;
    let mut stream = open(&cluster).await;
    let command = br#"{"type":"ping","ref":"in-three-parts"}"#;
    let mut bytes = frame(false, 1, &command[..10]);
    bytes.extend(frame(true, 9, b"between"));
    bytes.extend(frame(false, 0, &command[10..20]));
    bytes.extend(frame(true, 0, &command[20..]));
    // All at once and byte by byte: the node keeps only the incomplete frame.
    stream.write_all(&bytes[..3]).await.unwrap();
    for byte in &bytes[3..40] {
        stream.write_all(&[*byte]).await.unwrap();
    }
    stream.write_all(&bytes[40..]).await.unwrap();
    let (opcode, payload) = read_frame(&mut stream).await;
    assert_eq!(
        (opcode, payload.as_slice()),
        (10, &b"between"[..]),
        "a pong with the ping's payload"
    );
    assert_eq!(event(&mut stream, "pong").await["ref"], "in-three-parts");

    // A close without a code is echoed, and the connection ends.
    stream.write_all(&frame(true, 8, b"")).await.unwrap();
    let (opcode, _) = read_frame(&mut stream).await;
    assert_eq!(opcode, 8);
    let mut rest = Vec::new();
    let read = timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("the node hangs up");
    assert_eq!(read.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_framing_closes_with_the_code_that_says_why() {
    let cluster = Cluster::start(BackplaneKind::InProcess, 1).await;
    let unmasked = {
        let mut bytes = frame(true, 1, b"{}");
        bytes[1] &= 0x7F;
        bytes.truncate(2);
        bytes.extend_from_slice(b"{}");
        bytes
    };
    let cases: [(&str, Vec<u8>, u16); 4] = [
        ("an unmasked frame", unmasked, 1002),
        (
            "text that is not UTF-8",
            frame(true, 1, &[0xff, 0xfe, 0xfd]),
            1007,
        ),
        ("an unknown opcode", frame(true, 3, b""), 1002),
        (
            "a continuation without a message",
            frame(true, 0, b"x"),
            1002,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut stream = open(&cluster).await;
        stream.write_all(&bytes).await.unwrap();
        assert_eq!(close_code(&mut stream).await, code, "{what}");
    }
    // The node is unharmed.
    let mut stream = open(&cluster).await;
    stream
        .write_all(&frame(true, 1, br#"{"type":"ping","ref":"ok"}"#))
        .await
        .unwrap();
    assert_eq!(event(&mut stream, "pong").await["ref"], "ok");
}

/// Reads a response's body of `content-length` bytes after its head.
async fn body(stream: &mut TcpStream, head: &str) -> String {
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().unwrap())
        })
        .expect("a content-length");
    let mut body = vec![0; length];
    timeout(WAIT, stream.read_exact(&mut body))
        .await
        .expect("the body in time")
        .unwrap();
    String::from_utf8(body).unwrap()
}

/// `GET /livez` on `stream`, answered `200 ok`.
async fn assert_live(stream: &mut TcpStream, addr: &str) {
    let head = request(
        stream,
        &format!("GET /livez HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body(stream, &head).await, "ok");
}

/// A connection's first request is read by the node itself, later ones by
/// hyper: an upgrade works in both places, a refused upgrade leaves the
/// connection to HTTP, bytes sent before the `101` are not lost, and a head
/// too large for the first read goes on to hyper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_works_first_after_other_requests_and_with_frames_sent_early() {
    let cluster = Cluster::start(BackplaneKind::InProcess, 1).await;
    let addr = cluster.nodes[0].addr.to_string();

    // After a plain request on the same connection: hyper upgrades it.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    assert_live(&mut stream, &addr).await;
    let head = request(&mut stream, &upgrade_head(&addr, "")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    event(&mut stream, "welcome").await;

    // A refused first upgrade: the JSON refusal, then HTTP on the same connection.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let refused = upgrade_head(&addr, "").replace("GET /ws ", "GET /ws?encoding=xml ");
    let head = request(&mut stream, &refused).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let refusal: Value = serde_json::from_str(&body(&mut stream, &head).await).unwrap();
    assert_eq!(refusal["code"], "invalid_encoding");
    assert_live(&mut stream, &addr).await;

    // A ping sent with the upgrade, before the 101 came: answered.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let mut bytes = upgrade_head(&addr, "").into_bytes();
    bytes.extend(frame(true, 9, b"early"));
    stream.write_all(&bytes).await.unwrap();
    let head = request(&mut stream, "").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut pong = None;
    while pong.is_none() {
        match read_frame(&mut stream).await {
            (10, payload) => pong = Some(payload),
            (1, _) => {}
            (opcode, payload) => panic!("opcode {opcode}: {payload:?}"),
        }
    }
    assert_eq!(pong.unwrap(), b"early");

    // A head of 12 KiB (a large cookie): upgraded all the same.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let cookie = format!("Cookie: c={}\r\n", "x".repeat(12 * 1024));
    let head = request(&mut stream, &upgrade_head(&addr, &cookie)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    event(&mut stream, "welcome").await;
}

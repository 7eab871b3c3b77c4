//! The floor against real WebSocket clients over loopback: what the benchmarks
//! rely on (every text frame reaches every client once, in order) and the
//! rules it enforces (a ping is answered, an oversized frame closes with 1009).

use std::{process::Stdio, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    time::timeout,
};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, protocol::frame::coding::CloseCode},
};

const WAIT: Duration = Duration::from_secs(15);

/// Starts the floor on a free port; returns the process and its address.
async fn floor() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus-floor"))
        .args(["--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting chorus-floor");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = timeout(WAIT, lines.next_line())
        .await
        .expect("the floor says where it listens in time")
        .unwrap()
        .expect("a line");
    let addr = line
        .rsplit(' ')
        .next()
        .expect("an address at the end")
        .to_owned();
    (child, addr)
}

#[tokio::test]
async fn every_text_frame_reaches_every_client_once_in_order() {
    let (_floor, addr) = floor().await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let (socket, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
        clients.push(socket);
    }
    // Sizes in the 7-bit and 16-bit length forms.
    let bodies: Vec<String> = (0..30)
        .map(|i| format!("{i:04}:{}", "x".repeat([10, 200, 7_000][i % 3])))
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        clients[i % 3]
            .send(Message::text(body.clone()))
            .await
            .unwrap();
    }
    // Senders interleave, so only each sender's own messages keep their order:
    // check that every client gets the 30 bodies once each and each sender's in order.
    for client in &mut clients {
        let mut got = Vec::new();
        while got.len() < bodies.len() {
            match timeout(WAIT, client.next()).await.expect("all in time") {
                Some(Ok(Message::Text(text))) => got.push(text.to_string()),
                other => panic!("unexpected {other:?}"),
            }
        }
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, bodies, "every body once");
        for sender in 0..3 {
            let own: Vec<_> = got
                .iter()
                .filter(|body| body[..4].parse::<usize>().unwrap() % 3 == sender)
                .collect();
            assert!(own.is_sorted(), "sender {sender}'s order: {own:?}");
        }
    }
}

#[tokio::test]
async fn a_ping_is_answered_and_an_oversized_frame_closes_with_1009() {
    let (_floor, addr) = floor().await;
    let (mut socket, _) = connect_async(format!("ws://{addr}/ws")).await.unwrap();
    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    match timeout(WAIT, socket.next()).await.expect("a pong in time") {
        Some(Ok(Message::Pong(payload))) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    socket
        .send(Message::text("y".repeat(100_000)))
        .await
        .unwrap();
    match timeout(WAIT, socket.next()).await.expect("a close in time") {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close, got {other:?}"),
    }
}

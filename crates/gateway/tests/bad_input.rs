//! Bad input never crashes a node or hurts other clients; each case gets its documented code.

use chorus_testkit::{BackplaneKind, Client, Cluster, Event, http_get};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Sends `frame` and returns the error event it provokes.
async fn error_for(client: &mut Client, frame: Message) -> Value {
    client.send_frame(frame).await;
    let error = client.expect("error").await;
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "errors explain themselves: {error}"
    );
    error
}

fn text(value: &str) -> Message {
    Message::Text(value.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_command_gets_its_error_code_and_the_room_keeps_flowing() {
    let cluster = Cluster::start_with(BackplaneKind::Redis, 2, |c| c.max_rooms = 3).await;
    let mut bad = Client::connect(&cluster.url(0)).await;
    let mut honest = Client::connect(&cluster.url(1)).await;
    let mut sender = Client::connect(&cluster.url(0)).await;
    for client in [&mut bad, &mut honest, &mut sender] {
        client.join("lobby").await;
    }
    let long_body = "x".repeat(8 * 1024 + 1);
    let cases: Vec<(Message, &str)> = vec![
        (text("{not json"), "malformed_frame"),
        (text(""), "malformed_frame"),
        (Message::Binary(vec![0xc1, 0x00].into()), "malformed_frame"),
        (text(r#"{"type":"dance"}"#), "unknown_command"),
        (text(r#"{"room":"lobby"}"#), "invalid_command"),
        (text(r#"{"type":"send","room":"lobby"}"#), "invalid_command"),
        (text(r#"{"type":"join","room":42}"#), "invalid_command"),
        (
            text(r#"{"type":"join","room":"has space"}"#),
            "invalid_room",
        ),
        (
            text(&json!({"type": "join", "room": "x".repeat(129)}).to_string()),
            "invalid_room",
        ),
        (
            text(&json!({"type": "ping", "ref": "r".repeat(65)}).to_string()),
            "invalid_ref",
        ),
        (
            text(r#"{"type":"send","room":"lobby","body":""}"#),
            "empty_body",
        ),
        (
            text(&json!({"type": "send", "room": "lobby", "body": long_body}).to_string()),
            "body_too_large",
        ),
        (
            text(r#"{"type":"send","room":"elsewhere","body":"hi"}"#),
            "not_joined",
        ),
        (text(r#"{"type":"leave","room":"elsewhere"}"#), "not_joined"),
        (text(r#"{"type":"join","room":"lobby"}"#), "already_joined"),
    ];
    for (n, (frame, code)) in cases.into_iter().enumerate() {
        let error = error_for(&mut bad, frame.clone()).await;
        assert_eq!(error["code"], code, "case {n} ({frame:?}): {error}");
        // Meanwhile the room keeps working for everybody, the bad client included.
        let body = format!("honest {n}");
        sender.say_ok("lobby", &body).await;
        assert_eq!(honest.message_in("lobby").await["body"], body);
        assert_eq!(bad.message_in("lobby").await["body"], body);
    }
    // The ref comes back on errors so clients can correlate.
    bad.send(json!({"type": "send", "room": "nowhere", "body": "x", "ref": "mine"}))
        .await;
    let error = bad.expect("error").await;
    assert_eq!(
        (
            error["code"].as_str(),
            error["ref"].as_str(),
            error["room"].as_str()
        ),
        (Some("not_joined"), Some("mine"), Some("nowhere"))
    );
    // Room limit.
    bad.join("second").await;
    bad.join("third").await;
    let error = error_for(&mut bad, text(r#"{"type":"join","room":"fourth"}"#)).await;
    assert_eq!(error["code"], "too_many_rooms");
    bad.leave("third").await;
    bad.join("fourth").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgpack_connections_get_the_same_codes() {
    let cluster = Cluster::start(BackplaneKind::InProcess, 1).await;
    let mut client = Client::connect_with(&cluster.url(0), Some("chorus.msgpack")).await;
    let error = error_for(&mut client, Message::Binary(vec![0x93].into())).await;
    assert_eq!(error["code"], "malformed_frame");
    client.send(json!({"type": "fly"})).await;
    assert_eq!(client.expect("error").await["code"], "unknown_command");
    client.send(json!({"type": "send", "room": "r"})).await;
    assert_eq!(client.expect("error").await["code"], "invalid_command");
    // Text JSON on a MessagePack connection is still understood; the answer stays MessagePack.
    client
        .send_frame(text(r#"{"type":"ping","ref":"t"}"#))
        .await;
    assert_eq!(client.expect("pong").await["ref"], "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_with_1009_and_spares_others() {
    let cluster = Cluster::start(BackplaneKind::InProcess, 1).await;
    let mut big = Client::connect(&cluster.url(0)).await;
    let mut other = Client::connect(&cluster.url(0)).await;
    big.join("lobby").await;
    other.join("lobby").await;
    let frame = json!({"type": "send", "room": "lobby", "body": "x".repeat(70 * 1024)}).to_string();
    big.send_frame(text(&frame)).await;
    assert_eq!(big.closed().await, Event::Closed(1009));
    other.say_ok("lobby", "still fine").await;
    assert_eq!(other.message_in("lobby").await["body"], "still fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upgrade_requests_are_refused_before_the_upgrade() {
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, |c| c.max_connections = 2).await;
    let url = cluster.url(0);
    let refusal = Client::handshake(&format!("{url}?encoding=xml"), None)
        .await
        .unwrap_err();
    assert_refused(refusal, 400, "invalid_encoding");
    // Not a WebSocket request at all.
    let (status, _) = http_get(cluster.nodes[0].addr, "/ws").await.unwrap();
    assert!((400..500).contains(&status), "plain GET /ws: {status}");
    // The node is full at max_connections.
    let _a = Client::connect(&url).await;
    let _b = Client::connect(&url).await;
    assert_refused(
        Client::handshake(&url, None).await.unwrap_err(),
        503,
        "node_full",
    );
}

fn assert_refused(error: tokio_tungstenite::tungstenite::Error, status: u16, code: &str) {
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP refusal, got {error}")
    };
    assert_eq!(response.status().as_u16(), status);
    let body: Value =
        serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["code"], code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_carries_the_ref_and_room_the_command_carried() {
    let cluster = Cluster::start(BackplaneKind::InProcess, 1).await;
    let mut client = Client::connect(&cluster.url(0)).await;
    // The ref is read with the type, before the rest of the command.
    for frame in [
        r#"{"type":"dance","ref":"d1"}"#,
        r#"{"type":"send","room":"lobby","ref":"d1"}"#,
    ] {
        let error = error_for(&mut client, text(frame)).await;
        assert_eq!(error["ref"], "d1", "{frame}: {error}");
    }
    // A refused room command names its room, whichever check refused it.
    let error = error_for(
        &mut client,
        text(r#"{"type":"send","room":"lobby","body":"hi","ref":"s1"}"#),
    )
    .await;
    assert_eq!(
        (&error["code"], &error["ref"], &error["room"]),
        (&json!("not_joined"), &json!("s1"), &json!("lobby"))
    );
    let mut anonymous = Client::connect_anonymous(&cluster.url(0)).await;
    anonymous
        .send(json!({"type": "join", "room": "lobby", "ref": "j1"}))
        .await;
    let error = anonymous.expect("error").await;
    assert_eq!(
        (&error["code"], &error["ref"], &error["room"]),
        (&json!("unauthenticated"), &json!("j1"), &json!("lobby"))
    );
}

//! Flood protection and per-user limits: each limit answers with its own code,
//! and honest clients in the same room lose nothing meanwhile.

use chorus_gateway::{
    Config,
    auth::{Rate, RateLimits, RoomRules},
};
use chorus_testkit::{
    Client, Event, InProcessNode, eventually, fresh_user, metric, test_config, token,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn node_with(tweak: impl FnOnce(&mut Config)) -> InProcessNode {
    let mut config = test_config("limits");
    tweak(&mut config);
    InProcessNode::start(config).await
}

/// Production-like limits, tightened so a test reaches them quickly.
fn tight() -> RateLimits {
    RateLimits {
        send: Rate::new(2.0, 5),
        user_send: Rate::new(100.0, 100),
        join: Rate::new(2.0, 4),
        user_join: Rate::new(100.0, 100),
        flood_strikes: 5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_rate_limited_then_disconnected_while_others_get_everything() {
    let node = node_with(|c| c.rate_limits = tight()).await;
    let url = node.ws_url();
    let mut alice = Client::connect(&url).await;
    let mut bob = Client::connect(&url).await;
    let mut flooder = Client::connect(&url).await;
    let mut garbler = Client::connect(&url).await;
    for client in [&mut alice, &mut bob, &mut flooder, &mut garbler] {
        client.join("lobby").await;
    }

    // The flooder fires 40 sends without waiting; the garbler 40 broken frames.
    for n in 0..40 {
        flooder
            .send(json!({"type": "send", "room": "lobby", "body": format!("flood {n}"), "ref": format!("f{n}")}))
            .await;
        garbler.send_frame(Message::Text("{oops".into())).await;
    }
    // Alice stays within her limit (the burst) meanwhile.
    let mut expected = Vec::new();
    for n in 0..5 {
        let body = format!("honest {n}");
        alice.say_ok("lobby", &body).await;
        expected.push(body);
    }

    // The flooder: a few accepted, then rate_limited with a hint, then closed 4006.
    let mut accepted = Vec::new();
    let mut hint = None;
    let end = loop {
        match flooder.next().await {
            Event::Data(event) if event["type"] == "sent" => {
                let n: usize = event["ref"].as_str().unwrap()[1..].parse().unwrap();
                accepted.push(format!("flood {n}"));
            }
            Event::Data(event) if event["type"] == "error" => {
                assert_eq!(event["code"], "rate_limited", "{event}");
                hint.get_or_insert(event["retry_after_ms"].as_u64().expect("a retry hint"));
            }
            Event::Data(_) => {}
            end => break end,
        }
    };
    assert_eq!(end, Event::Closed(4006));
    assert_eq!(accepted.len(), 5, "exactly the burst got through");
    assert!(
        (1..=1000).contains(&hint.unwrap()),
        "retry_after_ms within one token's period: {hint:?}"
    );
    assert_eq!(garbler.closed().await, Event::Closed(4006));

    // Bob saw every accepted message: all of Alice's and the flooder's burst.
    let mut seen = Vec::new();
    bob.say_ok("lobby", "bob's marker").await;
    loop {
        let body = bob.message_in("lobby").await["body"]
            .as_str()
            .unwrap()
            .to_owned();
        if body == "bob's marker" {
            break;
        }
        seen.push(body);
    }
    let honest: Vec<_> = seen
        .iter()
        .filter(|b| b.starts_with("honest"))
        .cloned()
        .collect();
    let flood: Vec<_> = seen
        .iter()
        .filter(|b| b.starts_with("flood"))
        .cloned()
        .collect();
    assert_eq!(honest, expected);
    assert_eq!(flood, accepted);
    // Counted once each connection task has finished closing.
    let flooding = r#"chorus_connections_closed_total{reason="flooding"}"#;
    eventually("both floods counted", || async {
        (metric(node.addr, flooding).await == 2.0).then_some(())
    })
    .await;
    assert!(metric(node.addr, r#"chorus_rate_limited_total{kind="send"}"#).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_rate_limited_per_connection() {
    let node = node_with(|c| c.rate_limits = tight()).await;
    let mut client = Client::connect(&node.ws_url()).await;
    for room in ["a", "b", "c", "d"] {
        client.join(room).await;
    }
    client
        .send(json!({"type": "join", "room": "e", "ref": "e"}))
        .await;
    let refused = client.expect("error").await;
    assert_eq!(
        (
            refused["code"].as_str(),
            refused["room"].as_str(),
            refused["ref"].as_str()
        ),
        (Some("rate_limited"), Some("e"), Some("e"))
    );
    assert!(refused["retry_after_ms"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_shares_one_send_budget_across_connections() {
    let node = node_with(|c| {
        c.rate_limits = RateLimits {
            user_send: Rate::new(0.5, 3),
            ..RateLimits::unlimited()
        }
    })
    .await;
    let me = token(&fresh_user());
    let mut first = Client::connect_as(&node.ws_url(), &me).await;
    let mut second = Client::connect_as(&node.ws_url(), &me).await;
    let mut someone_else = Client::connect(&node.ws_url()).await;
    for client in [&mut first, &mut second, &mut someone_else] {
        client.join("lobby").await;
    }
    first.say_ok("lobby", "1").await;
    first.say_ok("lobby", "2").await;
    second.say_ok("lobby", "3").await;
    assert_eq!(second.say("lobby", "4").await["code"], "rate_limited");
    assert_eq!(first.say("lobby", "4").await["code"], "rate_limited");
    // Another user's budget is their own.
    someone_else.say_ok("lobby", "mine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_bounded() {
    let node = node_with(|c| c.max_connections_per_user = 2).await;
    let url = node.ws_url();
    let me = token(&fresh_user());
    let first = Client::connect_as(&url, &me).await;
    let _second = Client::connect_as(&url, &me).await;

    let refused = Client::handshake_request(Client::request(&url, None, Some(&me)))
        .await
        .expect_err("a third connection is refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("expected an HTTP refusal")
    };
    assert_eq!(response.status().as_u16(), 429);
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["code"], "too_many_connections");

    // The same through an auth frame: an error, then close 4005.
    let mut late = Client::connect_anonymous(&url).await;
    late.send(json!({"type": "auth", "token": me})).await;
    assert_eq!(late.expect("error").await["code"], "too_many_connections");
    assert_eq!(late.closed().await, Event::Closed(4005));

    // Another user is not affected; and a closed connection frees its slot.
    let _other = Client::connect(&url).await;
    drop(first);
    let mut third = eventually("a freed slot", || {
        let request = Client::request(&url, None, Some(&me));
        async move { Client::handshake_request(request).await.ok() }
    })
    .await;
    third.0.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_name_rules_are_configurable() {
    let node = node_with(|c| {
        c.room_rules = RoomRules {
            max_bytes: 8,
            punctuation: "-".into(),
        }
    })
    .await;
    let mut client = Client::connect(&node.ws_url()).await;
    client.join("team-1").await;
    for room in ["team.1", "much-too-long"] {
        client
            .send(json!({"type": "join", "room": room, "ref": room}))
            .await;
        let refused = client.wait_for("refusal", |v| v["ref"] == room).await;
        assert_eq!(refused["code"], "invalid_room", "{room}");
    }
    // The protocol's own bounds still hold for every node.
    let long = "x".repeat(129);
    client
        .send(json!({"type": "join", "room": long, "ref": "long"}))
        .await;
    assert_eq!(
        client.wait_for("refusal", |v| v["ref"] == "long").await["code"],
        "invalid_room"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_beyond_the_strikes_close_the_connection() {
    let node = node_with(|c| {
        c.rate_limits = RateLimits {
            flood_strikes: 3,
            ..RateLimits::unlimited()
        }
    })
    .await;
    let mut client = Client::connect(&node.ws_url()).await;
    client.join("lobby").await;
    // Three refusals use the strikes up; the connection stays open and works.
    for _ in 0..3 {
        assert_eq!(client.say("nowhere", "x").await["code"], "not_joined");
    }
    client.say_ok("lobby", "still connected").await;
    // One more refusal before a strike has refilled (one per second) is a flood.
    client
        .send(json!({"type": "send", "room": "nowhere", "body": "x"}))
        .await;
    assert_eq!(client.closed().await, Event::Closed(4006));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_honours_retry_after_is_never_closed_and_keeps_sending() {
    // Production limits: 10 sends/s with a burst of 30, 20 strikes.
    let node = node_with(|c| c.rate_limits = RateLimits::default()).await;
    let mut polite = Client::connect(&node.ws_url()).await;
    let mut reader = Client::connect(&node.ws_url()).await;
    polite.join("lobby").await;
    reader.join("lobby").await;
    // Send as fast as allowed, waiting exactly `retry_after_ms` after each
    // refusal, until 80 are accepted: the burst, then 50 at the allowed rate,
    // collecting far more than 20 `rate_limited` on the way.
    let (mut accepted, mut limited) = (Vec::new(), 0);
    while accepted.len() < 80 {
        let body = format!("polite {}", accepted.len());
        let reply = polite.say("lobby", &body).await;
        match reply["type"].as_str() {
            Some("sent") => accepted.push(body),
            _ => {
                assert_eq!(reply["code"], "rate_limited", "{reply}");
                limited += 1;
                let wait = reply["retry_after_ms"].as_u64().expect("a retry hint");
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            }
        }
    }
    assert!(limited > 20, "the limit was reached {limited} times");
    let flooding = r#"chorus_connections_closed_total{reason="flooding"}"#;
    assert_eq!(metric(node.addr, flooding).await, 0.0);
    // Everything accepted reached the room, in order.
    for body in &accepted {
        assert_eq!(&reader.message_in("lobby").await["body"], body);
    }
    // The connection is still open: its next send, once due, goes through.
    let mut last = polite.say("lobby", "still here").await;
    while last["type"] == "error" {
        assert_eq!(last["code"], "rate_limited", "{last}");
        let wait = last["retry_after_ms"].as_u64().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        last = polite.say("lobby", "still here").await;
    }
    assert_eq!(last["type"], "sent");

    // A client that ignores the hint is closed as a flood.
    let mut flooder = Client::connect(&node.ws_url()).await;
    flooder.join("lobby").await;
    for n in 0..200 {
        flooder
            .send(json!({"type": "send", "room": "lobby", "body": format!("flood {n}")}))
            .await;
    }
    loop {
        match flooder.next().await {
            Event::Data(_) => {}
            end => {
                assert_eq!(end, Event::Closed(4006));
                break;
            }
        }
    }
}

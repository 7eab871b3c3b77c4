//! Typing indicators across nodes (real Redis, three nodes): who gets them,
//! throttling, how they end, and the errors for bad typing commands.

use chorus_testkit::{BackplaneKind, Client, Cluster};
use serde_json::{Value, json};

chorus_testkit::on_redis_and_redis_cluster!(typing_reaches_the_room_on_every_node_and_no_one_else,);

fn user_id(client: &Client) -> String {
    client.welcome["user"]["id"].as_str().unwrap().to_owned()
}

async fn typing(client: &mut Client, room: &str, state: &str) {
    client
        .send(json!({"type": "typing", "room": room, "state": state}))
        .await;
}

/// Waits for the next typing event of `user` in `room`.
async fn typing_of(client: &mut Client, room: &str, user: &str) -> Value {
    client
        .wait_for("a typing event", |v| {
            v["type"] == "typing" && v["room"] == room && v["user"]["id"] == user
        })
        .await
}

async fn typing_reaches_the_room_on_every_node_and_no_one_else(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 3).await;
    let mut alice = Client::connect(&cluster.url(0)).await;
    let mut bob = Client::connect(&cluster.url(1)).await;
    let mut carol = Client::connect(&cluster.url(2)).await;
    let mut dave = Client::connect(&cluster.url(2)).await;
    for member in [&mut alice, &mut bob, &mut carol] {
        member.join("lobby").await;
    }
    dave.join("elsewhere").await;
    let alice_id = user_id(&alice);

    typing(&mut alice, "lobby", "start").await;
    for member in [&mut bob, &mut carol] {
        let event = typing_of(member, "lobby", &alice_id).await;
        assert_eq!(event["state"], "start", "{event}");
        assert_eq!(event["expires_in_ms"], 6000, "{event}");
    }
    // Dave shares carol's node: the signal was fanned out there before carol
    // read it, so anything meant for dave is queued before his pong.
    dave.sync().await;
    assert!(
        dave.pending().iter().all(|e| e["type"] != "typing"),
        "a non-member saw typing: {:?}",
        dave.pending()
    );

    typing(&mut alice, "lobby", "stop").await;
    for member in [&mut bob, &mut carol] {
        let event = typing_of(member, "lobby", &alice_id).await;
        assert_eq!(event["state"], "stop", "{event}");
    }
    dave.sync().await;
    assert!(dave.pending().iter().all(|e| e["type"] != "typing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_throttled_and_ends_with_a_send_a_leave_or_a_close() {
    let cluster = Cluster::start(BackplaneKind::Redis, 3).await;
    let mut alice = Client::connect(&cluster.url(0)).await;
    let mut bob = Client::connect(&cluster.url(1)).await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    let alice_id = user_id(&alice);

    // A burst of keystrokes: one start is relayed, then the message itself.
    for _ in 0..5 {
        typing(&mut alice, "lobby", "start").await;
    }
    alice.say_ok("lobby", "hi").await;
    let message = bob.message_in("lobby").await;
    assert_eq!(message["body"], "hi");
    let starts = bob
        .pending()
        .iter()
        .filter(|e| e["type"] == "typing" && e["state"] == "start")
        .count();
    assert_eq!(starts, 1, "throttled to one start: {:?}", bob.pending());
    typing_of(&mut bob, "lobby", &alice_id).await; // that start, read

    // The send reset the throttle: the next keystroke is relayed at once, and
    // leaving the room stops the indicator for the others.
    typing(&mut alice, "lobby", "start").await;
    assert_eq!(
        typing_of(&mut bob, "lobby", &alice_id).await["state"],
        "start"
    );
    alice.leave("lobby").await;
    assert_eq!(
        typing_of(&mut bob, "lobby", &alice_id).await["state"],
        "stop"
    );

    // A connection that closes while typing stops too.
    let mut erin = Client::connect(&cluster.url(2)).await;
    erin.join("lobby").await;
    let erin_id = user_id(&erin);
    typing(&mut erin, "lobby", "start").await;
    assert_eq!(
        typing_of(&mut bob, "lobby", &erin_id).await["state"],
        "start"
    );
    erin.close().await;
    assert_eq!(
        typing_of(&mut bob, "lobby", &erin_id).await["state"],
        "stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_typing_commands_get_clear_errors() {
    let cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let mut alice = Client::connect(&cluster.url(0)).await;
    alice.join("lobby").await;

    let reply = alice
        .request_reply(json!({"type": "typing", "room": "elsewhere"}))
        .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "not_joined", "{reply}");
    assert_eq!(reply["room"], "elsewhere", "{reply}");

    let reply = alice
        .request_reply(json!({"type": "typing", "room": "lobby", "state": "maybe"}))
        .await;
    assert_eq!(reply["code"], "invalid_command", "{reply}");

    let reply = alice
        .request_reply(json!({"type": "typing", "room": "not a room!"}))
        .await;
    assert_eq!(reply["code"], "invalid_room", "{reply}");
    // Still connected and working.
    alice.sync().await;
}

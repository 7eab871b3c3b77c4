//! Edits, deletes and reactions across nodes (real Redis, three nodes): each
//! change takes its place in the room's order, reaches every member live, is
//! applied in history (current text and an edited mark, tombstones, reaction
//! counts and who) and replayed on resume; bad changes get clear errors.

use std::time::Duration;

use chorus_gateway::auth::{RoomClaims, TokenRequest};
use chorus_testkit::{
    BackplaneKind, Client, Cluster, fresh_user, http_get_authorized, token, token_for,
};
use serde_json::{Value, json};

async fn change(client: &mut Client, command: Value) -> Value {
    client.request_reply(command).await
}

/// Makes a change and asserts it was taken; returns its sequence number.
async fn change_ok(client: &mut Client, command: Value) -> u64 {
    let reply = change(client, command.clone()).await;
    assert_eq!(reply["type"], "changed", "{command} -> {reply}");
    reply["seq"]
        .as_u64()
        .expect("a change that changed something has a seq")
}

async fn refused(client: &mut Client, command: Value, code: &str) {
    let reply = change(client, command.clone()).await;
    assert_eq!(reply["type"], "error", "{command} -> {reply}");
    assert_eq!(reply["code"], code, "{command} -> {reply}");
}

/// The next change event (`edited`, `deleted` or `reaction`) in the room.
async fn next_change(client: &mut Client, room: &str) -> Value {
    client
        .wait_for("a change", |v| {
            matches!(v["type"].as_str(), Some("edited" | "deleted" | "reaction"))
                && v["room"] == room
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_ordered_live_applied_in_history_and_replayed_on_resume() {
    changes_flow(BackplaneKind::Redis).await;
}

/// The single-node backplane keeps the same rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_work_the_same_on_the_in_process_backplane() {
    changes_flow(BackplaneKind::InProcess).await;
}

async fn changes_flow(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 3).await;
    let (alice_id, carol_id) = (fresh_user(), fresh_user());
    let mut alice = Client::connect_as(&cluster.url(0), &token(&alice_id)).await;
    let mut bob = Client::connect(&cluster.url(1)).await;
    let mut carol = Client::connect_as(&cluster.url(2), &token(&carol_id)).await;
    let mut dave = Client::connect(&cluster.url(2)).await;
    let joined = bob.join_with("lobby", json!({})).await;
    alice.join("lobby").await;
    carol.join("lobby").await;
    dave.join("elsewhere").await;
    let epoch = joined["epoch"].clone();
    let first = alice.say_ok("lobby", "m1").await;
    alice.say_ok("lobby", "m2").await;
    alice.say_ok("lobby", "m3").await;
    assert_eq!(
        bob.messages_in("lobby", 3).await,
        vec![(1, "m1".into()), (2, "m2".into()), (3, "m3".into())]
    );
    // Bob goes away after message 3; he resumes later.
    drop(bob);

    let edit = json!({"type": "edit", "room": "lobby", "seq": 1, "id": first, "body": "m1 fixed"});
    assert_eq!(change_ok(&mut alice, edit).await, 4);
    let edited = next_change(&mut carol, "lobby").await;
    assert_eq!(edited["type"], "edited", "{edited}");
    assert_eq!(
        (edited["seq"].as_u64(), edited["target"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(edited["body"], "m1 fixed");
    assert_eq!(edited["by"]["id"], alice_id.as_str());

    let react = |seq: u64, emoji: &str| json!({"type": "react", "room": "lobby", "seq": seq, "emoji": emoji});
    assert_eq!(change_ok(&mut carol, react(2, "👍")).await, 5);
    assert_eq!(change_ok(&mut alice, react(2, "👍")).await, 6);
    assert_eq!(change_ok(&mut alice, react(2, "🎉")).await, 7);
    // The same reaction twice changes nothing and takes no place in the order.
    let again = change(&mut alice, react(2, "👍")).await;
    assert_eq!(again["type"], "changed", "{again}");
    assert!(again.get("seq").is_none(), "{again}");
    let unreact = json!({"type": "unreact", "room": "lobby", "seq": 2, "emoji": "👍"});
    assert_eq!(change_ok(&mut carol, unreact).await, 8);
    let delete = json!({"type": "delete", "room": "lobby", "seq": 3});
    assert_eq!(change_ok(&mut alice, delete).await, 9);

    // Every member sees every change live, in order.
    let mut seen = Vec::new();
    for _ in 4..=9 {
        let event = next_change(&mut alice, "lobby").await;
        seen.push((
            event["seq"].as_u64().unwrap(),
            event["type"].as_str().unwrap().to_owned(),
            event["action"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let expected: Vec<(u64, String, String)> = [
        (4, "edited", ""),
        (5, "reaction", "add"),
        (6, "reaction", "add"),
        (7, "reaction", "add"),
        (8, "reaction", "remove"),
        (9, "deleted", ""),
    ]
    .iter()
    .map(|(s, t, a)| (*s, (*t).to_owned(), (*a).to_owned()))
    .collect();
    assert_eq!(seen, expected);
    // A non-member sees none of it.
    dave.sync().await;
    assert!(
        dave.pending().iter().all(|e| e["room"] != "lobby"),
        "a non-member saw the room: {:?}",
        dave.pending()
    );

    // History has the messages as they are now, and no change entries.
    let page = alice
        .request_reply(json!({"type": "history", "room": "lobby"}))
        .await;
    let messages = page["messages"].as_array().expect("a history page");
    assert_eq!(messages.len(), 3, "{page}");
    assert_eq!(messages[0]["body"], "m1 fixed");
    assert!(messages[0]["edited"].as_u64().is_some(), "{page}");
    assert_eq!(
        messages[1]["reactions"],
        json!([
            {"emoji": "👍", "count": 1, "users": [alice_id]},
            {"emoji": "🎉", "count": 1, "users": [alice_id]},
        ])
    );
    assert!(messages[1].get("edited").is_none(), "{page}");
    assert_eq!(messages[2]["deleted"], true, "{page}");
    assert_eq!(messages[2]["body"], "", "{page}");
    // So does the HTTP history.
    let (status, body) = http_get_authorized(
        cluster.nodes[1].addr,
        "/api/rooms/lobby/messages",
        &token(&fresh_user()),
    )
    .await
    .expect("GET history");
    assert_eq!(status, 200, "{body}");
    let http: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(http["messages"], page["messages"], "{body}");

    // Bob resumes on another node after message 3: exactly the changes follow, in order.
    let mut bob = Client::connect(&cluster.url(2)).await;
    let joined = bob
        .join_with("lobby", json!({"epoch": epoch, "after": 3}))
        .await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let mut replayed = Vec::new();
    for _ in 4..=9 {
        let event = next_change(&mut bob, "lobby").await;
        replayed.push((
            event["seq"].as_u64().unwrap(),
            event["type"].as_str().unwrap().to_owned(),
            event["action"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    assert_eq!(replayed, expected);
    // A fresh join gets the current state; changes are not unread messages.
    let mut erin = Client::connect(&cluster.url(1)).await;
    let joined = erin.join_with("lobby", json!({})).await;
    assert_eq!(joined["seq"], 9, "{joined}");
    assert_eq!(joined["unread"], 3, "{joined}");
    let current = erin.messages_in("lobby", 3).await;
    assert_eq!(
        current,
        vec![(1, "m1 fixed".into()), (2, "m2".into()), (3, String::new())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_changes_are_refused_and_moderators_may_change_anyones() {
    let cluster = Cluster::start(BackplaneKind::Redis, 3).await;
    let mut alice = Client::connect(&cluster.url(0)).await;
    let mut carol = Client::connect(&cluster.url(1)).await;
    let moderator_token = token_for(TokenRequest {
        sub: fresh_user(),
        ttl: Duration::from_secs(600),
        rooms: RoomClaims {
            join: vec!["*".into()],
            post: vec!["*".into()],
            moderate: vec!["mod.*".into()],
        },
        ..TokenRequest::default()
    });
    let mut moderator = Client::connect_as(&cluster.url(2), &moderator_token).await;
    let room = "mod.general";
    for client in [&mut alice, &mut carol, &mut moderator] {
        client.join(room).await;
    }
    alice.say_ok(room, "alice's").await;
    alice.say_ok(room, "to delete").await;
    let react = |seq: u64| json!({"type": "react", "room": room, "seq": seq, "emoji": "👍"});
    assert_eq!(change_ok(&mut carol, react(1)).await, 3);

    let edit = |seq: u64| json!({"type": "edit", "room": room, "seq": seq, "body": "x"});
    // Someone else's message.
    refused(&mut carol, edit(1), "not_your_message").await;
    let delete = |seq: u64| json!({"type": "delete", "room": room, "seq": seq});
    refused(&mut carol, delete(1), "not_your_message").await;
    // Not in the room's history, or not a message.
    refused(&mut alice, react(99), "unknown_message").await;
    refused(&mut alice, react(3), "unknown_message").await;
    let wrong_id = json!({"type": "edit", "room": room, "seq": 1,
        "id": "0190b1f2-3c4d-7e5f-8a9b-0c1d2e3f4a5b", "body": "x"});
    refused(&mut alice, wrong_id, "unknown_message").await;
    // Bad text.
    let empty = json!({"type": "edit", "room": room, "seq": 1, "body": ""});
    refused(&mut alice, empty, "empty_body").await;
    // Not joined.
    let mut outsider = Client::connect(&cluster.url(0)).await;
    refused(&mut outsider, edit(1), "not_joined").await;

    // A moderator of the room may edit and delete anyone's message.
    let moderated = change_ok(&mut moderator, edit(1)).await;
    assert_eq!(moderated, 4);
    assert_eq!(change_ok(&mut moderator, delete(2)).await, 5);
    // A deleted message takes no more changes.
    refused(&mut alice, edit(2), "message_deleted").await;
    refused(&mut carol, react(2), "message_deleted").await;
    // Moderation is per room: elsewhere the moderator is like anyone.
    alice.join("plain").await;
    moderator.join("plain").await;
    alice.say_ok("plain", "mine").await;
    refused(
        &mut moderator,
        json!({"type": "delete", "room": "plain", "seq": 1}),
        "not_your_message",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_of_changed_messages_goes_with_their_trimmed_history() {
    let cluster = Cluster::start_with(BackplaneKind::Redis, 1, |config| {
        config.history.bounds.max_len = 5;
    })
    .await;
    let mut ann = Client::connect(&cluster.url(0)).await;
    ann.join("trimmed").await;
    ann.say_ok("trimmed", "first").await;
    let react = json!({"type": "react", "room": "trimmed", "seq": 1, "emoji": "👍"});
    assert_eq!(change_ok(&mut ann, react).await, 2);
    let redis = cluster.redis.as_ref().expect("a Redis cluster");
    let overlays = "chorus:room:{trimmed}:overlays";
    let changes = "chorus:room:{trimmed}:changes";
    assert_eq!(redis.size(overlays).await, 1, "kept with its message");
    for n in 0..300 {
        ann.say_ok("trimmed", &format!("m{n}")).await;
    }
    let sizes = (redis.size(overlays).await, redis.size(changes).await);
    assert_eq!(sizes, (0, 0), "forgotten with the trimmed history");
}

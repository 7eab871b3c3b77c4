//! Read receipts and unread counts across nodes (real Redis, three nodes): the
//! marker is stored per user and room, shown to the room, synced to the user's
//! other connections, reported as unread on join, and bad marks are refused.

use chorus_testkit::{BackplaneKind, Client, Cluster, fresh_user, token};
use serde_json::{Value, json};

chorus_testkit::on_redis_and_redis_cluster!(
    a_read_marker_is_shown_to_the_room_synced_and_counted_on_join,
);

async fn mark(client: &mut Client, room: &str, seq: u64) -> Value {
    client
        .request_reply(json!({"type": "read", "room": room, "seq": seq}))
        .await
}

async fn receipt_of(client: &mut Client, room: &str, user: &str) -> Value {
    client
        .wait_for("a receipt", |v| {
            v["type"] == "receipt" && v["room"] == room && v["user"]["id"] == user
        })
        .await
}

async fn a_read_marker_is_shown_to_the_room_synced_and_counted_on_join(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 3).await;
    let bob_id = fresh_user();
    let bob_token = token(&bob_id);
    let mut alice = Client::connect(&cluster.url(0)).await;
    let mut bob = Client::connect_as(&cluster.url(1), &bob_token).await;
    let mut bob_phone = Client::connect_as(&cluster.url(2), &bob_token).await;
    let mut carol = Client::connect(&cluster.url(2)).await;
    for member in [&mut alice, &mut bob, &mut bob_phone] {
        member.join("lobby").await;
    }
    carol.join("elsewhere").await;
    for n in 1..=3 {
        alice.say_ok("lobby", &format!("m{n}")).await;
    }
    bob.messages_in("lobby", 3).await;

    let reply = mark(&mut bob, "lobby", 2).await;
    assert_eq!(reply["type"], "marked", "{reply}");
    assert_eq!(reply["seq"], 2, "{reply}");
    // The room sees it, and so does bob's other device.
    assert_eq!(receipt_of(&mut alice, "lobby", &bob_id).await["seq"], 2);
    assert_eq!(receipt_of(&mut bob_phone, "lobby", &bob_id).await["seq"], 2);
    carol.sync().await;
    assert!(
        carol.pending().iter().all(|e| e["type"] != "receipt"),
        "a non-member saw a receipt: {:?}",
        carol.pending()
    );

    // Never backwards: an older mark answers the current marker and tells no one.
    let reply = mark(&mut bob_phone, "lobby", 1).await;
    assert_eq!(reply["type"], "marked", "{reply}");
    assert_eq!(reply["seq"], 2, "{reply}");

    // A fresh connection of bob's learns its unread count on join; others have none read.
    let mut bob_tablet = Client::connect_as(&cluster.url(0), &bob_token).await;
    let joined = bob_tablet
        .request_reply(json!({"type": "join", "room": "lobby"}))
        .await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["read_seq"], 2, "{joined}");
    assert_eq!(joined["unread"], 1, "{joined}");
    let mut dave = Client::connect(&cluster.url(1)).await;
    let joined = dave
        .request_reply(json!({"type": "join", "room": "lobby"}))
        .await;
    assert_eq!(joined["unread"], 3, "{joined}");
    assert!(joined.get("read_seq").is_none(), "{joined}");

    // Who has read up to where.
    let receipts = alice
        .request_reply(json!({"type": "receipts", "room": "lobby"}))
        .await;
    assert_eq!(receipts["type"], "receipts", "{receipts}");
    assert_eq!(
        receipts["receipts"],
        json!([{"user": bob_id, "seq": 2}]),
        "{receipts}"
    );
    // The alice receipt check above consumed the only receipt: the older mark
    // relayed nothing.
    alice.sync().await;
    assert!(
        alice.pending().iter().all(|e| e["type"] != "receipt"),
        "{:?}",
        alice.pending()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_read_marks_get_clear_errors() {
    let cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let mut alice = Client::connect(&cluster.url(0)).await;
    alice.join("lobby").await;
    alice.say_ok("lobby", "only one").await;

    let reply = mark(&mut alice, "lobby", 5).await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "beyond_head", "{reply}");
    assert_eq!(reply["room"], "lobby", "{reply}");

    let reply = mark(&mut alice, "elsewhere", 1).await;
    assert_eq!(reply["code"], "not_joined", "{reply}");
    let reply = alice
        .request_reply(json!({"type": "receipts", "room": "elsewhere"}))
        .await;
    assert_eq!(reply["code"], "not_joined", "{reply}");

    let reply = mark(&mut alice, "lobby", 0).await;
    assert_eq!(reply["code"], "invalid_command", "{reply}");
    // A field of the wrong type: refused before its ref can be read.
    alice
        .send(json!({"type": "read", "room": "lobby", "seq": "two"}))
        .await;
    let reply = alice.expect("error").await;
    assert_eq!(reply["code"], "invalid_command", "{reply}");

    // The marker did not move on any of these; a good mark still works.
    let reply = mark(&mut alice, "lobby", 1).await;
    assert_eq!(reply["type"], "marked", "{reply}");
    assert_eq!(reply["seq"], 1, "{reply}");
}

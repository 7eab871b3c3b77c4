//! Multi-device sync across nodes (real Redis, three nodes): drafts saved on
//! one device appear on the others and on a new one; a read marker reaches the
//! user's connections that are not in the room; nobody else sees either.

use chorus_testkit::{BackplaneKind, Client, Cluster, fresh_user, token};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_and_read_markers_follow_the_user_to_every_device() {
    let cluster = Cluster::start(BackplaneKind::Redis, 3).await;
    let bob_id = fresh_user();
    let bob_token = token(&bob_id);
    let mut laptop = Client::connect_as(&cluster.url(0), &bob_token).await;
    let mut phone = Client::connect_as(&cluster.url(1), &bob_token).await;
    let mut carol = Client::connect(&cluster.url(1)).await;
    let mut alice = Client::connect(&cluster.url(2)).await;
    for client in [&mut phone, &mut carol] {
        client.sync().await; // subscribed to their own channels
    }

    let saved = laptop
        .request_reply(json!({"type": "draft", "room": "lobby", "text": "half a tho"}))
        .await;
    assert_eq!(saved["type"], "draft_saved", "{saved}");
    let draft = phone.expect("draft").await;
    assert_eq!(draft["room"], "lobby", "{draft}");
    assert_eq!(draft["text"], "half a tho", "{draft}");

    // A device that connects later finds it.
    let mut tablet = Client::connect_as(&cluster.url(2), &bob_token).await;
    let drafts = tablet.request_reply(json!({"type": "drafts"})).await;
    assert_eq!(
        drafts["drafts"],
        json!([{"room": "lobby", "text": "half a tho"}]),
        "{drafts}"
    );
    // Sending clears it: the client saves an empty draft, every device hears.
    laptop
        .request_reply(json!({"type": "draft", "room": "lobby", "text": ""}))
        .await;
    assert_eq!(phone.expect("draft").await["text"], "");
    let drafts = tablet.request_reply(json!({"type": "drafts"})).await;
    assert_eq!(drafts["drafts"], json!([]), "{drafts}");

    // Read on the laptop (in the room): the phone, not in it, hears of it too.
    alice.join("lobby").await;
    laptop.join("lobby").await;
    alice.say_ok("lobby", "one").await;
    alice.say_ok("lobby", "two").await;
    laptop.messages_in("lobby", 2).await;
    let marked = laptop
        .request_reply(json!({"type": "read", "room": "lobby", "seq": 2}))
        .await;
    assert_eq!(marked["type"], "marked", "{marked}");
    let receipt = phone.expect("receipt").await;
    assert_eq!(receipt["room"], "lobby", "{receipt}");
    assert_eq!(receipt["user"]["id"], bob_id.as_str(), "{receipt}");
    assert_eq!(receipt["seq"], 2, "{receipt}");
    // The laptop, in the room, hears it once (from the room), not twice.
    laptop.expect("receipt").await;
    laptop.sync().await;
    assert!(
        laptop.pending().iter().all(|e| e["type"] != "receipt"),
        "{:?}",
        laptop.pending()
    );

    // Nobody else saw drafts or bob's channel.
    carol.sync().await;
    assert!(
        carol
            .pending()
            .iter()
            .all(|e| e["type"] != "draft" && e["type"] != "receipt"),
        "{:?}",
        carol.pending()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_drafts_get_clear_errors() {
    let cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let mut bob = Client::connect(&cluster.url(0)).await;

    let too_long = "x".repeat(8 * 1024 + 1);
    let reply = bob
        .request_reply(json!({"type": "draft", "room": "lobby", "text": too_long}))
        .await;
    assert_eq!(reply["code"], "body_too_large", "{reply}");
    let reply = bob
        .request_reply(json!({"type": "draft", "room": "dm:someone+zzz", "text": "hi"}))
        .await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
    let reply = bob
        .request_reply(json!({"type": "draft", "room": "no room!", "text": "hi"}))
        .await;
    assert_eq!(reply["code"], "invalid_room", "{reply}");

    for n in 0..100 {
        let reply = bob
            .request_reply(json!({"type": "draft", "room": format!("r{n}"), "text": "t"}))
            .await;
        assert_eq!(reply["type"], "draft_saved", "{reply}");
    }
    let reply = bob
        .request_reply(json!({"type": "draft", "room": "r100", "text": "t"}))
        .await;
    assert_eq!(reply["code"], "too_many_drafts", "{reply}");
    // Replacing one of the hundred still works.
    let reply = bob
        .request_reply(json!({"type": "draft", "room": "r7", "text": "new"}))
        .await;
    assert_eq!(reply["type"], "draft_saved", "{reply}");
}

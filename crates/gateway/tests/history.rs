//! Room order, history, idempotent sends and resume: one suite on both
//! backplanes, plus what only Redis can lose (relays, its data).

use chorus_testkit::{
    BackplaneKind, Client, Cluster, fresh_user, http_get_authorized, metric, token,
};
use serde_json::{Value, json};

chorus_testkit::on_both_backplanes!(
    a_join_gets_recent_history_then_live_messages_in_sequence,
    history_pages_backwards_by_seq_and_by_id,
    history_over_http_checks_the_token_and_the_query,
    a_retried_send_with_the_same_client_id_is_stored_once,
    a_resume_on_another_node_gets_exactly_the_missed_messages,
    a_resume_that_cannot_be_filled_says_so,
);

/// Sends `n` numbered messages ("m1", "m2" ...) and returns their ids.
async fn send_numbered(client: &mut Client, room: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 1..=n {
        ids.push(client.say_ok(room, &format!("m{i}")).await);
    }
    ids
}

fn seqs(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .expect("messages is an array")
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

async fn a_join_gets_recent_history_then_live_messages_in_sequence(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 2).await;
    let mut ann = Client::connect(&cluster.url(0)).await;
    let joined = ann.join_with("hist", json!({})).await;
    assert_eq!(joined["seq"], 0, "a new room starts at 0: {joined}");
    let epoch = joined["epoch"].as_u64().expect("joined carries the epoch");
    assert!(epoch > 0);
    send_numbered(&mut ann, "hist", 5).await;

    let mut bob = Client::connect(&cluster.url(1)).await;
    let joined = bob.join_with("hist", json!({"history": 3})).await;
    assert_eq!(
        (joined["epoch"].as_u64(), joined["seq"].as_u64()),
        (Some(epoch), Some(5))
    );
    assert!(joined.get("recovered").is_none(), "not a resume: {joined}");
    let history = bob.messages_in("hist", 3).await;
    assert_eq!(
        history,
        [(3, "m3".into()), (4, "m4".into()), (5, "m5".into())]
    );
    ann.say_ok("hist", "live").await;
    assert_eq!(bob.messages_in("hist", 1).await, [(6, "live".into())]);
    // The sender sees its own messages with the same numbers.
    let own: Vec<u64> = ann
        .messages_in("hist", 6)
        .await
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(own, [1, 2, 3, 4, 5, 6]);
}

async fn history_pages_backwards_by_seq_and_by_id(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 1).await;
    let mut ann = Client::connect(&cluster.url(0)).await;
    ann.join_with("pages", json!({"history": 0})).await;
    let ids = send_numbered(&mut ann, "pages", 10).await;

    let mut reader = Client::connect(&cluster.url(0)).await;
    let newest = reader
        .request_reply(json!({"type": "history", "room": "pages", "limit": 4}))
        .await;
    assert_eq!(newest["type"], "history", "{newest}");
    assert_eq!(seqs(&newest["messages"]), [7, 8, 9, 10]);
    assert_eq!(newest["more"], true);
    let older = reader
        .request_reply(json!({"type": "history", "room": "pages", "before": 7, "limit": 4}))
        .await;
    assert_eq!(seqs(&older["messages"]), [3, 4, 5, 6]);
    let oldest = reader
        .request_reply(json!({"type": "history", "room": "pages", "before_id": ids[2], "limit": 4}))
        .await;
    assert_eq!(seqs(&oldest["messages"]), [1, 2]);
    assert_eq!(oldest["more"], false);
    assert_eq!(oldest["messages"][0]["body"], "m1");
    assert_eq!(oldest["messages"][0]["id"], ids[0].as_str());

    let unknown = reader
        .request_reply(json!({"type": "history", "room": "pages", "before_id": uuid::Uuid::now_v7().to_string()}))
        .await;
    assert_eq!(unknown["code"], "unknown_message", "{unknown}");
    let both = reader
        .request_reply(
            json!({"type": "history", "room": "pages", "before": 3, "before_id": ids[0]}),
        )
        .await;
    assert_eq!(both["code"], "invalid_command", "{both}");
    let others_dm = reader
        .request_reply(json!({"type": "history", "room": "dm:x+y"}))
        .await;
    assert_eq!(others_dm["code"], "forbidden", "{others_dm}");
}

async fn history_over_http_checks_the_token_and_the_query(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 1).await;
    let addr = cluster.nodes[0].addr;
    let mut ann = Client::connect(&cluster.url(0)).await;
    ann.join_with("web", json!({})).await;
    let ids = send_numbered(&mut ann, "web", 3).await;

    let user_token = token(&fresh_user());
    let (status, body) = http_get_authorized(addr, "/api/rooms/web/messages?limit=2", &user_token)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seqs(&page["messages"]), [2, 3]);
    assert_eq!(
        (page["seq"].as_u64(), page["more"].as_bool()),
        (Some(3), Some(true))
    );
    let path = format!("/api/rooms/web/messages?before_id={}", ids[1]);
    let (_, body) = http_get_authorized(addr, &path, &user_token).await.unwrap();
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seqs(&page["messages"]), [1]);

    let cases = [
        (
            "/api/rooms/web/messages",
            "not-a-token",
            401,
            "invalid_token",
        ),
        (
            "/api/rooms/dm:a+b/messages",
            user_token.as_str(),
            403,
            "forbidden",
        ),
        (
            "/api/rooms/web/messages?before=x",
            user_token.as_str(),
            400,
            "invalid_query",
        ),
        (
            "/api/rooms/web/messages?before_id=nope",
            user_token.as_str(),
            400,
            "invalid_query",
        ),
        (
            "/api/rooms/bad%20room/messages",
            user_token.as_str(),
            400,
            "invalid_room",
        ),
    ];
    for (path, token, want_status, want_code) in cases {
        let (status, body) = http_get_authorized(addr, path, token).await.unwrap();
        assert_eq!(status, want_status, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["code"], want_code, "{path}: {body}");
    }
    let unknown = format!("/api/rooms/web/messages?before_id={}", uuid::Uuid::now_v7());
    let (status, _) = http_get_authorized(addr, &unknown, &user_token)
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (status, body) = chorus_testkit::http_get(addr, "/api/rooms/web/messages")
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
}

async fn a_retried_send_with_the_same_client_id_is_stored_once(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 2).await;
    let mut ann = Client::connect(&cluster.url(0)).await;
    let mut bob = Client::connect(&cluster.url(1)).await;
    ann.join("dedup").await;
    bob.join("dedup").await;
    let send = json!({"type": "send", "room": "dedup", "body": "once", "client_msg_id": "c-42"});
    let first = ann.request_reply(send.clone()).await;
    assert_eq!(first["type"], "sent", "{first}");
    assert!(first.get("duplicate").is_none());
    let retry = ann.request_reply(send.clone()).await;
    assert_eq!(retry["type"], "sent", "{retry}");
    assert_eq!(retry["duplicate"], true);
    for field in ["id", "ts", "seq"] {
        assert_eq!(
            retry[field], first[field],
            "the retry gets the original {field}"
        );
    }
    // The same client id from another user is another message.
    let mut cat = Client::connect(&cluster.url(1)).await;
    cat.join("dedup").await;
    let other = cat.request_reply(send).await;
    assert!(other.get("duplicate").is_none(), "{other}");
    ann.say_ok("dedup", "after").await;

    let bodies: Vec<String> = bob
        .messages_in("dedup", 3)
        .await
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(bodies, ["once", "once", "after"]);
    let page = bob
        .request_reply(json!({"type": "history", "room": "dedup"}))
        .await;
    assert_eq!(seqs(&page["messages"]), [1, 2, 3]);
}

async fn a_resume_on_another_node_gets_exactly_the_missed_messages(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 2).await;
    let user = fresh_user();
    let mut ann = Client::connect_as(&cluster.url(0), &token(&user)).await;
    let joined = ann.join_with("resume", json!({"history": 0})).await;
    let epoch = joined["epoch"].clone();
    let mut bob = Client::connect(&cluster.url(1)).await;
    bob.join_with("resume", json!({"history": 0})).await;
    send_numbered(&mut bob, "resume", 3).await;
    let seen = ann.messages_in("resume", 3).await;
    let last = seen.last().unwrap().0;
    drop(ann);

    for i in 4..=8 {
        bob.say_ok("resume", &format!("m{i}")).await;
    }
    let mut ann = Client::connect_as(&cluster.url(1), &token(&user)).await;
    let joined = ann
        .join_with("resume", json!({"epoch": epoch, "after": last}))
        .await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(joined["seq"], 8);
    bob.say_ok("resume", "m9").await;
    let got: Vec<u64> = ann
        .messages_in("resume", 6)
        .await
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(got, [4, 5, 6, 7, 8, 9], "missed ones, in order, then live");
    ann.sync().await;
    assert!(
        !ann.pending().iter().any(|e| e["type"] == "message"),
        "no duplicates: {:?}",
        ann.pending()
    );
}

async fn a_resume_that_cannot_be_filled_says_so(kind: BackplaneKind) {
    let cluster = Cluster::start_with(kind, 1, |config| {
        config.history.bounds.max_len = 5;
        config.history.resume_max = 20;
    })
    .await;
    let mut ann = Client::connect(&cluster.url(0)).await;
    let joined = ann.join_with("lossy", json!({"history": 0})).await;
    let epoch = joined["epoch"].as_u64().unwrap();
    // Redis trims approximately: send enough that seq 1 is surely gone.
    send_numbered(&mut ann, "lossy", 300).await;
    // A fresh connection, so the sender's own live copies are out of the way.
    let mut ann = Client::connect(&cluster.url(0)).await;

    let gone = ann
        .join_with("lossy", json!({"epoch": epoch, "after": 1, "history": 2}))
        .await;
    assert_eq!(gone["recovered"], false, "{gone}");
    assert_eq!(
        ann.messages_in("lossy", 2).await,
        [(299, "m299".into()), (300, "m300".into())],
        "the latest instead"
    );
    ann.leave("lossy").await;
    let other_epoch = ann
        .join_with(
            "lossy",
            json!({"epoch": epoch - 1, "after": 299, "history": 1}),
        )
        .await;
    assert_eq!(other_epoch["recovered"], false, "{other_epoch}");
    ann.leave("lossy").await;
    let ahead = ann
        .join_with("lossy", json!({"epoch": epoch, "after": 400, "history": 1}))
        .await;
    assert_eq!(ahead["recovered"], false, "past the head: {ahead}");
    ann.leave("lossy").await;
    let exact = ann
        .join_with("lossy", json!({"epoch": epoch, "after": 300}))
        .await;
    assert_eq!(exact["recovered"], true, "nothing missed: {exact}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_message_lost_by_redis_is_repaired_from_history_in_order() {
    let cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let redis = cluster.redis.as_ref().unwrap();
    let addr = cluster.nodes[0].addr;
    let mut ann = Client::connect(&cluster.url(0)).await;
    ann.join("gaps").await;
    ann.say_ok("gaps", "m1").await;

    // A lost message in the middle: the next one reveals the gap.
    let lost = redis.store_without_relay("gaps", "lost-middle").await;
    assert_eq!(lost, 2);
    ann.say_ok("gaps", "m3").await;
    // A lost last message: only the position check can find it.
    redis.store_without_relay("gaps", "lost-tail").await;
    let got = ann.messages_in("gaps", 4).await;
    assert_eq!(
        got,
        [
            (1, "m1".into()),
            (2, "lost-middle".into()),
            (3, "m3".into()),
            (4, "lost-tail".into())
        ]
    );
    assert!(metric(addr, "chorus_gap_repairs_total").await >= 2.0);
    assert!(metric(addr, "chorus_repaired_messages_total").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_losing_its_data_is_told_to_clients_not_hidden() {
    let mut cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let url = cluster.url(0);
    let mut ann = Client::connect(&url).await;
    let joined = ann.join_with("wiped", json!({})).await;
    let old_epoch = joined["epoch"].as_u64().unwrap();
    send_numbered(&mut ann, "wiped", 3).await;
    let _ = ann.messages_in("wiped", 3).await;

    // No persistence: the restart loses every room's state.
    cluster.redis.as_mut().unwrap().restart().await;
    let reset = ann.expect("reset").await;
    assert_eq!(reset["reason"], "epoch_changed", "{reset}");
    assert_eq!(reset["seq"], 0);
    let new_epoch = reset["epoch"].as_u64().unwrap();
    assert!(new_epoch > old_epoch);
    let sent = chorus_testkit::eventually("a send after the restart", || {
        let url = url.clone();
        async move {
            let mut bob = Client::connect(&url).await;
            bob.join("wiped").await;
            let reply = bob.say("wiped", "fresh").await;
            (reply["type"] == "sent").then_some(reply)
        }
    })
    .await;
    assert_eq!(sent["seq"], 1, "numbering restarts in the new epoch");
    let message = ann.message_in("wiped").await;
    assert_eq!(
        (message["seq"].as_u64(), message["body"].as_str()),
        (Some(1), Some("fresh"))
    );

    let mut late = Client::connect(&url).await;
    let joined = late
        .join_with("wiped", json!({"epoch": old_epoch, "after": 3}))
        .await;
    assert_eq!(joined["recovered"], false, "{joined}");
    assert_eq!(joined["epoch"].as_u64(), Some(new_epoch));
}

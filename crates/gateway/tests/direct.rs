//! Direct conversations and each user's own channel, across nodes (real Redis,
//! three nodes): a DM reaches every connection of both users wherever they
//! are, joined or not, and nobody else.

use chorus_testkit::{BackplaneKind, Client, Cluster, fresh_user, token};
use serde_json::{Value, json};

chorus_testkit::on_redis_and_redis_cluster!(
    a_dm_reaches_every_connection_of_both_users_on_any_node,
    a_mention_reaches_the_users_connections_outside_the_room_that_may_read_it,
);

fn notifications_of(client: &Client, body: &str) -> usize {
    client
        .pending()
        .iter()
        .filter(|e| e["type"] == "notification" && e["message"]["body"] == body)
        .count()
}

async fn notification(client: &mut Client, body: &str) -> Value {
    client
        .wait_for("a notification", |e| {
            e["type"] == "notification" && e["message"]["body"] == body
        })
        .await
}

async fn a_dm_reaches_every_connection_of_both_users_on_any_node(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 3).await;
    let (alice_id, bob_id) = (fresh_user(), fresh_user());
    let (alice_token, bob_token) = (token(&alice_id), token(&bob_id));
    let mut alice = Client::connect_as(&cluster.url(0), &alice_token).await;
    let mut alice_tab = Client::connect_as(&cluster.url(1), &alice_token).await;
    let mut bob_laptop = Client::connect_as(&cluster.url(1), &bob_token).await;
    let mut bob_phone = Client::connect_as(&cluster.url(2), &bob_token).await;
    let mut carol = Client::connect(&cluster.url(2)).await;
    // The personal channels are subscribed before the welcome's commands run:
    // a ping round trip on each proves the connection is fully set up.
    for client in [&mut alice_tab, &mut bob_laptop, &mut bob_phone, &mut carol] {
        client.sync().await;
    }

    let joined = alice
        .request_reply(json!({"type": "dm", "user": bob_id}))
        .await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let room = joined["room"].as_str().unwrap().to_owned();
    let (a, b) = if alice_id < bob_id {
        (&alice_id, &bob_id)
    } else {
        (&bob_id, &alice_id)
    };
    assert_eq!(room, format!("dm:{a}+{b}"));
    for client in [&mut bob_laptop, &mut bob_phone, &mut alice_tab] {
        let started = client.expect("dm_started").await;
        assert_eq!(started["room"], room.as_str(), "{started}");
        assert_eq!(started["by"]["id"], alice_id.as_str(), "{started}");
    }

    alice.say_ok(&room, "psst").await;
    for client in [&mut bob_laptop, &mut bob_phone, &mut alice_tab] {
        let note = notification(client, "psst").await;
        assert_eq!(note["room"], room.as_str(), "{note}");
        assert_eq!(note["message"]["from"]["id"], alice_id.as_str(), "{note}");
        assert!(note["message"]["seq"].as_u64().unwrap() >= 1, "{note}");
    }
    // Alice is in the room: the message, not a notification.
    assert_eq!(alice.message_in(&room).await["body"], "psst");
    alice.sync().await;
    assert_eq!(notifications_of(&alice, "psst"), 0, "{:?}", alice.pending());

    // Once bob's phone joins, it gets the room's messages instead.
    bob_phone.join(&room).await;
    bob_phone.say_ok(&room, "got it").await;
    assert_eq!(alice.message_in(&room).await["body"], "got it");
    notification(&mut bob_laptop, "got it").await;
    notification(&mut alice_tab, "got it").await;
    // (after "psst", which came with the join's history)
    bob_phone
        .wait_for("its own message", |e| {
            e["type"] == "message" && e["body"] == "got it"
        })
        .await;
    bob_phone.sync().await;
    assert_eq!(notifications_of(&bob_phone, "got it"), 0);

    // Nobody else hears of it, nor may join it.
    carol.sync().await;
    assert!(
        carol
            .pending()
            .iter()
            .all(|e| e["type"] != "dm_started" && e["type"] != "notification"),
        "{:?}",
        carol.pending()
    );
    let refused = carol
        .request_reply(json!({"type": "join", "room": room}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_dm_commands_get_clear_errors() {
    let cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let me = fresh_user();
    let mut alice = Client::connect_as(&cluster.url(0), &token(&me)).await;

    let reply = alice.request_reply(json!({"type": "dm", "user": me})).await;
    assert_eq!(reply["code"], "invalid_command", "{reply}");
    let reply = alice.request_reply(json!({"type": "dm", "user": ""})).await;
    assert_eq!(reply["code"], "invalid_command", "{reply}");
    let reply = alice
        .request_reply(json!({"type": "dm", "user": "has space"}))
        .await;
    assert_eq!(reply["code"], "invalid_command", "{reply}");

    let other = fresh_user();
    let reply = alice
        .request_reply(json!({"type": "dm", "user": other}))
        .await;
    assert_eq!(reply["type"], "joined", "{reply}");
    let reply = alice
        .request_reply(json!({"type": "dm", "user": other}))
        .await;
    assert_eq!(reply["code"], "already_joined", "{reply}");
}

async fn a_mention_reaches_the_users_connections_outside_the_room_that_may_read_it(
    kind: BackplaneKind,
) {
    use chorus_gateway::auth::{RoomClaims, TokenRequest};
    let cluster = Cluster::start(kind, 3).await;
    let (bob_id, eve_id) = (fresh_user(), fresh_user());
    let bob_token = token(&bob_id);
    // Eve's token does not let her read the room she is mentioned in.
    let eve_token = chorus_testkit::token_for(TokenRequest {
        sub: eve_id.clone(),
        ttl: std::time::Duration::from_secs(600),
        rooms: RoomClaims {
            join: vec!["other".into()],
            ..RoomClaims::default()
        },
        ..TokenRequest::default()
    });
    let mut alice = Client::connect(&cluster.url(0)).await;
    let mut bob_in_room = Client::connect_as(&cluster.url(0), &bob_token).await;
    let mut bob_laptop = Client::connect_as(&cluster.url(1), &bob_token).await;
    let mut bob_phone = Client::connect_as(&cluster.url(2), &bob_token).await;
    let mut eve = Client::connect_as(&cluster.url(1), &eve_token).await;
    let mut carol = Client::connect(&cluster.url(2)).await;
    for client in [&mut bob_laptop, &mut bob_phone, &mut eve, &mut carol] {
        client.sync().await;
    }
    alice.join("team.ops").await;
    bob_in_room.join("team.ops").await;

    let reference = "m1";
    alice
        .send(
            json!({"type": "send", "room": "team.ops", "body": "ping @bob @eve",
            "mentions": [bob_id, eve_id], "ref": reference}),
        )
        .await;
    let sent = alice.expect("sent").await;
    assert_eq!(sent["ref"], reference, "{sent}");
    // Mentions are kept sorted and distinct.
    let mut mentioned = [bob_id.clone(), eve_id.clone()];
    mentioned.sort();
    for client in [&mut bob_laptop, &mut bob_phone] {
        let mention = client.expect("mention").await;
        assert_eq!(mention["room"], "team.ops", "{mention}");
        assert_eq!(mention["message"]["body"], "ping @bob @eve", "{mention}");
        assert_eq!(
            mention["message"]["mentions"],
            json!(mentioned),
            "{mention}"
        );
    }
    // In the room, the message itself (with its mentions) is the news.
    let message = bob_in_room.message_in("team.ops").await;
    assert_eq!(message["mentions"], json!(mentioned), "{message}");
    // A second mention of bob, relayed after the first on each node's one
    // subscription: once it is in, a leak of the first would be too.
    alice
        .send(json!({"type": "send", "room": "team.ops", "body": "after",
            "mentions": [bob_id], "ref": "m2"}))
        .await;
    alice.expect("sent").await;
    for client in [&mut bob_laptop, &mut bob_phone] {
        let mention = client.expect("mention").await;
        assert_eq!(mention["message"]["body"], "after", "{mention}");
    }
    bob_in_room.message_in("team.ops").await;
    for client in [&mut bob_in_room, &mut eve, &mut carol] {
        client.sync().await;
        assert!(
            client.pending().iter().all(|e| e["type"] != "mention"),
            "a mention leaked: {:?}",
            client.pending()
        );
    }
    // Too many mentions is refused.
    let many: Vec<String> = (0..21).map(|n| format!("u{n}")).collect();
    alice
        .send(json!({"type": "send", "room": "team.ops", "body": "all", "mentions": many, "ref": "x"}))
        .await;
    let error = alice.expect("error").await;
    assert_eq!(error["code"], "too_many_mentions", "{error}");
}

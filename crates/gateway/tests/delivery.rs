//! Delivery across nodes: one suite, run on both backplanes.

use std::{collections::HashSet, time::Duration};

use chorus_gateway::auth::TokenRequest;
use chorus_testkit::{BackplaneKind, Client, Cluster, everywhere, token_for};
use serde_json::{Value, json};

chorus_testkit::on_both_backplanes!(
    every_member_on_every_node_gets_every_message_once_in_one_order,
    rooms_are_isolated,
    leave_stops_delivery,
    message_carries_id_room_sender_and_timestamp,
    msgpack_clients_get_the_same_events_as_json_clients,
    several_rooms_on_one_connection,
);

async fn every_member_on_every_node_gets_every_message_once_in_one_order(kind: BackplaneKind) {
    const PER_SENDER: usize = 40;
    let cluster = Cluster::start(kind, 3).await;
    let mut members = Vec::new();
    for i in 0..6 {
        let mut client = Client::connect(&cluster.url(i % 3)).await;
        client.join("lobby").await;
        members.push(client);
    }
    // Three senders, one per node, sending concurrently.
    let mut senders = Vec::new();
    for node in 0..3 {
        let url = cluster.url(node);
        senders.push(tokio::spawn(async move {
            let mut sender = Client::connect(&url).await;
            sender.join("lobby").await;
            for n in 0..PER_SENDER {
                sender.say_ok("lobby", &format!("{node}:{n}")).await;
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let total = 3 * PER_SENDER;
    let mut orders = Vec::new();
    for member in &mut members {
        let mut bodies = Vec::new();
        while bodies.len() < total {
            bodies.push(
                member.message_in("lobby").await["body"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        member.sync().await;
        assert!(
            member.pending().iter().all(|e| e["type"] != "message"),
            "a message arrived twice: {:?}",
            member.pending()
        );
        let unique: HashSet<_> = bodies.iter().collect();
        assert_eq!(unique.len(), total, "every message exactly once");
        for node in 0..3 {
            let from_node: Vec<_> = bodies
                .iter()
                .filter(|b| b.starts_with(&format!("{node}:")))
                .collect();
            let expected: Vec<_> = (0..PER_SENDER).map(|n| format!("{node}:{n}")).collect();
            assert_eq!(
                from_node,
                expected.iter().collect::<Vec<_>>(),
                "each sender's order is kept"
            );
        }
        orders.push(bodies);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every member saw the room in the same order"
    );
}

async fn rooms_are_isolated(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 2).await;
    let mut in_a = Client::connect(&cluster.url(0)).await;
    in_a.join("room-a").await;
    let mut in_b = Client::connect(&cluster.url(1)).await;
    in_b.join("room-b").await;
    let mut sender = Client::connect(&cluster.url(0)).await;
    sender.join("room-a").await;
    sender.join("room-b").await;
    sender.say_ok("room-a", "for a").await;
    sender.say_ok("room-b", "for b").await;
    assert_eq!(in_b.message_in("room-b").await["body"], "for b");
    assert_eq!(in_a.message_in("room-a").await["body"], "for a");
    in_b.sync().await;
    in_a.sync().await;
    assert!(
        // (presence events of their own rooms are expected)
        [&in_a, &in_b]
            .iter()
            .all(|c| c.pending().iter().all(|e| e["type"] == "presence")),
        "no cross-room leak: {:?} {:?}",
        in_a.pending(),
        in_b.pending()
    );
}

async fn leave_stops_delivery(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 2).await;
    let mut leaver = Client::connect(&cluster.url(0)).await;
    let mut neighbour = Client::connect(&cluster.url(0)).await;
    let mut sender = Client::connect(&cluster.url(1)).await;
    for client in [&mut leaver, &mut neighbour, &mut sender] {
        client.join("lobby").await;
    }
    sender.say_ok("lobby", "before").await;
    assert_eq!(leaver.message_in("lobby").await["body"], "before");
    leaver.leave("lobby").await;
    sender.say_ok("lobby", "after").await;
    // The neighbour on the same node got it, so the leaver would have too.
    neighbour.message_in("lobby").await;
    assert_eq!(neighbour.message_in("lobby").await["body"], "after");
    leaver.sync().await;
    assert!(
        leaver.pending().iter().all(|e| e["type"] == "presence"),
        "nothing after leave: {:?}",
        leaver.pending()
    );
}

async fn message_carries_id_room_sender_and_timestamp(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 2).await;
    let alice_token = token_for(TokenRequest {
        sub: "alice".into(),
        name: Some("Alice".into()),
        avatar: Some("https://example.com/alice.png".into()),
        ttl: Duration::from_secs(600),
        rooms: everywhere(),
    });
    let mut alice = Client::connect_as(&cluster.url(0), &alice_token).await;
    let mut bob = Client::connect(&cluster.url(1)).await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    let before = now_ms();
    let reply = alice.say("lobby", "hello").await;
    assert_eq!(reply["type"], "sent");
    let message = bob.message_in("lobby").await;
    assert_eq!(message["id"], reply["id"]);
    assert_eq!(message["ts"], reply["ts"]);
    let id = uuid::Uuid::parse_str(message["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(message["room"], "lobby");
    assert_eq!(message["body"], "hello");
    assert_eq!(message["from"]["name"], "Alice");
    assert_eq!(message["from"]["id"], "alice");
    assert_eq!(message["from"]["avatar"], "https://example.com/alice.png");
    assert_eq!(alice.welcome["user"]["id"], "alice");
    let ts = message["ts"].as_u64().unwrap();
    assert!(
        ts >= before && ts <= now_ms(),
        "server timestamp {ts} within the send"
    );
    // The sender gets its own message too.
    assert_eq!(alice.message_in("lobby").await["id"], reply["id"]);
}

async fn msgpack_clients_get_the_same_events_as_json_clients(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 2).await;
    let mut json_client = Client::connect(&cluster.url(0)).await;
    let mut by_subprotocol = Client::connect_with(&cluster.url(1), Some("chorus.msgpack")).await;
    let mut by_query = Client::connect(&format!("{}?encoding=msgpack", cluster.url(1))).await;
    assert!(by_subprotocol.binary && by_query.binary && !json_client.binary);
    assert_eq!(by_subprotocol.welcome["encoding"], "msgpack");
    assert_eq!(by_query.welcome["encoding"], "msgpack");
    for client in [&mut json_client, &mut by_subprotocol, &mut by_query] {
        client.join("mixed").await;
    }
    // A MessagePack client sends; everybody gets the same event in their encoding.
    by_subprotocol.say_ok("mixed", "binary hello").await;
    let seen: Vec<Value> = vec![
        json_client.message_in("mixed").await,
        by_subprotocol.message_in("mixed").await,
        by_query.message_in("mixed").await,
    ];
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    assert_eq!(seen[0]["body"], "binary hello");
}

async fn several_rooms_on_one_connection(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 2).await;
    let mut multi = Client::connect(&cluster.url(0)).await;
    let mut sender = Client::connect(&cluster.url(1)).await;
    for room in ["r1", "r2", "r3"] {
        multi.join(room).await;
        sender.join(room).await;
    }
    for room in ["r1", "r2", "r3"] {
        sender.say_ok(room, &format!("in {room}")).await;
    }
    for room in ["r1", "r2", "r3"] {
        assert_eq!(multi.message_in(room).await["body"], format!("in {room}"));
    }
    multi.leave("r2").await;
    sender.say_ok("r2", "gone").await;
    sender.say_ok("r3", "still here").await;
    assert_eq!(multi.message_in("r3").await["body"], "still here");
    multi.sync().await;
    // Presence events of r2 from before the leave may be pending; no message.
    assert!(
        multi
            .pending()
            .iter()
            .all(|e| e["room"] != "r2" || e["type"] == "presence"),
        "{:?}",
        multi.pending()
    );
    let _ = json!(null);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

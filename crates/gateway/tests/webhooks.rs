//! Webhooks against real receivers (HTTP servers in the test) and real
//! nodes on Redis: every event once per cluster, signed, in room order; a
//! receiver that is down (refusing connections, then answering 503) gets
//! everything once it is back; a node SIGKILLed mid-delivery loses nothing;
//! events given up become dead letters the API lists and replays.

use std::{collections::HashSet, time::Duration};

use chorus_gateway::config::WebhooksConfig;
use chorus_testkit::{
    ApiKeyring, BackplaneKind, Client, Cluster, ProcessNode, Received, RedisServer,
    WebhookReceiver, api, fresh_user, metric, token, webhooks_file,
};
use serde_json::json;

/// Bound on deliveries after the cause is gone (retries back off up to 60 s,
/// with full jitter; an outage of a few seconds is retried within ~10 s).
const DELIVERED: Duration = Duration::from_secs(60);

/// The message events (the endpoints of most tests take only these).
const MESSAGES: &[&str] = &[
    "message.created",
    "message.edited",
    "message.deleted",
    "reaction.changed",
];

fn config(file: &str, give_up_after: Duration) -> WebhooksConfig {
    WebhooksConfig::parse(file, give_up_after, Duration::from_secs(5)).unwrap()
}

/// The (room, seq) of each event in arrival order.
fn places(taken: &[Received]) -> Vec<(String, u64)> {
    taken
        .iter()
        .map(|r| {
            let data = &r.body["data"];
            let seq = data["message"]["seq"]
                .as_u64()
                .or(data["seq"].as_u64())
                .unwrap();
            (data["room"].as_str().unwrap().to_owned(), seq)
        })
        .collect()
}

/// Each room's events arrived in its order.
fn assert_room_order(taken: &[Received]) {
    let places = places(taken);
    for room in places.iter().map(|(r, _)| r).collect::<HashSet<_>>() {
        let seqs: Vec<u64> = places
            .iter()
            .filter(|(r, _)| r == room)
            .map(|(_, s)| *s)
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{room}: {seqs:?}");
    }
}

fn distinct(taken: &[Received]) -> usize {
    taken.iter().map(|r| &r.id).collect::<HashSet<_>>().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_each_endpoint_once_signed_and_in_room_order() {
    let (all, orders) = (
        WebhookReceiver::start().await,
        WebhookReceiver::start().await,
    );
    let file = webhooks_file(&[
        ("all", &all.url(), MESSAGES, &[]),
        ("orders", &orders.url(), &["message.created"], &["orders.*"]),
    ]);
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::Redis, 3, move |c| {
        c.webhooks = Some(config(&file, Duration::from_secs(3600)));
        c.api_keys = keys.clone();
    })
    .await;
    let mut clients = Vec::new();
    for node in 0..3 {
        let mut client = Client::connect_as(&cluster.url(node), &token(&fresh_user())).await;
        client.join("orders.1").await;
        client.join("lobby").await;
        clients.push(client);
    }
    for round in 0..5 {
        for (i, client) in clients.iter_mut().enumerate() {
            client.say_ok("orders.1", &format!("o{round}.{i}")).await;
            client.say_ok("lobby", &format!("l{round}.{i}")).await;
        }
    }
    let (a, key) = (cluster.nodes[1].addr, Some(keyring.all.as_str()));
    let edit = json!({"body": "edited"});
    assert_eq!(
        api(
            a,
            "PATCH",
            "/api/v1/rooms/lobby/messages/1",
            key,
            Some(&edit)
        )
        .await
        .0,
        200
    );
    let react = json!({"emoji": "👍", "from": {"id": "bot:x"}});
    assert_eq!(
        api(
            a,
            "POST",
            "/api/v1/rooms/lobby/messages/2/reactions",
            key,
            Some(&react)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        api(a, "DELETE", "/api/v1/rooms/lobby/messages/3", key, None)
            .await
            .0,
        200
    );

    let taken = all
        .wait_until("33 events", DELIVERED, |t| distinct(t) >= 33)
        .await;
    assert_eq!(
        taken.len(),
        33,
        "an event came twice: {:?}",
        taken.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    assert!(taken.iter().all(|r| r.signed), "a signature did not verify");
    assert_room_order(&taken);
    let kinds: Vec<&str> = taken
        .iter()
        .filter_map(|r| r.body["type"].as_str())
        .collect();
    for kind in ["message.edited", "reaction.changed", "message.deleted"] {
        assert_eq!(kinds.iter().filter(|k| **k == kind).count(), 1, "{kinds:?}");
    }
    let created = taken
        .iter()
        .find(|r| r.body["type"] == "message.created")
        .unwrap();
    assert_eq!(
        created.id,
        format!(
            "msg_{}",
            created.body["data"]["message"]["id"].as_str().unwrap()
        )
    );

    let filtered = orders
        .wait_until("15 order messages", DELIVERED, |t| distinct(t) >= 15)
        .await;
    assert_eq!(filtered.len(), 15);
    assert!(
        filtered
            .iter()
            .all(|r| r.body["type"] == "message.created" && r.body["data"]["room"] == "orders.1")
    );
    assert_room_order(&filtered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_then_back_gets_everything_in_order() {
    // First nothing listens on the endpoint's port, then it answers 503, then 2xx.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{port}/hook");
    let file = webhooks_file(&[("app", &url, MESSAGES, &[])]);
    let cluster = Cluster::start_with(BackplaneKind::Redis, 2, move |c| {
        c.webhooks = Some(config(&file, Duration::from_secs(3600)));
    })
    .await;
    let mut alice = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    let mut bob = Client::connect_as(&cluster.url(1), &token(&fresh_user())).await;
    for (i, room) in ["r1", "r2", "r3"].iter().enumerate() {
        alice.join(room).await;
        bob.join(room).await;
        alice.say_ok(room, &format!("refused {i}")).await;
    }
    let failures =
        |addr| async move { metric(addr, "chorus_webhook_failures_total{endpoint=\"app\"}").await };
    tokio::time::timeout(DELIVERED, async {
        while failures(cluster.nodes[0].addr).await + failures(cluster.nodes[1].addr).await < 1.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("no delivery was tried while the receiver was away");
    let receiver = WebhookReceiver::start_on(port).await;
    receiver.set_up(false);
    for room in ["r1", "r2", "r3"] {
        bob.say_ok(room, "while answering 503").await;
    }
    receiver.wait_refused(1, DELIVERED).await;
    receiver.set_up(true);
    for room in ["r1", "r2", "r3"] {
        alice.say_ok(room, "after").await;
    }
    let taken = receiver
        .wait_until("9 events", DELIVERED, |t| distinct(t) >= 9)
        .await;
    assert_eq!(taken.len(), 9, "an event came twice");
    assert_room_order(&taken);
    let per_room: Vec<usize> = ["r1", "r2", "r3"]
        .iter()
        .map(|room| places(&taken).iter().filter(|(r, _)| r == room).count())
        .collect();
    assert_eq!(per_room, vec![3, 3, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_delivery_loses_nothing() {
    let redis = RedisServer::start().await;
    let receiver = WebhookReceiver::start().await;
    // Slow enough that deliveries are in flight when the node dies.
    receiver.set_delay(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.toml");
    std::fs::write(
        &path,
        webhooks_file(&[("app", &receiver.url(), MESSAGES, &[])]),
    )
    .unwrap();
    let chorus = std::path::Path::new(env!("CARGO_BIN_EXE_chorus"));
    let (url, path) = (redis.url(), path.to_str().unwrap().to_owned());
    let args = [
        "--redis-url",
        url.as_str(),
        "--webhooks-file",
        path.as_str(),
        "--send-rate",
        "1000/s",
        "--user-send-rate",
        "1000/s",
    ];
    // The first node takes the partitions' leases; the second takes over.
    let mut first = ProcessNode::spawn(chorus, &args).await;
    let second = ProcessNode::spawn(chorus, &args).await;
    let mut alice = Client::connect_as(&second.ws_url(), &token(&fresh_user())).await;
    let rooms = ["k1", "k2", "k3", "k4"];
    for room in rooms {
        alice.join(room).await;
    }
    let mut sent = HashSet::new();
    for i in 0..60 {
        sent.insert(format!(
            "msg_{}",
            alice.say_ok(rooms[i % 4], &format!("m{i}")).await
        ));
    }
    receiver
        .wait_until("10 events", DELIVERED, |t| distinct(t) >= 10)
        .await;
    first.kill().await;
    let taken = receiver
        .wait_until("all 60 events", DELIVERED, |t| distinct(t) >= 60)
        .await;
    let ids: HashSet<String> = taken.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, sent);
    let repeated = taken.len() - ids.len();
    eprintln!("60 events, {repeated} delivered twice after the kill");
    assert!(taken.iter().all(|r| r.signed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_given_up_are_dead_letters_the_api_lists_and_replays() {
    let receiver = WebhookReceiver::start().await;
    receiver.set_up(false);
    let file = webhooks_file(&[("app", &receiver.url(), MESSAGES, &[])]);
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.webhooks = Some(config(&file, Duration::from_millis(300)));
        c.api_keys = keys.clone();
    })
    .await;
    let (a, key) = (cluster.nodes[0].addr, Some(keyring.all.as_str()));
    let mut alice = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    alice.join("lobby").await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(format!(
            "msg_{}",
            alice.say_ok("lobby", &format!("m{i}")).await
        ));
    }
    let listed = tokio::time::timeout(DELIVERED, async {
        loop {
            let (status, dead) =
                api(a, "GET", "/api/v1/webhooks/app/dead-letters", key, None).await;
            assert_eq!(status, 200, "{dead}");
            if dead["events"].as_array().unwrap().len() == 3 {
                return dead;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("three dead letters");
    let ids: Vec<&str> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, sent);
    let (status, unknown) = api(a, "GET", "/api/v1/webhooks/nope/dead-letters", key, None).await;
    assert_eq!(
        (status, unknown["code"].as_str()),
        (404, Some("unknown_endpoint"))
    );

    receiver.set_up(true);
    let (status, replayed) = api(
        a,
        "POST",
        "/api/v1/webhooks/app/dead-letters/replay",
        key,
        Some(&json!({})),
    )
    .await;
    assert_eq!(
        (status, replayed["replayed"].as_u64()),
        (202, Some(3)),
        "{replayed}"
    );
    let taken = receiver
        .wait_until("3 replayed", DELIVERED, |t| t.len() >= 3)
        .await;
    let taken: Vec<&str> = taken.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(taken, sent);
    let (_, dead) = api(a, "GET", "/api/v1/webhooks/app/dead-letters", key, None).await;
    assert_eq!(dead["events"], json!([]));
}

/// The example bot (docs/examples/bot.py, run as documented) hears `!roll`
/// through its webhook and answers in the room through the server API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_bot_answers_in_the_room() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let file = webhooks_file(&[(
        "dice",
        &format!("http://{port}/"),
        &["message.created"],
        &[],
    )]);
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.webhooks = Some(config(&file, Duration::from_secs(3600)));
        c.api_keys = keys.clone();
    })
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/bot.py");
    let _bot = tokio::process::Command::new("python3")
        .arg(script)
        .env("CHORUS_URL", format!("http://{}", cluster.nodes[0].addr))
        .env("CHORUS_API_KEY", &keyring.publish_only)
        .env("WEBHOOK_SECRET", chorus_testkit::WEBHOOK_SECRET)
        .env("BOT_LISTEN", port.to_string())
        .kill_on_drop(true)
        .spawn()
        .expect("running python3 docs/examples/bot.py");
    let mut alice = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    alice.join("games").await;
    // The bot may still be starting: its webhook is retried until it listens.
    alice.say_ok("games", "!roll").await;
    let answer = alice
        .wait_for("the bot's answer", |v| {
            v["type"] == "message" && v["from"]["id"] == "bot:dice"
        })
        .await;
    assert_eq!(answer["from"]["kind"], "bot");
    assert!(
        answer["body"].as_str().unwrap().contains("rolled"),
        "{answer}"
    );
}

/// Members joining and leaving rooms, and connections opening and closing,
/// are events too: each once, whichever node saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_and_connection_events_are_delivered_once() {
    let receiver = WebhookReceiver::start().await;
    let kinds: &[&str] = &[
        "member.joined",
        "member.left",
        "user.connected",
        "user.disconnected",
    ];
    let file = webhooks_file(&[("app", &receiver.url(), kinds, &[])]);
    let cluster = Cluster::start_with(BackplaneKind::Redis, 2, move |c| {
        c.webhooks = Some(config(&file, Duration::from_secs(3600)));
    })
    .await;
    let (alice_id, bob_id) = (fresh_user(), fresh_user());
    let mut alice = Client::connect_as(&cluster.url(0), &token(&alice_id)).await;
    let mut bob = Client::connect_as(&cluster.url(1), &token(&bob_id)).await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.leave("lobby").await;
    alice.close().await;
    let taken = receiver
        .wait_until("6 events", DELIVERED, |t| distinct(t) >= 6)
        .await;
    let mut seen: Vec<(String, String)> = taken
        .iter()
        .map(|r| {
            let user = r.body["data"]["user"]["id"].as_str().unwrap().to_owned();
            (r.body["type"].as_str().unwrap().to_owned(), user)
        })
        .collect();
    seen.sort();
    let mut expected: Vec<(String, String)> = [
        ("member.joined", &alice_id),
        ("member.joined", &bob_id),
        ("member.left", &alice_id),
        ("user.connected", &alice_id),
        ("user.connected", &bob_id),
        ("user.disconnected", &alice_id),
    ]
    .iter()
    .map(|(k, u)| ((*k).to_owned(), (*u).clone()))
    .collect();
    expected.sort();
    assert_eq!(seen, expected);
    let joined = taken
        .iter()
        .find(|r| r.body["type"] == "member.joined")
        .unwrap();
    assert_eq!(joined.body["data"]["room"], "lobby");
    assert!(taken.iter().all(|r| r.signed));
    drop(bob);
}

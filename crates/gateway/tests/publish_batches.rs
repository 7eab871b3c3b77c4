//! Sends that arrive together are stored by one script call on Redis, and each
//! keeps everything a lone send has: its own place in its room, its own
//! outcome, and idempotency.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use chorus_gateway::BackplaneConfig;
use chorus_testkit::{
    BackplaneKind, Client, Cluster, DelayProxy, InProcessNode, RedisServer, metric, redis_settings,
    test_config, token,
};
use serde_json::{Value, json};

/// Messages each sender sends without waiting for replies.
const EACH: usize = 10;

/// Connects `n` clients to `url`, each joined to `room`.
async fn joined(url: &str, room: &str, n: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let mut client = Client::connect(url).await;
        client.join(room).await;
        clients.push(client);
    }
    clients
}

/// Sends `EACH` messages from every sender at once (frames only, no waiting),
/// then returns each sender's replies in its send order.
async fn burst(senders: &mut [(String, Client)]) -> Vec<Vec<Value>> {
    burst_of(senders, EACH).await
}

/// [`burst`] with `each` messages per sender.
async fn burst_of(senders: &mut [(String, Client)], each: usize) -> Vec<Vec<Value>> {
    for (i, (room, client)) in senders.iter_mut().enumerate() {
        for k in 0..each {
            let reference = format!("s{i}-{k}");
            let command =
                json!({"type": "send", "room": room, "body": reference, "ref": reference});
            client.send(command).await;
        }
    }
    let mut replies = Vec::with_capacity(senders.len());
    for (i, (_, client)) in senders.iter_mut().enumerate() {
        let mut own = Vec::with_capacity(each);
        for k in 0..each {
            let reference = format!("s{i}-{k}");
            let reply = client
                .wait_for("the send's reply", |v| {
                    v["ref"] == reference.as_str() && v["type"] != "message"
                })
                .await;
            own.push(reply);
        }
        replies.push(own);
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_arriving_together_share_script_calls_and_keep_their_own_places() {
    let cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let redis = cluster.redis.as_ref().unwrap();
    let url = cluster.url(0);
    let rooms = ["north", "south", "east"];
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for room in rooms {
        readers.push(joined(&url, room, 1).await.remove(0));
        for client in joined(&url, room, 8).await {
            senders.push((room.to_owned(), client));
        }
    }
    let calls_before = redis.command_calls("evalsha").await;
    let relays_before = redis.command_calls("publish").await;

    let replies = burst(&mut senders).await;

    let total = senders.len() * EACH;
    let mut places: HashMap<&str, BTreeMap<u64, String>> = HashMap::new();
    for (i, own) in replies.iter().enumerate() {
        let room = senders[i].0.as_str();
        let mut last = 0;
        for (k, reply) in own.iter().enumerate() {
            assert_eq!(reply["type"], "sent", "{reply}");
            let seq = reply["seq"].as_u64().unwrap();
            assert!(seq > last, "a sender's messages keep its order: {own:?}");
            last = seq;
            let body = format!("s{i}-{k}");
            let taken = places.entry(room).or_default().insert(seq, body);
            assert!(taken.is_none(), "seq {seq} of {room} given twice");
        }
    }
    for (room, mut reader) in rooms.into_iter().zip(readers) {
        let placed = &places[room];
        let expected: Vec<(u64, String)> = (1..=placed.len() as u64)
            .map(|seq| (seq, placed.get(&seq).cloned().expect("no gap in seqs")))
            .collect();
        let delivered = reader.messages_in(room, placed.len()).await;
        assert_eq!(
            delivered, expected,
            "{room}: every message once, in seq order"
        );
    }
    let calls = redis.command_calls("evalsha").await - calls_before;
    assert!(
        calls < total as u64,
        "{total} sends at once took {calls} script calls"
    );
    // A room's messages stored by one call are relayed by one PUBLISH.
    let relays = redis.command_calls("publish").await - relays_before;
    assert!(
        relays < total as u64,
        "{total} messages took {relays} relays"
    );
    let addr = cluster.nodes[0].addr;
    let batched = metric(addr, "chorus_backplane_publish_batch_size_sum").await;
    let batches = metric(addr, "chorus_backplane_publish_batch_size_count").await;
    assert_eq!(batched, total as f64);
    assert!(batches < batched, "{batched} messages in {batches} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_room_fails_only_its_own_sends_and_takes_no_place() {
    let cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let redis = cluster.redis.as_ref().unwrap();
    let url = cluster.url(0);
    let mut reader = joined(&url, "sound", 1).await.remove(0);
    let mut senders = Vec::new();
    for room in ["sound", "broken"] {
        for client in joined(&url, room, 6).await {
            senders.push((room.to_owned(), client));
        }
    }
    // The broken room's history is not a Stream: every store to it fails.
    let log = "chorus:room:{broken}:log";
    redis.set_string(log, "not a stream").await;

    let replies = burst(&mut senders).await;

    let mut stored = 0;
    for (i, own) in replies.iter().enumerate() {
        for reply in own {
            if senders[i].0 == "broken" {
                assert_eq!(reply["type"], "error", "{reply}");
                assert_eq!(reply["code"], "backplane_unavailable", "{reply}");
            } else {
                assert_eq!(reply["type"], "sent", "{reply}");
                stored += 1;
            }
        }
    }
    let delivered = reader.messages_in("sound", stored).await;
    let seqs: Vec<u64> = delivered.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=stored as u64).collect::<Vec<_>>());

    // Repaired, the room takes the next send as its first: the failed ones
    // used up no place.
    redis.delete(log).await;
    let sent = senders.last_mut().unwrap().1.say("broken", "after").await;
    assert_eq!(sent["type"], "sent", "{sent}");
    assert_eq!(sent["seq"], 1, "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_client_msg_id_sent_at_once_from_two_connections_is_stored_once() {
    let cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let url = cluster.url(0);
    let mut reader = joined(&url, "lobby", 1).await.remove(0);
    let mut devices = Vec::new();
    for _ in 0..2 {
        let mut device = Client::connect_as(&url, &token("alice")).await;
        device.join("lobby").await;
        devices.push(device);
    }
    let ids = 20;
    for n in 0..ids {
        for device in &mut devices {
            let command = json!({"type": "send", "room": "lobby", "body": format!("m{n}"),
                "client_msg_id": format!("c{n}"), "ref": format!("r{n}")});
            device.send(command).await;
        }
    }
    for n in 0..ids {
        let reference = format!("r{n}");
        let mut replies = Vec::new();
        for device in &mut devices {
            let reply = device
                .wait_for("the send's reply", |v| {
                    v["ref"] == reference.as_str() && v["type"] != "message"
                })
                .await;
            assert_eq!(reply["type"], "sent", "{reply}");
            replies.push(reply);
        }
        let duplicates = replies.iter().filter(|r| r["duplicate"] == true).count();
        assert_eq!(duplicates, 1, "one of the two is the repeat: {replies:?}");
        assert_eq!(replies[0]["id"], replies[1]["id"]);
        assert_eq!(replies[0]["seq"], replies[1]["seq"]);
    }
    // A marker after the repeats: a message stored twice would come before it.
    let marker = reader.say("lobby", "end").await;
    assert_eq!(marker["seq"], ids as u64 + 1, "{marker}");
    let delivered = reader.messages_in("lobby", ids + 1).await;
    let expected: Vec<(u64, String)> = (0..ids)
        .map(|n| (n as u64 + 1, format!("m{n}")))
        .chain([(ids as u64 + 1, "end".to_owned())])
        .collect();
    assert_eq!(delivered, expected, "every message once, in seq order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_outlives_its_max_age_past_every_message_with_few_expiry_writes() {
    // A margin of 1/64: expiries are pushed back every 100 ms at most.
    let max_age = Duration::from_millis(6_400);
    let cluster = Cluster::start_with(BackplaneKind::Redis, 1, |c| {
        c.history.bounds.max_age = max_age
    })
    .await;
    let redis = cluster.redis.as_ref().unwrap();
    let mut client = joined(&cluster.url(0), "lobby", 1).await.remove(0);
    let state_ttl = chorus_backplane::HistorySettings::default().state_ttl;
    let expiries_before = redis.command_calls("pexpire").await;
    let sends = 20;
    // Sends paced over five margins, so some find the expiries fresh and
    // some stale.
    let mut pace = tokio::time::interval(Duration::from_millis(25));
    for n in 0..sends {
        pace.tick().await;
        let sent = client.say("lobby", &format!("m{n}")).await;
        assert_eq!(sent["type"], "sent", "{sent}");
        // Read right after `sent`: a few ms at most have passed.
        let slack = 50;
        let log = redis.pttl("chorus:room:{lobby}:log").await;
        assert!(
            log >= max_age.as_millis() as i64 - slack,
            "after message {n} the history expires in {log} ms"
        );
        let state = redis.pttl("chorus:room:{lobby}:state").await;
        assert!(
            state >= state_ttl.as_millis() as i64 - slack,
            "after message {n} the room's state expires in {state} ms"
        );
    }
    let expiries = redis.command_calls("pexpire").await - expiries_before;
    assert!(
        expiries <= sends,
        "{sends} messages pushed expiries back {expiries} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_queued_behind_a_hung_redis_fail_within_the_timeout_not_one_batch_after_another() {
    let timeout = Duration::from_secs(1);
    let redis = RedisServer::start().await;
    let proxy = DelayProxy::start(redis.addr(), Duration::ZERO).await;
    let mut config = test_config("hung-redis");
    let mut settings = redis_settings(&proxy.redis_url());
    settings.command_timeout = timeout;
    config.backplane = BackplaneConfig::Redis(settings);
    let node = InProcessNode::start(config).await;
    // More sends than the calls in flight can carry: most of them queue.
    let mut senders = Vec::new();
    for client in joined(&node.ws_url(), "lobby", 200).await {
        senders.push(("lobby".to_owned(), client));
    }
    proxy.freeze();
    let started = tokio::time::Instant::now();
    let replies = burst_of(&mut senders, 1).await;
    let waited = started.elapsed();
    for reply in replies.iter().flatten() {
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], "backplane_unavailable", "{reply}");
    }
    assert!(
        waited < timeout * 2,
        "the last of 200 sends failed after {waited:?} (timeout {timeout:?})"
    );
    proxy.thaw();
}

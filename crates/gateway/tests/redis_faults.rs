//! Redis misbehaving without going away: out of memory, configured to evict,
//! or slow. Nothing half-stored, nothing lost, the node says what is wrong,
//! and everything recovers.

use std::time::Duration;

use chorus_gateway::BackplaneConfig;
use chorus_testkit::{
    Client, DelayProxy, InProcessNode, RedisServer, eventually, http_get, metric, redis_settings,
    test_config,
};
use serde_json::json;

async fn node_on(url: &str, id: &str) -> InProcessNode {
    let mut config = test_config(id);
    config.backplane = BackplaneConfig::Redis(redis_settings(url));
    InProcessNode::start(config).await
}

/// The code of `/readyz`'s answer, or `ready`.
async fn readiness(node: &InProcessNode) -> String {
    let (status, body) = http_get(node.addr, "/readyz").await.unwrap();
    if status == 200 {
        return "ready".into();
    }
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    body["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_out_of_memory_refuses_sends_whole_and_everything_recovers() {
    let redis =
        RedisServer::start_with(&["--maxmemory", "16mb", "--maxmemory-policy", "noeviction"]).await;
    let node = node_on(&redis.url(), "oom").await;
    let mut writer = Client::connect(&node.ws_url()).await;
    let mut reader = Client::connect(&node.ws_url()).await;
    writer.join("lobby").await;
    reader.join("lobby").await;
    for body in ["m1", "m2", "m3"] {
        writer.say_ok("lobby", body).await;
    }

    redis.fill_memory().await;
    // A send is refused with a clear error, and nothing of it is stored.
    let refused = writer.say("lobby", "lost").await;
    assert_eq!(refused["code"], "backplane_unavailable", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("out of memory"),
        "{refused}"
    );
    eventually("the node to say Redis is full", || async {
        (readiness(&node).await == "backplane_out_of_memory").then_some(())
    })
    .await;
    assert_eq!(
        metric(node.addr, "chorus_backplane_out_of_memory").await,
        1.0
    );
    // Reading still works: a newcomer joins and gets the history.
    let mut newcomer = Client::connect(&node.ws_url()).await;
    newcomer.join("lobby").await;
    newcomer
        .send(json!({"type": "history", "room": "lobby", "ref": "h"}))
        .await;
    let page = newcomer.expect("history").await;
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["m1", "m2", "m3"]);
    // Typing is a signal, never stored: it still goes through.
    writer
        .send(json!({"type": "typing", "room": "lobby", "state": "start"}))
        .await;
    reader.wait_for("typing", |e| e["type"] == "typing").await;

    redis.free_memory().await;
    eventually("the node to be ready again", || async {
        (readiness(&node).await == "ready").then_some(())
    })
    .await;
    // The numbering goes on where it stopped: no repeated or skipped seq.
    let sent = writer.say("lobby", "m4").await;
    assert_eq!((&sent["type"], &sent["seq"]), (&json!("sent"), &json!(4)));
    for (body, seq) in [("m1", 1), ("m2", 2), ("m3", 3), ("m4", 4)] {
        let message = reader.message_in("lobby").await;
        assert_eq!(
            (&message["body"], &message["seq"]),
            (&json!(body), &json!(seq))
        );
    }
    assert_eq!(
        metric(node.addr, "chorus_backplane_out_of_memory").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_may_evict_keys_is_reported_at_start() {
    // The node's user may read the configuration here (the default user).
    let evicting = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]).await;
    let node = node_on(&evicting.admin_url(), "evicting").await;
    eventually("the eviction policy to be reported", || async {
        (metric(node.addr, "chorus_backplane_evicting_policy").await == 1.0).then_some(())
    })
    .await;
    let safe = RedisServer::start().await;
    let node = node_on(&safe.admin_url(), "safe").await;
    let mut client = Client::connect(&node.ws_url()).await;
    client.join("lobby").await;
    client.say_ok("lobby", "after the check").await;
    assert_eq!(
        metric(node.addr, "chorus_backplane_evicting_policy").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_slows_sends_but_loses_and_piles_up_nothing() {
    const SENDERS: usize = 4;
    const EACH: usize = 10;
    let redis = RedisServer::start().await;
    // Everything the node sends to Redis arrives 200 ms late.
    let proxy = DelayProxy::start(redis.addr(), Duration::from_millis(200)).await;
    let node = node_on(&proxy.redis_url(), "slow").await;
    let mut reader = Client::connect(&node.ws_url()).await;
    reader.join("lobby").await;
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let mut sender = Client::connect(&node.ws_url()).await;
        sender.join("lobby").await;
        senders.push(sender);
    }
    let sends = senders.into_iter().enumerate().map(|(s, mut sender)| {
        tokio::spawn(async move {
            for n in 0..EACH {
                sender.say_ok("lobby", &format!("{s}:{n}")).await;
            }
        })
    });
    for send in futures_util::future::join_all(sends).await {
        send.unwrap();
    }
    // Every message arrives once, in the room's order, each sender's in its order.
    let mut next = [0usize; SENDERS];
    for seq in 1..=(SENDERS * EACH) as u64 {
        let message = reader.message_in("lobby").await;
        assert_eq!(message["seq"], seq);
        let (s, n) = message["body"].as_str().unwrap().split_once(':').unwrap();
        let s: usize = s.parse().unwrap();
        assert_eq!(n.parse::<usize>().unwrap(), next[s]);
        next[s] += 1;
    }
    // The publish latency shows the slow link: no publish took under 200 ms.
    let under = r#"chorus_backplane_publish_seconds_bucket{le="0.1"}"#;
    assert_eq!(metric(node.addr, under).await, 0.0);
    let count = metric(node.addr, "chorus_backplane_publish_seconds_count").await;
    assert_eq!(count, (SENDERS * EACH) as f64);
    // Nothing was dropped or fell behind on the way.
    for counter in [
        "chorus_outbox_drops_total",
        "chorus_backplane_lagged_messages_total",
        "chorus_gap_repairs_total",
    ] {
        assert_eq!(metric(node.addr, counter).await, 0.0, "{counter}");
    }
}

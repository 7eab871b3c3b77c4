//! Sentinel mode: a node follows the primary its sentinels name across a
//! failover, and with `wait_replicas` a send is acknowledged only once a
//! replica holds it.

use std::{path::Path, time::Duration};

use chorus_backplane::RedisMode;
use chorus_gateway::BackplaneConfig;
use chorus_testkit::{
    Client, InProcessNode, ProcessNode, SENTINEL_MASTER, SentinelGroup, failover, redis_settings,
    test_config,
};
use serde_json::Value;

/// The room every send goes to.
const ROOM: &str = "failover";

/// A node in sentinel mode on `group`, waiting for `wait_replicas` replicas,
/// each Redis command bounded by `timeout`.
async fn node_on(group: &SentinelGroup, wait_replicas: u32, timeout: Duration) -> InProcessNode {
    let mut settings = redis_settings(&group.url());
    settings.mode = RedisMode::Sentinel {
        master: SENTINEL_MASTER.into(),
        password: None,
    };
    settings.wait_replicas = wait_replicas;
    settings.command_timeout = timeout;
    let mut config = test_config("sentinel-node");
    config.backplane = BackplaneConfig::Redis(settings);
    InProcessNode::start(config).await
}

fn send(body: &str) -> Value {
    failover::send(ROOM, body)
}

async fn send_until_acknowledged(client: &mut Client, body: &str) -> Value {
    failover::send_until_acknowledged(client, ROOM, body).await
}

/// A `chorus` process in sentinel mode on `group`, waiting for one replica.
async fn process_on(group: &SentinelGroup, id: &str) -> ProcessNode {
    let url = group.url();
    let mut args = vec!["--redis-url", &url, "--redis-mode", "sentinel"];
    args.extend(["--redis-sentinel-master", SENTINEL_MASTER]);
    args.extend(["--redis-wait-replicas", "1", "--node-id", id]);
    args.extend(failover::NODE_ARGS);
    ProcessNode::spawn(Path::new(env!("CARGO_BIN_EXE_chorus")), &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_the_promoted_replica_and_lose_no_acknowledged_send() {
    let mut group = SentinelGroup::start().await;
    let (a, b) = (process_on(&group, "a").await, process_on(&group, "b").await);
    let mut ann = Client::connect(&a.ws_url()).await;
    let mut bob = Client::connect(&b.ws_url()).await;
    ann.join(ROOM).await;
    bob.join(ROOM).await;
    for i in 0..10 {
        send_until_acknowledged(&mut ann, &format!("m{i}")).await;
    }

    // Four sends issued as the primary is killed (answered before it died,
    // retried by fred after the failover, or failed); each one that fails is
    // sent again (a pipelining client's retries may reorder them).
    failover::send_in_flight(&mut ann, ROOM, (10, 14)).await;
    group.primary.kill().await;
    failover::settle_in_flight(&mut ann, ROOM, (10, 14)).await;
    for i in 14..20 {
        send_until_acknowledged(&mut ann, &format!("m{i}")).await;
    }
    let switched = group.wait_for("+switch-master").await;
    assert!(
        group
            .replicas
            .iter()
            .any(|r| switched.ends_with(&format!("127.0.0.1 {}", r.port()))),
        "a replica is the new primary: {switched}"
    );
    // Live delivery follows the new primary too, and what the switch lost
    // on the way is repaired: every message once, in the room's order.
    let live: Vec<String> = bob
        .messages_in(ROOM, 20)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .collect();

    let mut reader = Client::connect(&a.ws_url()).await;
    failover::assert_each_once_in_order(&mut reader, ROOM, &live, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_no_replica_confirmed_is_not_acknowledged_and_its_retry_is_stored_once() {
    let group = SentinelGroup::start().await;
    let node = node_on(&group, 1, Duration::from_secs(1)).await;
    let mut ann = Client::connect(&node.ws_url()).await;
    ann.join(ROOM).await;
    let first = send_until_acknowledged(&mut ann, "before").await;
    assert_eq!(first["seq"], 1);

    for replica in &group.replicas {
        replica.pause();
    }
    let refused = ann.request_reply(send("held")).await;
    for replica in &group.replicas {
        replica.resume();
    }
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "backplane_unavailable", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("0 of 1 replicas"),
        "{refused}"
    );

    // Stored on the primary meanwhile: the retry gets that message back.
    let retried = send_until_acknowledged(&mut ann, "held").await;
    assert_eq!(retried["seq"], 2, "{retried}");
    assert_eq!(retried["duplicate"], true, "{retried}");
    let after = send_until_acknowledged(&mut ann, "after").await;
    assert_eq!(after["seq"], 3, "{after}");
}

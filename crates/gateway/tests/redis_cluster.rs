//! Cluster behaviour that only Redis has: subscriptions held per node, and surviving a Redis restart.

use std::time::Duration;

use chorus_gateway::BackplaneConfig;
use chorus_testkit::{
    BackplaneKind, Client, Cluster, DelayProxy, Event, InProcessNode, RedisServer, eventually,
    http_get, metric, redis_settings, test_config,
};

const CHANNEL: &str = "chorus:room:{lobby}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holds_the_subscription_exactly_while_it_has_members() {
    let cluster = Cluster::start(BackplaneKind::Redis, 2).await;
    let redis = cluster.redis.as_ref().unwrap();
    assert_eq!(redis.numsub(CHANNEL).await, 0);

    let mut a1 = Client::connect(&cluster.url(0)).await;
    a1.join("lobby").await;
    // `joined` is only sent once the subscription is active.
    assert_eq!(redis.numsub(CHANNEL).await, 1);
    let mut a2 = Client::connect(&cluster.url(0)).await;
    a2.join("lobby").await;
    let mut b = Client::connect(&cluster.url(1)).await;
    b.join("lobby").await;
    assert_eq!(
        redis.numsub(CHANNEL).await,
        2,
        "one subscription per node, not per member"
    );

    a1.leave("lobby").await;
    drop(a2); // disconnecting leaves too
    eventually("node 0 to unsubscribe after the linger", || async {
        (redis.numsub(CHANNEL).await == 1).then_some(())
    })
    .await;
    b.leave("lobby").await;
    eventually("node 1 to unsubscribe", || async {
        (redis.numsub(CHANNEL).await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_churn_within_the_linger_does_not_resubscribe() {
    let cluster = Cluster::start_with(BackplaneKind::Redis, 1, |c| {
        c.unsubscribe_delay = Duration::from_secs(30)
    })
    .await;
    let redis = cluster.redis.as_ref().unwrap();
    // The readiness probe holds a subscription of its own.
    let before = redis.command_calls("subscribe").await;
    let mut client = Client::connect(&cluster.url(0)).await;
    for _ in 0..5 {
        client.join("lobby").await;
        client.leave("lobby").await;
    }
    client.join("lobby").await;
    // One for the room, one for the user's own channel.
    assert_eq!(redis.command_calls("subscribe").await, before + 2);
    assert_eq!(redis.command_calls("unsubscribe").await, 0);
    assert_eq!(redis.numsub(CHANNEL).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_redis_restarts_without_restarting_nodes() {
    let mut cluster = Cluster::start(BackplaneKind::Redis, 2).await;
    let mut alice = Client::connect(&cluster.url(0)).await;
    let mut bob = Client::connect(&cluster.url(1)).await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.say_ok("lobby", "before").await;
    assert_eq!(bob.message_in("lobby").await["body"], "before");

    let subscriber_reconnects = "chorus_backplane_reconnects_total{role=\"subscriber\"}";
    assert_eq!(
        metric(cluster.nodes[1].addr, subscriber_reconnects).await,
        0.0,
        "the first connection is no reconnect"
    );
    let redis = cluster.redis.as_mut().unwrap();
    redis.kill().await;
    // While Redis is down a send is refused explicitly, never silently dropped.
    let refused = alice.say("lobby", "during").await;
    assert_eq!(refused["code"], "backplane_unavailable", "{refused}");
    let node0 = cluster.nodes[0].addr;
    eventually("node 0 to report not ready", || async move {
        matches!(http_get(node0, "/readyz").await, Ok((503, _))).then_some(())
    })
    .await;

    cluster.redis.as_mut().unwrap().restart().await;
    for node in &cluster.nodes {
        node.wait_ready().await;
    }
    // Resubscription happens in the background after the reconnect: probe until a message crosses.
    let deadline = tokio::time::Instant::now() + chorus_testkit::WAIT;
    'probe: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no cross-node delivery after the restart"
        );
        if alice.say("lobby", "probe").await["type"] != "sent" {
            continue;
        }
        while let Some(event) = bob.next_within(Duration::from_millis(300)).await {
            if matches!(&event, Event::Data(v) if v["type"] == "message" && v["body"] == "probe") {
                break 'probe;
            }
        }
    }
    for n in 0..20 {
        alice.say_ok("lobby", &format!("after {n}")).await;
    }
    let mut got = Vec::new();
    while got.len() < 20 {
        let body = bob.message_in("lobby").await["body"]
            .as_str()
            .unwrap()
            .to_owned();
        if body != "probe" {
            got.push(body);
        }
    }
    assert_eq!(
        got,
        (0..20).map(|n| format!("after {n}")).collect::<Vec<_>>()
    );
    // The outage was counted.
    let reconnects = metric(cluster.nodes[1].addr, subscriber_reconnects).await;
    assert!(
        reconnects >= 1.0,
        "subscriber reconnects counted: {reconnects}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_means_subscribed_even_over_a_slow_link_to_redis() {
    let redis = RedisServer::start().await;
    let redis_addr = redis.addr();
    // Node A's commands reach Redis 300 ms late; node B's at once.
    let proxy = DelayProxy::start(redis_addr, Duration::from_millis(300)).await;
    let mut slow_config = test_config("slow-link");
    slow_config.backplane = BackplaneConfig::Redis(redis_settings(&proxy.redis_url()));
    let slow_node = InProcessNode::start(slow_config).await;
    let mut fast_config = test_config("fast-link");
    fast_config.backplane = BackplaneConfig::Redis(redis_settings(&redis.url()));
    let fast_node = InProcessNode::start(fast_config).await;

    let mut a = Client::connect(&slow_node.ws_url()).await;
    let mut b = Client::connect(&fast_node.ws_url()).await;
    a.join("lobby").await;
    b.join("lobby").await;
    // Sent right after A's `joined`: A must get it, so `joined` waited for Redis.
    b.say_ok("lobby", "first").await;
    assert_eq!(a.message_in("lobby").await["body"], "first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_talks_to_redis_over_tls_with_acl_credentials() {
    let redis = RedisServer::start_tls().await;
    assert!(redis.url().starts_with("rediss://chorus:"));
    let mut nodes = Vec::new();
    for id in ["tls-a", "tls-b"] {
        let mut config = test_config(id);
        let mut settings = redis_settings(&redis.url());
        settings.tls_ca = Some(redis.tls_ca());
        config.backplane = BackplaneConfig::Redis(settings);
        nodes.push(InProcessNode::start(config).await);
    }
    let mut a = Client::connect(&nodes[0].ws_url()).await;
    let mut b = Client::connect(&nodes[1].ws_url()).await;
    a.join("secure").await;
    b.join("secure").await;
    a.say_ok("secure", "over TLS").await;
    assert_eq!(b.message_in("secure").await["body"], "over TLS");
    // The channel really went through this Redis.
    assert_eq!(redis.numsub("chorus:room:{secure}").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_redis_credentials_keep_the_node_unready() {
    let redis = RedisServer::start().await;
    let mut config = test_config("no-creds");
    config.backplane = BackplaneConfig::Redis(redis_settings(&redis.url_without_credentials()));
    let node = InProcessNode::start_unready(config).await;
    let (status, body) = chorus_testkit::http_get(node.addr, "/readyz")
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("backplane_down"), "{body}");
}

//! What operators see: metrics that move with the traffic, readiness that
//! follows the backplane (down, or silently frozen), the admin port, the
//! cluster view, and the Grafana dashboard's queries.

use std::{collections::BTreeSet, time::Duration};

use chorus_gateway::{BackplaneConfig, serve_with_admin};
use chorus_testkit::{
    BackplaneKind, Client, Cluster, DelayProxy, InProcessNode, RedisServer, Scrape, eventually,
    http_get, redis_settings, test_config,
};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_connections_sends_deliveries_and_disconnects() {
    let cluster = Cluster::start(BackplaneKind::Redis, 2).await;
    let (origin, remote) = (cluster.nodes[0].addr, cluster.nodes[1].addr);
    let before = [Scrape::of(origin).await, Scrape::of(remote).await];
    assert_eq!(before[0].get("chorus_connections_open"), 0.0);
    assert_eq!(before[0].get("chorus_ready"), 1.0);
    assert_eq!(
        before[0].get(r#"chorus_node_info{node="node-0",version="0.1.0"}"#),
        1.0
    );
    for family in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(before[0].has_family(family), "{family} exposed");
    }
    assert!(before[0].get("process_resident_memory_bytes") > 0.0);
    assert_eq!(
        before[0].kind("chorus_delivery_latency_seconds"),
        Some("histogram")
    );

    let mut alice = Client::connect(&cluster.url(0)).await;
    let mut bob = Client::connect(&cluster.url(1)).await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    let open = Scrape::of(origin).await;
    assert_eq!(open.get("chorus_connections_open"), 1.0);
    assert_eq!(
        open.delta(&before[0], "chorus_connections_opened_total"),
        1.0
    );
    assert_eq!(open.get("chorus_rooms_local"), 1.0);
    assert!(open.get("chorus_backplane_subscriptions") >= 1.0);

    for n in 0..3 {
        alice.say_ok("lobby", &format!("m{n}")).await;
    }
    for client in [&mut alice, &mut bob] {
        assert_eq!(client.messages_in("lobby", 3).await.len(), 3);
    }
    // Deliveries are counted when written, after the client may already have read them.
    let after = eventually("delivery latency of 3 writes on both nodes", || async {
        let scrapes = [Scrape::of(origin).await, Scrape::of(remote).await];
        scrapes
            .iter()
            .zip(&before)
            .all(|(now, then)| now.delta(then, "chorus_delivery_latency_seconds_count") == 3.0)
            .then_some(scrapes)
    })
    .await;
    let [o, r] = &after;
    let [bo, br] = &before;
    assert_eq!(o.delta(bo, "chorus_messages_received_total"), 3.0);
    assert_eq!(o.delta(bo, "chorus_messages_published_total"), 3.0);
    assert_eq!(o.delta(bo, "chorus_backplane_publish_seconds_count"), 3.0);
    assert_eq!(r.delta(br, "chorus_messages_published_total"), 0.0);
    for (now, then) in [(o, bo), (r, br)] {
        assert_eq!(
            now.delta(then, "chorus_backplane_messages_received_total"),
            3.0
        );
        assert_eq!(now.delta(then, "chorus_frames_delivered_total"), 3.0);
        assert_eq!(now.delta(then, "chorus_fanout_recipients_count"), 3.0);
        assert_eq!(now.delta(then, "chorus_fanout_recipients_sum"), 3.0);
        assert!(now.delta(then, "chorus_sent_bytes_total") > 0.0);
        assert!(now.delta(then, "chorus_received_bytes_total") > 0.0);
        // Loopback, same clock: well under the last bucket.
        assert_eq!(
            now.delta(then, r#"chorus_delivery_latency_seconds_bucket{le="10"}"#),
            3.0
        );
    }

    alice.close().await;
    eventually("the close to be counted", || async {
        let now = Scrape::of(origin).await;
        (now.get("chorus_connections_open") == 0.0
            && now.delta(bo, r#"chorus_connections_closed_total{reason="normal"}"#) == 1.0
            && now.get("chorus_rooms_local") == 0.0)
            .then_some(())
    })
    .await;
}

async fn status(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_get(addr, path).await.unwrap_or((0, String::new()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_redis_going_away_and_coming_back_while_liveness_stays() {
    let mut cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let addr = cluster.nodes[0].addr;
    assert_eq!(status(addr, "/readyz").await.0, 200);
    cluster.redis.as_mut().unwrap().kill().await;
    let body = eventually("not ready without Redis", || async {
        let (code, body) = status(addr, "/readyz").await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(body.contains("backplane_down"), "{body}");
    assert_eq!(status(addr, "/livez").await.0, 200, "still alive");
    assert_eq!(Scrape::of(addr).await.get("chorus_ready"), 0.0);

    cluster.redis.as_mut().unwrap().restart().await;
    eventually("ready again with Redis back", || async {
        (status(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    let mut client = Client::connect(&cluster.url(0)).await;
    client.join("lobby").await;
    client.say_ok("lobby", "back").await;
    assert_eq!(client.message_in("lobby").await["body"], "back");
}

/// The bug a peer shipped: the link to Redis stops carrying anything but no
/// socket closes, so connection checks stay green while nothing is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_goes_false_when_the_redis_link_silently_stops() {
    let redis = RedisServer::start().await;
    let proxy = DelayProxy::start(redis.addr(), Duration::ZERO).await;
    let mut config = test_config("frozen-link");
    config.backplane = BackplaneConfig::Redis(redis_settings(&proxy.redis_url()));
    let node = InProcessNode::start(config).await;
    proxy.freeze();
    let body = eventually("not ready over a frozen link", || async {
        let (code, body) = status(node.addr, "/readyz").await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(body.contains("backplane_down"), "{body}");
    assert!(
        Scrape::of(node.addr)
            .await
            .get("chorus_backplane_probe_failures_total")
            >= 1.0
    );
    proxy.thaw();
    node.wait_ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_serves_probes_and_metrics_but_no_websocket() {
    let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (main_addr, admin_addr) = (main.local_addr().unwrap(), admin.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve_with_admin(
        main,
        Some(admin),
        test_config("with-admin"),
        shutdown.clone(),
    ));
    eventually("admin readiness", || async {
        (status(admin_addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(status(admin_addr, "/livez").await.0, 200);
    assert!(
        Scrape::of(admin_addr)
            .await
            .has_family("chorus_connections_open")
    );
    assert_eq!(status(admin_addr, "/api/cluster").await.0, 200);
    assert_eq!(
        status(admin_addr, "/ws").await.0,
        404,
        "no chat on the admin port"
    );
    assert_eq!(status(admin_addr, "/api/login").await.0, 404);
    assert_eq!(status(main_addr, "/metrics").await.0, 200, "main port too");
    shutdown.cancel();
    tokio::time::timeout(chorus_testkit::WAIT, task)
        .await
        .expect("node stops in time")
        .unwrap()
        .unwrap();
}

async fn cluster_ids(addr: std::net::SocketAddr) -> BTreeSet<String> {
    let (code, body) = status(addr, "/api/cluster").await;
    assert_eq!(code, 200, "{body}");
    let view: Value = serde_json::from_str(&body).expect("cluster JSON");
    view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_view_lists_live_nodes_with_their_connections() {
    let mut cluster = Cluster::start(BackplaneKind::Redis, 3).await;
    let first = cluster.nodes[0].addr;
    let all: BTreeSet<String> = ["node-0", "node-1", "node-2"].map(String::from).into();
    eventually("every node sees all three", || async {
        for node in &cluster.nodes {
            if cluster_ids(node.addr).await != all {
                return None;
            }
        }
        Some(())
    })
    .await;
    let _client = Client::connect(&cluster.url(2)).await;
    eventually("node-0 sees node-2's connection", || async {
        let (_, body) = status(first, "/api/cluster").await;
        let view: Value = serde_json::from_str(&body).ok()?;
        let node2 = view["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["id"] == "node-2")?;
        (node2["connections"] == 1 && node2["ready"] == true && view["fresh"] == true).then_some(())
    })
    .await;
    // A node that stops leaves everyone's view at once (it withdraws).
    cluster.nodes.pop().unwrap().stop().await.unwrap();
    eventually("node-2 gone from node-0's view", || async {
        (cluster_ids(first).await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(Scrape::of(first).await.get("chorus_cluster_nodes"), 2.0);
}

/// Metric names in a PromQL expression: identifiers starting with `chorus_` or `process_`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            if current.starts_with("chorus_") || current.starts_with("process_") {
                names.push(current.clone());
            }
            current.clear();
        }
    }
    names
}

fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| exprs(item, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grafana_panel_queries_metrics_a_node_exposes() {
    let dashboard: Value = serde_json::from_str(include_str!(
        "../../../deploy/grafana/dashboards/chorus.json"
    ))
    .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    exprs(&dashboard["panels"], &mut queries);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    // With an archive: its panels' metrics too.
    let db = chorus_testkit::Postgres::start().await;
    let archive = chorus_archive::ArchiveSettings::new(db.url());
    let cluster = Cluster::start_with(BackplaneKind::Redis, 1, move |c| {
        c.archive = Some(archive.clone());
    })
    .await;
    let scrape = Scrape::of(cluster.nodes[0].addr).await;
    let mut missing = BTreeSet::new();
    for expr in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        missing.extend(names.into_iter().filter(|name| !scrape.has_sample(name)));
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics nobody exposes: {missing:?}"
    );
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for needed in [
        "Connections per node",
        "Disconnects per second by reason",
        "End-to-end delivery latency",
        "Drops and slow consumers",
        "Redis health",
        "Archive lag",
    ] {
        assert!(titles.contains(&needed), "panel {needed:?} in {titles:?}");
    }
}

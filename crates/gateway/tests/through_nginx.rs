//! End to end through real nginx, on the native local cluster that
//! `chorus-cluster` starts (redis-server, `chorus` processes, nginx running the
//! repository's nginx.conf unchanged).

use std::{collections::BTreeSet, path::Path, sync::Arc, time::Duration};

use chorus_localcluster::{LocalCluster, Options, Topology};
use chorus_testkit::{
    Client, TEST_SECRET,
    chaos::{self, Ledger, Member, Publisher, Stops, Urls},
    eventually,
};
use tokio_util::sync::CancellationToken;

async fn cluster(nodes: usize) -> LocalCluster {
    cluster_on(nodes, Topology::Single).await
}

/// `nodes` nodes on one Redis, a Sentinel group or a Redis Cluster.
async fn cluster_on(nodes: usize, redis: Topology) -> LocalCluster {
    cluster_with(nodes, redis, &[]).await
}

/// [`cluster_on`], the nodes started with `extra` flags too.
async fn cluster_with(nodes: usize, redis: Topology, extra: &[&str]) -> LocalCluster {
    let mut options = Options::new(Path::new(env!("CARGO_BIN_EXE_chorus")), nodes);
    options.redis = redis;
    options.node_env = vec![
        ("CHORUS_JWT_SECRET".into(), TEST_SECRET.into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    options.node_args = ["--drain-grace", "0s", "--drain-window", "0s"]
        .into_iter()
        .chain(chaos::NODE_ARGS)
        .chain(extra.iter().copied())
        .map(String::from)
        .collect();
    LocalCluster::start(&options)
        .await
        .expect("the local cluster starts (redis-server, chorus, nginx)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_a_sentinel_group_chats_through_nginx() {
    chats_through_nginx(cluster_on(2, Topology::Sentinel).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_a_redis_cluster_chats_through_nginx() {
    chats_through_nginx(cluster_on(2, Topology::Cluster).await).await;
}

/// Four clients through nginx join one room, each sends, all hear all.
async fn chats_through_nginx(cluster: LocalCluster) {
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = Client::connect(&cluster.ws_url()).await;
        client.join("lobby").await;
        clients.push(client);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        // Acknowledged only once a replica holds it (`--redis-wait-replicas 1`).
        client.say_ok("lobby", &format!("from client {i}")).await;
    }
    let expected: Vec<String> = (0..4).map(|i| format!("from client {i}")).collect();
    for client in &mut clients {
        let mut bodies: Vec<String> = client
            .messages_in("lobby", 4)
            .await
            .into_iter()
            .map(|(_, body)| body)
            .collect();
        bodies.sort();
        assert_eq!(bodies, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_through_nginx_spread_over_the_nodes_and_hear_each_other() {
    let cluster = cluster(3).await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut client = Client::connect(&cluster.ws_url()).await;
        client.join("lobby").await;
        clients.push(client);
    }
    let nodes: BTreeSet<String> = clients
        .iter()
        .map(|c| c.welcome["node"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        nodes.len(),
        3,
        "least_conn spreads six held connections over three nodes: {nodes:?}"
    );
    for (i, client) in clients.iter_mut().enumerate() {
        client.say_ok("lobby", &format!("from client {i}")).await;
    }
    for client in &mut clients {
        let mut bodies: Vec<String> = client
            .messages_in("lobby", 6)
            .await
            .into_iter()
            .map(|(_, body)| body)
            .collect();
        bodies.sort();
        let expected: Vec<String> = (0..6).map(|i| format!("from client {i}")).collect();
        assert_eq!(bodies, expected);
    }
    // History over HTTP goes through nginx's /api/ route.
    let token = chorus_testkit::token("reader");
    let (status, body) =
        chorus_testkit::http_get_authorized(cluster.addr, "/api/rooms/lobby/messages", &token)
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("from client 5"), "{body}");
    let (status, _) = chorus_testkit::http_get(cluster.addr, "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 404, "metrics are not public through nginx");
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_node_behind_nginx_loses_nothing_its_clients_were_sent() {
    const ROOMS: [&str; 3] = ["edge-a", "edge-b", "edge-c"];
    let mut cluster = cluster(3).await;
    // Everyone knows only nginx's address, as real clients do.
    let urls = Urls::new(vec![cluster.ws_url()]);
    let ledger = Arc::new(Ledger::default());
    let stop_members = CancellationToken::new();
    let mut members = Vec::new();
    for i in 0..6 {
        let rooms = vec![ROOMS[i % 3].to_owned(), ROOMS[(i + 1) % 3].to_owned()];
        members.push(
            Member::start(urls.clone(), 0, rooms, ledger.clone(), stop_members.clone()).await,
        );
    }
    let stops = Stops {
        stop: CancellationToken::new(),
        give_up: CancellationToken::new(),
    };
    let publishers = (0..2)
        .map(|i| {
            Publisher::start(
                &format!("edge{i}"),
                urls.clone(),
                0,
                ROOMS.map(String::from).to_vec(),
                Duration::from_millis(20),
                ledger.clone(),
                stops.clone(),
            )
        })
        .collect();
    let acknowledged_more = |n: u64| {
        let ledger = ledger.clone();
        let target = ledger.acknowledged() + n;
        async move {
            eventually("traffic through nginx", || {
                let ledger = ledger.clone();
                async move { (ledger.acknowledged() >= target).then_some(()) }
            })
            .await
        }
    };
    acknowledged_more(30).await;
    cluster.kill_node(1).await;
    acknowledged_more(30).await;
    let report = chaos::settle(&ledger, publishers, members, &stops, &stop_members, 0).await;
    assert_eq!(report.acknowledged, report.sent, "{report:?}");
    assert_eq!(report.missing, 0, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");
    assert_eq!(report.gaps + report.reorders, 0, "{report:?}");
    assert_eq!(report.breaks, 0, "resumed, nothing to announce: {report:?}");
    assert!(
        report.reconnects >= 1,
        "the killed node's members came back through nginx: {report:?}"
    );
    cluster.stop().await.unwrap();
}

/// A file far over nginx's 64 KiB body limit for other routes goes up
/// through nginx to one gateway and comes back through nginx from the
/// other, with its safety headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_up_and_come_back_through_nginx() {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().to_str().unwrap();
    let cluster = cluster_with(2, Topology::Single, &["--files-dir", dir]).await;
    let token = chorus_testkit::token(&chorus_testkit::fresh_user());
    let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    let client = reqwest::Client::new();
    let response = client
        .post(format!(
            "http://{}/api/v1/rooms/lobby/files?name=big.bin",
            cluster.addr
        ))
        .bearer_auth(&token)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let stored: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let url = format!(
        "http://{}/api/v1/files/{}",
        cluster.addr,
        stored["id"].as_str().unwrap()
    );
    // Each gateway serves it (nginx spreads requests over both).
    for _ in 0..4 {
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(
            response.bytes().await.unwrap() == body,
            "the file came back different"
        );
    }
}

#[tokio::test]
async fn a_refused_upload_gets_its_refusal_through_nginx_not_a_reset() {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().to_str().unwrap();
    let extra = ["--files-dir", dir, "--max-upload-bytes", "100000"];
    let cluster = cluster_with(2, Topology::Single, &extra).await;
    let token = chorus_testkit::token(&chorus_testkit::fresh_user());
    let url = format!(
        "http://{}/api/v1/rooms/lobby/files?name=big.bin",
        cluster.addr
    );
    let body = vec![7u8; 4 * 1024 * 1024];
    let client = reqwest::Client::new();
    // The node refuses before reading the body (its declared length, then
    // the missing token); the refusal, not a 502, reaches the client.
    for round in 0..6 {
        let request = client.post(&url).body(body.clone());
        let (request, status, code) = if round % 2 == 0 {
            (request.bearer_auth(&token), 413, "file_too_large")
        } else {
            (request, 401, "unauthenticated")
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "round {round}");
        let answer: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(answer["code"], code, "round {round}");
    }
}

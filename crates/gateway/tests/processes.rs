//! `chorus` as separate processes: crashes, SIGTERM, bad configuration.

use std::{path::Path, time::Duration};

use chorus_testkit::{Client, Event, ProcessNode, RedisServer};

fn chorus() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chorus"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_node_leaves_the_others_chatting() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let id = format!("proc-{i}");
        nodes.push(ProcessNode::spawn(chorus(), &["--redis-url", &url, "--node-id", &id]).await);
    }
    let mut clients = Vec::new();
    for node in &nodes {
        let mut client = Client::connect(&node.ws_url()).await;
        client.join("lobby").await;
        clients.push(client);
    }
    clients[0].say_ok("lobby", "all here").await;
    for client in &mut clients {
        assert_eq!(client.message_in("lobby").await["body"], "all here");
    }

    nodes[1].kill().await;
    assert_eq!(
        clients[1].closed().await,
        Event::Ended,
        "the victim's client sees its connection die"
    );

    for (from, to) in [(0, 2), (2, 0)] {
        let body = format!("from {from} after the crash");
        clients[from].say_ok("lobby", &body).await;
        assert_eq!(clients[to].message_in("lobby").await["body"], body);
        assert_eq!(clients[from].message_in("lobby").await["body"], body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_with_going_away_and_exits_cleanly() {
    let mut node = ProcessNode::spawn(chorus(), &["--shutdown-timeout", "5s"]).await;
    let mut a = Client::connect(&node.ws_url()).await;
    let mut b = Client::connect(&node.ws_url()).await;
    a.join("lobby").await;
    b.join("lobby").await;
    node.terminate();
    assert_eq!(a.closed().await, Event::Closed(4000));
    assert_eq!(b.closed().await, Event::Closed(4000));
    assert_eq!(node.wait_exit(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test]
async fn bad_configuration_fails_fast_with_status_2_and_names_the_flag() {
    for (args, needle) in [
        (&["--node-id", "bad id"][..], "--node-id"),
        (&["--redis-url", "ftp://nowhere"][..], "--redis-url"),
        (&["--max-body-bytes", "1000000"][..], "--max-body-bytes"),
        (&["--ping-interval", "soon"][..], "--ping-interval"),
        (&["--listen", "not-an-address"][..], "--listen"),
    ] {
        let output = tokio::time::timeout(
            chorus_testkit::WAIT,
            tokio::process::Command::new(chorus())
                .args(args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("chorus exits at once on bad configuration")
        .expect("running chorus");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?} should mention {needle}: {stderr}"
        );
    }
}

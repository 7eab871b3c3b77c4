//! `chorus` processes in a fleet: the cluster view after a crash and during a
//! drain, and the `chorus healthcheck` probe that container images use.

use std::{collections::BTreeSet, net::SocketAddr, path::Path, time::Duration};

use chorus_testkit::{ProcessNode, RedisServer, eventually, http_get};
use serde_json::Value;
use tokio::time::Instant;

fn chorus() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chorus"))
}

async fn spawn(redis: &RedisServer, id: &str) -> ProcessNode {
    ProcessNode::spawn(
        chorus(),
        &[
            "--redis-url",
            &redis.url(),
            "--node-id",
            id,
            "--heartbeat-interval",
            "200ms",
            "--node-ttl",
            "1s",
            "--drain-grace",
            "2s",
            "--drain-window",
            "0s",
        ],
    )
    .await
}

async fn view(addr: SocketAddr) -> Vec<Value> {
    let (code, body) = http_get(addr, "/api/cluster")
        .await
        .expect("GET /api/cluster");
    assert_eq!(code, 200, "{body}");
    let view: Value = serde_json::from_str(&body).expect("cluster JSON");
    view["nodes"].as_array().expect("nodes").clone()
}

async fn ids(addr: SocketAddr) -> BTreeSet<String> {
    view(addr)
        .await
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_learn_of_a_crash_within_the_ttl_and_see_a_drain() {
    let redis = RedisServer::start().await;
    let mut nodes = Vec::new();
    for id in ["fleet-a", "fleet-b", "fleet-c"] {
        nodes.push(spawn(&redis, id).await);
    }
    let a = nodes[0].addr;
    eventually("fleet-a sees all three", || async {
        (ids(a).await.len() == 3).then_some(())
    })
    .await;

    let killed = Instant::now();
    nodes[2].kill().await;
    eventually("fleet-c gone after its crash", || async {
        (!ids(a).await.contains("fleet-c")).then_some(())
    })
    .await;
    let noticed = killed.elapsed();
    // The TTL is 1 s and heartbeats come every 200 ms: generous slack, but seconds, not minutes.
    assert!(
        noticed < Duration::from_secs(5),
        "noticed after {noticed:?}"
    );

    nodes[1].terminate();
    eventually("fleet-b shown draining", || async {
        let nodes = view(a).await;
        let b = nodes.iter().find(|n| n["id"] == "fleet-b")?;
        (b["draining"] == true && b["ready"] == false).then_some(())
    })
    .await;
    assert_eq!(nodes[1].wait_exit(Duration::from_secs(10)).await, Some(0));
    eventually("fleet-b gone after its exit", || async {
        (ids(a).await == BTreeSet::from(["fleet-a".to_owned()])).then_some(())
    })
    .await;
}

async fn healthcheck(args: &[&str], listen: Option<SocketAddr>) -> (Option<i32>, String) {
    let mut command = tokio::process::Command::new(chorus());
    command.arg("healthcheck").args(args).kill_on_drop(true);
    command.env_remove("CHORUS_LISTEN");
    if let Some(listen) = listen {
        command.env("CHORUS_LISTEN", listen.to_string());
    }
    let output = tokio::time::timeout(chorus_testkit::WAIT, command.output())
        .await
        .expect("healthcheck ends in time")
        .expect("running chorus healthcheck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chorus_healthcheck_exits_by_readiness() {
    let mut redis = RedisServer::start().await;
    let node = spawn(&redis, "probed").await;
    let url = format!("http://{}/readyz", node.addr);
    let (code, out) = healthcheck(&["--url", &url], None).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("200"), "{out}");
    // Without --url it probes the node's own --listen (here from CHORUS_LISTEN).
    assert_eq!(healthcheck(&[], Some(node.addr)).await.0, Some(0));

    redis.kill().await;
    let out = eventually("healthcheck to fail without Redis", || async {
        let (code, out) = healthcheck(&["--url", &url], None).await;
        (code == Some(1)).then_some(out)
    })
    .await;
    assert!(out.contains("backplane_down"), "{out}");
    let (code, out) = healthcheck(&["--live"], Some(node.addr)).await;
    assert_eq!(code, Some(0), "alive without Redis: {out}");

    let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = nothing.local_addr().unwrap();
    drop(nothing);
    let (code, out) = healthcheck(&[], Some(closed)).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot connect"), "{out}");
}

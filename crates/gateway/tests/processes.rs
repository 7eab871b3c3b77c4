//! `chorus` as separate processes: crashes, SIGTERM, bad configuration.

use std::{path::Path, time::Duration};

use tokio::time::Instant;

use chorus_testkit::{Client, Event, ProcessNode, RedisServer, http_get};

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
async fn sigterm_drains_then_closes_clients_in_batches_with_reconnect_and_exits_in_time() {
    const GRACE: Duration = Duration::from_secs(3);
    const WINDOW: Duration = Duration::from_secs(2);
    let redis = RedisServer::start().await;
    let mut node = ProcessNode::spawn(
        chorus(),
        &[
            "--redis-url",
            &redis.url(),
            "--drain-grace",
            "3s",
            "--drain-window",
            "2s",
            "--shutdown-timeout",
            "3s",
        ],
    )
    .await;
    let mut clients = Vec::new();
    for _ in 0..30 {
        let mut client = Client::connect(&node.ws_url()).await;
        client.join("lobby").await;
        clients.push(client);
    }
    let sigterm = Instant::now();
    node.terminate();
    let (_, body) = chorus_testkit::eventually("not ready at once", || async {
        let answer = http_get(node.addr, "/readyz").await.ok()?;
        (answer.0 == 503).then_some(answer)
    })
    .await;
    assert!(body.contains("draining"), "{body}");
    // Still serving during the grace period: new clients and messages go through.
    let mut late = Client::connect(&node.ws_url()).await;
    late.join("lobby").await;
    clients[0].say_ok("lobby", "during the grace period").await;
    assert_eq!(
        late.message_in("lobby").await["body"],
        "during the grace period"
    );
    clients.push(late);

    let closes: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let event = client.closed().await;
                (event, sigterm.elapsed())
            })
        })
        .collect();
    let mut times = Vec::new();
    for close in closes {
        let (event, at) = close.await.unwrap();
        assert_eq!(event, Event::Closed(4000), "closed with reconnect");
        times.push(at);
    }
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    assert!(
        *first >= GRACE,
        "no client closed before the grace period ended: {first:?}"
    );
    assert!(
        *last - *first >= WINDOW / 4,
        "closes spread over the drain window, not all at once: {first:?}..{last:?}"
    );
    assert_eq!(
        node.wait_exit(GRACE + WINDOW + Duration::from_secs(5))
            .await,
        Some(0)
    );
}

#[tokio::test]
async fn bad_configuration_fails_fast_with_status_2_and_names_the_flag() {
    for (args, needle) in [
        (&["--node-id", "bad id"][..], "--node-id"),
        (&["--redis-url", "ftp://nowhere"][..], "--redis-url"),
        (&["--max-body-bytes", "1000000"][..], "--max-body-bytes"),
        (&["--ping-interval", "soon"][..], "--ping-interval"),
        (&["--listen", "not-an-address"][..], "--listen"),
        (&["--redis-url", "redis://127.0.0.1:1"][..], "--jwt-secret"),
        (&["--jwt-secret", "too-short"][..], "--jwt-secret"),
        (&["--node-ttl", "1s"][..], "--node-ttl"),
        (&["--drain-grace", "2h"][..], "--drain-grace"),
        (&["--admin-listen", "nowhere"][..], "--admin-listen"),
        (
            &["--jwt-public-key", "/nonexistent.pem"][..],
            "--jwt-public-key",
        ),
    ] {
        let output = tokio::time::timeout(
            chorus_testkit::WAIT,
            tokio::process::Command::new(chorus())
                .args(args)
                .env_remove("CHORUS_JWT_SECRET")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chorus_token_mints_a_token_the_node_accepts() {
    let node = ProcessNode::spawn(chorus(), &[]).await;
    let output = tokio::process::Command::new(chorus())
        .args([
            "token", "--sub", "scripted", "--name", "Script", "--ttl", "10m",
        ])
        .args(["--join", "ops.*", "--post", "ops.alerts"])
        .env("CHORUS_JWT_SECRET", chorus_testkit::TEST_SECRET)
        .kill_on_drop(true)
        .output()
        .await
        .expect("running chorus token");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let mut client = Client::connect_as(&node.ws_url(), token.trim()).await;
    assert_eq!(client.welcome["user"]["id"], "scripted");
    assert_eq!(client.welcome["user"]["name"], "Script");
    client.join("ops.alerts").await;
    client.say_ok("ops.alerts", "minted").await;
    client
        .send(serde_json::json!({"type": "join", "room": "lobby"}))
        .await;
    assert_eq!(client.expect("error").await["code"], "forbidden");

    let unsigned = tokio::process::Command::new(chorus())
        .args(["token", "--sub", "x"])
        .env_remove("CHORUS_JWT_SECRET")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_eq!(unsigned.status.code(), Some(2));
}

/// Secrets and bodies must not reach the logs, even at debug level, nor /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_or_body_appears_in_logs_or_metrics() {
    let redis = RedisServer::start().await;
    let (mut node, logs) = ProcessNode::spawn_logged(
        chorus(),
        &[
            "--redis-url",
            &redis.url(),
            "--node-id",
            "leaky",
            "--drain-grace",
            "0s",
            "--drain-window",
            "0s",
        ],
        "debug",
    )
    .await;
    let good = chorus_testkit::token("secret-keeper");
    let mut client = Client::connect_as(&node.ws_url(), &good).await;
    client.join("lobby").await;
    let body = "body-that-must-stay-private";
    client.say_ok("lobby", body).await;
    client.message_in("lobby").await;
    // A refused token is logged as refused, without the token.
    let forged = format!("{}x", &good[..good.len() - 1]);
    let _ = Client::handshake_request(Client::request(&node.ws_url(), None, Some(&forged))).await;
    let (_, metrics) = http_get(node.addr, "/metrics").await.unwrap();
    node.terminate();
    assert_eq!(node.wait_exit(Duration::from_secs(10)).await, Some(0));

    let logs = logs.lock().unwrap().clone();
    assert!(logs.contains("node started"), "logs were captured: {logs}");
    assert!(
        logs.contains("token refused"),
        "the refusal is logged: {logs}"
    );
    for (what, secret) in [
        ("Redis password", chorus_testkit::APP_PASSWORD),
        ("JWT secret", chorus_testkit::TEST_SECRET),
        ("token", good.as_str()),
        ("forged token", forged.as_str()),
        ("token signature", good.rsplit('.').next().unwrap()),
        ("message body", body),
    ] {
        assert!(!logs.contains(secret), "the {what} leaked into the logs");
        assert!(!metrics.contains(secret), "the {what} leaked into /metrics");
    }
}

/// `--log-format json`: one JSON object per line, and a connection's lines carry
/// its span (connection id, node, user) so a session can be followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_a_span_per_connection_with_node_and_user() {
    let (mut node, logs) = ProcessNode::spawn_logged(
        chorus(),
        &[
            "--log-format",
            "json",
            "--node-id",
            "logged",
            "--drain-grace",
            "0s",
            "--drain-window",
            "0s",
        ],
        "info,chorus_gateway=debug",
    )
    .await;
    let token = chorus_testkit::token("followed-user");
    let client = Client::connect_as(&node.ws_url(), &token).await;
    let conn = client.welcome["conn"].as_str().unwrap().to_owned();
    client.close().await;
    node.terminate();
    assert_eq!(node.wait_exit(Duration::from_secs(10)).await, Some(0));

    let logs = logs.lock().unwrap().clone();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let session: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["span"]["user"] == "followed-user")
        .collect();
    let messages: Vec<&str> = session
        .iter()
        .filter_map(|line| line["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"connection opened") && messages.contains(&"connection closed"),
        "the session's lines carry its span: {logs}"
    );
    for line in session {
        assert_eq!(line["span"]["conn"], conn.as_str());
        assert_eq!(line["span"]["node"], "logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_skips_the_drain() {
    let mut node = ProcessNode::spawn(chorus(), &["--drain-grace", "60s"]).await;
    let _client = Client::connect(&node.ws_url()).await;
    node.terminate();
    chorus_testkit::eventually("draining after the first SIGTERM", || async {
        matches!(http_get(node.addr, "/readyz").await, Ok((503, _))).then_some(())
    })
    .await;
    node.terminate();
    assert_eq!(node.wait_exit(Duration::from_secs(10)).await, Some(130));
}

//! The publish hook against a real HTTP hook in the test: it allows,
//! rejects (the sender sees the reason, nothing is stored), rewrites (every
//! member gets the new text), and when it is too slow or gone the node
//! stores anyway (fail open) or refuses with `hook_unavailable` (fail closed).

use std::{net::SocketAddr, time::Duration};

use axum::{Json, Router, http::HeaderMap, routing::post};
use chorus_gateway::config::PublishHookConfig;
use chorus_testkit::{BackplaneKind, Client, Cluster, WEBHOOK_SECRET, fresh_user, token};
use serde_json::{Value, json};

/// A hook: rejects "spam", replaces links, dawdles on "slow", allows the rest;
/// refuses anything unsigned.
async fn hook(headers: HeaderMap, Json(question): Json<Value>) -> Json<Value> {
    let signed = headers
        .get("webhook-signature")
        .is_some_and(|s| s.to_str().unwrap().starts_with("v1,"));
    let body = question["body"].as_str().unwrap_or_default();
    Json(if !signed || question["from"]["id"].as_str().is_none() {
        json!({"action": "reject", "reason": "unsigned or without a sender"})
    } else if body.contains("spam") {
        json!({"action": "reject", "reason": "no spam here"})
    } else if body.contains("http://") {
        json!({"action": "replace", "body": body.replace("http://evil.example", "[link removed]")})
    } else if body == "slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
        json!({"action": "allow"})
    } else {
        json!({"action": "allow"})
    })
}

async fn start_hook() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, Router::new().route("/hook", post(hook))).await;
    });
    addr
}

async fn node_with_hook(url: String, failure: &'static str) -> Cluster {
    Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        let hook = PublishHookConfig::new(
            &url,
            Duration::from_millis(300),
            failure,
            Some(WEBHOOK_SECRET),
        );
        c.publish_hook = Some(hook.unwrap());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_allows_rejects_and_rewrites() {
    let hook = start_hook().await;
    let cluster = node_with_hook(format!("http://{hook}/hook"), "closed").await;
    let mut alice = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    let mut bob = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    alice.join("lobby").await;
    bob.join("lobby").await;

    alice.say_ok("lobby", "hello").await;
    let refused = alice.say("lobby", "buy spam now").await;
    assert_eq!(
        (&refused["type"], &refused["code"]),
        (&json!("error"), &json!("rejected")),
        "{refused}"
    );
    assert_eq!(refused["message"], "no spam here");
    alice.say_ok("lobby", "see http://evil.example/x").await;
    // Bob gets the allowed and the rewritten messages, in order; never the spam.
    assert_eq!(
        bob.messages_in("lobby", 2).await,
        vec![(1, "hello".into()), (2, "see [link removed]/x".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_missing_hook_fails_open_or_closed_as_configured() {
    let hook = start_hook().await;
    let open = node_with_hook(format!("http://{hook}/hook"), "open").await;
    let closed = node_with_hook(format!("http://{hook}/hook"), "closed").await;
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let missing = node_with_hook(format!("http://{gone}/hook"), "closed").await;

    let mut alice = Client::connect_as(&open.url(0), &token(&fresh_user())).await;
    alice.join("lobby").await;
    let sent = alice.say("lobby", "slow").await;
    assert_eq!(sent["type"], "sent", "fail open stores it: {sent}");

    for cluster in [&closed, &missing] {
        let mut bob = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
        bob.join("lobby").await;
        let refused = bob.say("lobby", "slow").await;
        assert_eq!(refused["code"], "hook_unavailable", "{refused}");
        // Nothing was stored: the next message is the room's first.
        let sent = bob.say("lobby", "hello").await;
        if cluster.nodes[0].addr == missing.nodes[0].addr {
            assert_eq!(sent["code"], "hook_unavailable", "{sent}");
        } else {
            assert_eq!(
                (&sent["type"], &sent["seq"]),
                (&json!("sent"), &json!(1)),
                "{sent}"
            );
        }
    }
}

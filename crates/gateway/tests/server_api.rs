//! The server API (`/api/v1/`) against real nodes: a bot's posts reach
//! WebSocket clients on other nodes in order with users' messages, are
//! stored and deduplicated; changes through the API reach members live;
//! disconnect and revoke act on every node; and every kind of bad input gets
//! its status and code (`server_api_refusals.rs`).

use std::time::Duration;

use chorus_gateway::auth::{Claims, RoomClaims};
use chorus_protocol::close;
use chorus_testkit::{
    ApiKeyring, BackplaneKind, Client, Cluster, Event, TEST_SECRET, api, fresh_user, token,
};
use serde_json::{Value, json};

/// Bound on a cluster-wide effect (a disconnect, a revocation reaching every node).
const WAIT: Duration = Duration::from_secs(10);

fn bot_post(body: &str, client_msg_id: &str) -> Value {
    json!({
        "from": {"id": "bot:shipping", "name": "Shipping", "kind": "bot"},
        "body": body,
        "client_msg_id": client_msg_id,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_posts_reach_every_node_in_order_stored_once_and_changes_follow() {
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::Redis, 3, move |c| {
        c.api_keys = keys.clone();
    })
    .await;
    let (a, key) = (cluster.nodes[0].addr, Some(keyring.all.as_str()));
    let mut alice = Client::connect_as(&cluster.url(1), &token(&fresh_user())).await;
    let mut bob = Client::connect_as(&cluster.url(2), &token(&fresh_user())).await;
    alice.join("orders").await;
    bob.join("orders").await;

    alice.say_ok("orders", "u1").await;
    let post = bot_post("order 42 shipped", "order-42");
    let (status, first) = api(a, "POST", "/api/v1/rooms/orders/messages", key, Some(&post)).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        (first["seq"].as_u64(), &first["duplicate"]),
        (Some(2), &json!(false))
    );
    alice.say_ok("orders", "u2").await;
    // A retry (same client_msg_id) is answered with the first post, stored once.
    let (status, retry) = api(a, "POST", "/api/v1/rooms/orders/messages", key, Some(&post)).await;
    assert_eq!(status, 200, "{retry}");
    assert_eq!((&retry["id"], &retry["seq"]), (&first["id"], &first["seq"]));
    assert_eq!(retry["duplicate"], true);

    // Bob, on a third node, gets all three once, in order, the bot marked as such.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let message = bob.message_in("orders").await;
        seen.push((message["seq"].as_u64().unwrap(), message["body"].clone()));
        if message["seq"] == 2 {
            assert_eq!(
                message["from"],
                json!({"id": "bot:shipping", "name": "Shipping", "kind": "bot"})
            );
            assert_eq!(message["id"], first["id"]);
        }
    }
    assert_eq!(
        seen,
        vec![
            (1, json!("u1")),
            (2, json!("order 42 shipped")),
            (3, json!("u2"))
        ]
    );
    let (status, page) = api(a, "GET", "/api/v1/rooms/orders/messages", key, None).await;
    assert_eq!(status, 200, "{page}");
    let bodies: Vec<&Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["body"])
        .collect();
    assert_eq!(bodies, vec!["u1", "order 42 shipped", "u2"]);

    // Changes through the API: any message, in the room's order, live.
    let edit = json!({"body": "u1 (edited by moderation)"});
    let (status, edited) = api(
        a,
        "PATCH",
        "/api/v1/rooms/orders/messages/1",
        key,
        Some(&edit),
    )
    .await;
    assert_eq!((status, edited["seq"].as_u64()), (200, Some(4)), "{edited}");
    let react = json!({"emoji": "📦", "from": {"id": "bot:shipping"}});
    let (status, reacted) = api(
        a,
        "POST",
        "/api/v1/rooms/orders/messages/3/reactions",
        key,
        Some(&react),
    )
    .await;
    assert_eq!(
        (status, reacted["seq"].as_u64()),
        (200, Some(5)),
        "{reacted}"
    );
    let (status, deleted) = api(a, "DELETE", "/api/v1/rooms/orders/messages/3", key, None).await;
    assert_eq!(
        (status, deleted["seq"].as_u64()),
        (200, Some(6)),
        "{deleted}"
    );
    let (status, again) = api(a, "DELETE", "/api/v1/rooms/orders/messages/3", key, None).await;
    assert_eq!(
        (status, &again["code"]),
        (409, &json!("message_deleted")),
        "{again}"
    );
    let (status, unknown) = api(
        a,
        "PATCH",
        "/api/v1/rooms/orders/messages/99",
        key,
        Some(&edit),
    )
    .await;
    assert_eq!(
        (status, &unknown["code"]),
        (404, &json!("unknown_message")),
        "{unknown}"
    );
    let mut changes = Vec::new();
    for _ in 0..3 {
        let change = bob
            .wait_for("a change", |v| {
                matches!(v["type"].as_str(), Some("edited" | "reaction" | "deleted"))
            })
            .await;
        changes.push((change["seq"].as_u64().unwrap(), change["type"].clone()));
        if change["type"] == "edited" {
            assert_eq!(change["by"], json!({"id": "api:all", "kind": "system"}));
        }
    }
    assert_eq!(
        changes,
        vec![
            (4, json!("edited")),
            (5, json!("reaction")),
            (6, json!("deleted"))
        ]
    );

    // Broadcast: one post per room, each numbered in its room.
    let broadcast = json!({"rooms": ["orders", "ops"], "from": {"id": "system", "kind": "system"}, "body": "maintenance at 22:00"});
    let (status, results) = api(a, "POST", "/api/v1/broadcast", key, Some(&broadcast)).await;
    assert_eq!(status, 200, "{results}");
    let results = results["results"].as_array().unwrap();
    assert_eq!(results[0]["published"]["seq"], 7, "{results:?}");
    assert_eq!(results[1]["published"]["seq"], 1, "{results:?}");
    let message = bob.message_in("orders").await;
    assert_eq!(
        (&message["body"], &message["from"]["kind"]),
        (&json!("maintenance at 22:00"), &json!("system"))
    );

    // Room info and presence see both members, whichever node holds them.
    let (status, info) = api(a, "GET", "/api/v1/rooms/orders", key, None).await;
    assert_eq!((status, info["seq"].as_u64()), (200, Some(7)), "{info}");
    let (status, presence) = api(a, "GET", "/api/v1/rooms/orders/presence", key, None).await;
    assert_eq!(status, 200, "{presence}");
    assert_eq!(presence["total"], 2, "{presence}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_and_revoke_act_on_every_node() {
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::Redis, 3, move |c| {
        c.api_keys = keys.clone();
    })
    .await;
    let (a, key) = (cluster.nodes[0].addr, Some(keyring.all.as_str()));
    let user = fresh_user();
    let now = chorus_protocol::unix_micros() / 1_000_000;
    let old = signed(&user, now - 10);
    let mut phone = Client::connect_as(&cluster.url(1), &old).await;
    let mut laptop = Client::connect_as(&cluster.url(2), &old).await;
    let mut bystander = Client::connect_as(&cluster.url(2), &token(&fresh_user())).await;
    for client in [&mut phone, &mut laptop, &mut bystander] {
        client.join("lobby").await;
    }

    let path = format!("/api/v1/users/{user}/disconnect");
    let (status, answer) = api(a, "POST", &path, key, Some(&json!({}))).await;
    assert_eq!(
        (status, answer["code"].as_u64()),
        (202, Some(u64::from(close::DISCONNECTED))),
        "{answer}"
    );
    assert!(matches!(
        phone.closed().await,
        Event::Closed(close::DISCONNECTED)
    ));
    assert!(matches!(
        laptop.closed().await,
        Event::Closed(close::DISCONNECTED)
    ));
    bystander.sync().await;

    // Back with the same token (a disconnect is not a revocation), then revoked.
    let mut phone = Client::connect_as(&cluster.url(1), &old).await;
    phone.join("lobby").await;
    let revoke = json!({"until": (now + 3600) * 1000, "issued_before": (now - 5) * 1000});
    let (status, answer) = api(
        a,
        "POST",
        &format!("/api/v1/users/{user}/revoke"),
        key,
        Some(&revoke),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(matches!(
        phone.closed().await,
        Event::Closed(close::TOKEN_REVOKED)
    ));
    // Every node refuses the old token once the revocation reaches it.
    for node in 0..3 {
        let refused = tokio::time::timeout(WAIT, async {
            loop {
                let mut client = Client::connect_anonymous(&cluster.url(node)).await;
                let reply = client
                    .request_reply(json!({"type": "auth", "token": old}))
                    .await;
                if reply["code"] == "token_revoked" {
                    return client.closed().await;
                }
                assert_eq!(reply["type"], "authenticated", "{reply}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("node {node} still takes the revoked token after {WAIT:?}"));
        assert!(
            matches!(refused, Event::Closed(close::TOKEN_REVOKED)),
            "{refused:?}"
        );
    }
    // A token issued after the revocation's time is taken everywhere.
    let newer = signed(&user, now);
    let mut back = Client::connect_as(&cluster.url(2), &newer).await;
    back.join("lobby").await;
    // The bystander was never touched.
    bystander.sync().await;
}

/// A one-hour token for `user` issued (`iat`) at `iat`.
fn signed(user: &str, iat: u64) -> String {
    let claims = Claims {
        sub: user.to_owned(),
        exp: iat + 3600,
        nbf: None,
        iat: Some(iat),
        iss: None,
        aud: None,
        name: None,
        avatar: None,
        rooms: RoomClaims {
            join: vec!["*".into()],
            post: vec!["*".into()],
            moderate: vec![],
        },
    };
    let key = jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// The OpenAPI document is served, names every route and the bearer scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route() {
    let cluster = Cluster::start(BackplaneKind::InProcess, 1).await;
    let (status, doc) = api(
        cluster.nodes[0].addr,
        "GET",
        "/api/v1/openapi.json",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for path in [
        "/api/v1/rooms/{room}/messages",
        "/api/v1/broadcast",
        "/api/v1/rooms/{room}/messages/{seq}",
        "/api/v1/rooms/{room}/messages/{seq}/reactions",
        "/api/v1/rooms/{room}",
        "/api/v1/rooms/{room}/presence",
        "/api/v1/users/{user}/disconnect",
        "/api/v1/users/{user}/revoke",
        "/api/v1/users/{user}",
        "/api/v1/rooms",
    ] {
        assert!(
            paths.iter().any(|p| *p == path),
            "{path} missing from {paths:?}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
}

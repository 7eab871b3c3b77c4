//! The server API's listings against real nodes on Redis: a user's
//! connections and rooms, and the rooms with members, gathered from every
//! node; a node the registry lists that does not answer is named, not waited
//! for forever.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use chorus_backplane::{Delivery, Inbound};
use chorus_protocol::RoomName;
use chorus_testkit::{
    ApiKeyring, BackplaneKind, Client, Cluster, api, fresh_user, redis_settings, token,
};
use serde_json::{Value, json};

/// Bound on the presence entries reaching Redis after a join.
const WAIT: Duration = Duration::from_secs(10);

/// Asks `path` until `done` holds for the answer, at most [`WAIT`].
async fn until(
    addr: std::net::SocketAddr,
    key: &str,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            let (status, answer) = api(addr, "GET", path, Some(key), None).await;
            assert_eq!(status, 200, "{answer}");
            if done(&answer) {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    answer.unwrap_or_else(|_| panic!("GET {path} did not settle within {WAIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_connections_and_the_active_rooms_come_from_every_node() {
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::Redis, 3, move |c| {
        c.api_keys = keys.clone();
    })
    .await;
    let (a, key) = (cluster.nodes[0].addr, keyring.all.as_str());
    let user = fresh_user();
    let mut phone = Client::connect_as(&cluster.url(1), &token(&user)).await;
    let mut laptop = Client::connect_as(&cluster.url(2), &token(&user)).await;
    let mut other = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    phone.join("lobby").await;
    phone.join("orders").await;
    laptop.join("lobby").await;
    other.join("lobby").await;
    other.join("zeta").await;

    // Asked on node 0, which holds none of the user's connections.
    let path = format!("/api/v1/users/{user}");
    let (status, listing) = api(a, "GET", &path, Some(key), None).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["online"], true, "{listing}");
    assert_eq!(listing["rooms"], json!(["lobby", "orders"]), "{listing}");
    assert_eq!(listing["nodes_missing"], json!([]), "{listing}");
    let connections = listing["connections"].as_array().unwrap();
    let by_node: Vec<(&Value, &Value, &Value)> = connections
        .iter()
        .map(|c| (&c["node"], &c["id"], &c["rooms"]))
        .collect();
    let (one, two) = (json!(cluster.nodes[1].id), json!(cluster.nodes[2].id));
    let (both, lobby) = (json!(["lobby", "orders"]), json!(["lobby"]));
    let mut expected = vec![
        (&one, &phone.welcome["conn"], &both),
        (&two, &laptop.welcome["conn"], &lobby),
    ];
    expected.sort_by_key(|(node, _, _)| node.as_str().unwrap().to_owned());
    assert_eq!(by_node, expected, "{listing}");
    assert!(
        connections
            .iter()
            .all(|c| c["connected_at"].as_u64() > Some(0) && c["encoding"] == "json")
    );

    // Leaving a room and closing a connection show at once.
    phone.leave("orders").await;
    laptop.close().await;
    let listing = until(a, key, &path, |l| {
        l["connections"].as_array().unwrap().len() == 1
    })
    .await;
    assert_eq!(listing["rooms"], json!(["lobby"]), "{listing}");
    let (_, nobody) = api(a, "GET", "/api/v1/users/nobody-here", Some(key), None).await;
    assert_eq!(
        (&nobody["online"], &nobody["connections"]),
        (&json!(false), &json!([]))
    );

    // The rooms with members, by name, paged; a user on two nodes counts once.
    let page = until(a, key, "/api/v1/rooms?limit=2", |p| {
        p["rooms"] == json!([{"room": "lobby", "members_online": 2}, {"room": "orders", "members_online": 1}])
            || p["rooms"] == json!([{"room": "lobby", "members_online": 2}, {"room": "zeta", "members_online": 1}])
    })
    .await;
    let last = page["rooms"][1]["room"].as_str().unwrap().to_owned();
    assert_eq!(page["next"], json!(last), "{page}");
    let rest = format!("/api/v1/rooms?limit=2&after={last}");
    let (status, page) = api(a, "GET", &rest, Some(key), None).await;
    assert_eq!(status, 200, "{page}");
    // `orders` went when the phone left it: only `zeta` can follow.
    if last == "orders" {
        assert_eq!(
            page["rooms"],
            json!([{"room": "zeta", "members_online": 1}])
        );
    } else {
        assert_eq!(page["rooms"], json!([]));
    }
    assert_eq!(page["next"], Value::Null, "{page}");

    // Refusals: a bad page, a bad cursor, a key without the scope.
    for bad in ["/api/v1/rooms?limit=0", "/api/v1/rooms?after=%21nodes"] {
        let (status, answer) = api(a, "GET", bad, Some(key), None).await;
        assert_eq!((status, &answer["code"]), (400, &json!("invalid_query")));
    }
    let publisher = Some(keyring.publish_only.as_str());
    for path in ["/api/v1/rooms", path.as_str()] {
        let (status, answer) = api(a, "GET", path, publisher, None).await;
        assert_eq!((status, &answer["code"]), (403, &json!("missing_scope")));
    }
}

/// Hears nothing: a stand-in node that announces itself and never answers.
struct Deaf;

impl Inbound for Deaf {
    fn deliver(&self, _: &RoomName, _: Delivery) {}
    fn signal(&self, _: &RoomName, _: Bytes) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_answer_is_named_and_the_rest_still_listed() {
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::Redis, 2, move |c| {
        c.api_keys = keys.clone();
    })
    .await;
    let (a, key) = (cluster.nodes[0].addr, keyring.all.as_str());
    let user = fresh_user();
    let mut client = Client::connect_as(&cluster.url(1), &token(&user)).await;
    client.join("lobby").await;

    // A node alive by the registry (its heartbeat is there) that hangs.
    let redis = cluster.redis.as_ref().unwrap();
    let backplane = redis_settings(&redis.url())
        .connect(
            Default::default(),
            Arc::new(Deaf),
            &prometheus::Registry::new(),
        )
        .await
        .unwrap();
    let status = json!({"id": "node-hung"}).to_string();
    backplane
        .registry
        .announce("node-hung", status, Duration::from_secs(60))
        .await
        .unwrap();

    let (status, listing) = api(a, "GET", &format!("/api/v1/users/{user}"), Some(key), None).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["nodes_missing"], json!(["node-hung"]), "{listing}");
    assert_eq!(listing["rooms"], json!(["lobby"]), "{listing}");
    let (status, page) = api(a, "GET", "/api/v1/rooms", Some(key), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["nodes_missing"], json!(["node-hung"]), "{page}");
    assert_eq!(page["rooms"][0]["room"], "lobby", "{page}");
    backplane.registry.withdraw("node-hung").await.unwrap();
}

/// A single node on the in-process backplane answers its own questions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_lists_from_its_own_answer() {
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.api_keys = keys.clone();
    })
    .await;
    let (a, key) = (cluster.nodes[0].addr, keyring.all.as_str());
    let user = fresh_user();
    let mut client = Client::connect_as(&cluster.url(0), &token(&user)).await;
    client.join("solo").await;
    let (status, listing) = api(a, "GET", &format!("/api/v1/users/{user}"), Some(key), None).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(
        listing["connections"][0]["node"],
        json!(cluster.nodes[0].id)
    );
    assert_eq!(listing["connections"][0]["rooms"], json!(["solo"]));
    let page = until(a, key, "/api/v1/rooms", |p| {
        p["rooms"] == json!([{"room": "solo", "members_online": 1}])
    })
    .await;
    assert_eq!(page["next"], Value::Null, "{page}");
}

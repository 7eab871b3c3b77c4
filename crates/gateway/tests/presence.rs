//! Presence across nodes (real Redis): join and leave events once per user
//! however many tabs, the `presence` query, and convergence after a node is
//! SIGKILLed (its users leave within the presence TTL plus one refresh).

use std::{path::Path, time::Duration};

use chorus_testkit::{BackplaneKind, Client, Cluster, ProcessNode, RedisServer, fresh_user, token};
use serde_json::{Value, json};
use tokio::time::Instant;

fn presence_of(events: &std::collections::VecDeque<Value>, user: &str, state: &str) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == "presence" && e["user"]["id"] == user && e["state"] == state)
        .count()
}

async fn presence_event(client: &mut Client, user: &str, state: &str) -> Value {
    client
        .wait_for("a presence event", |e| {
            e["type"] == "presence" && e["user"]["id"] == user && e["state"] == state
        })
        .await
}

/// Waits for `body` in `room`: a marker sent after the events of interest on
/// the same node, so everything before it has arrived too.
async fn marker(client: &mut Client, room: &str, body: &str) {
    client
        .wait_for("the marker", |e| {
            e["type"] == "message" && e["room"] == room && e["body"] == body
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_are_one_member_and_the_last_one_leaving_is_a_leave() {
    let cluster = Cluster::start(BackplaneKind::Redis, 3).await;
    let bob_id = fresh_user();
    let bob_token = token(&bob_id);
    let mut alice = Client::connect(&cluster.url(0)).await;
    let alice_id = alice.welcome["user"]["id"].as_str().unwrap().to_owned();
    let mut bob = Client::connect_as(&cluster.url(1), &bob_token).await;
    let mut bob_tab = Client::connect_as(&cluster.url(2), &bob_token).await;
    let mut carol = Client::connect(&cluster.url(2)).await;
    alice.join("lobby").await;
    carol.join("elsewhere").await;

    bob.join("lobby").await;
    assert_eq!(
        presence_event(&mut alice, &bob_id, "join").await["room"],
        "lobby"
    );
    // A second tab, on another node: no second join.
    bob_tab.join("lobby").await;
    bob_tab.say_ok("lobby", "tab joined").await;
    marker(&mut alice, "lobby", "tab joined").await;
    assert_eq!(presence_of(alice.pending(), &bob_id, "join"), 0);

    let members = alice
        .request_reply(json!({"type": "presence", "room": "lobby"}))
        .await;
    assert_eq!(members["type"], "members", "{members}");
    let mut ids: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![alice_id.as_str(), bob_id.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "{members}");

    // One tab leaves: bob is still here.
    bob.leave("lobby").await;
    bob_tab.say_ok("lobby", "one tab left").await;
    marker(&mut alice, "lobby", "one tab left").await;
    assert_eq!(presence_of(alice.pending(), &bob_id, "leave"), 0);
    // The last one goes: a leave, on every node.
    bob_tab.close().await;
    presence_event(&mut alice, &bob_id, "leave").await;

    // Nobody outside the room heard any of it (carol sees only her own room's).
    carol.sync().await;
    assert!(
        carol
            .pending()
            .iter()
            .all(|e| e["type"] != "presence" || e["room"] == "elsewhere"),
        "{:?}",
        carol.pending()
    );
    let refused = carol
        .request_reply(json!({"type": "presence", "room": "lobby"}))
        .await;
    assert_eq!(refused["code"], "not_joined", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_node_leaves_no_ghosts() {
    let redis = RedisServer::start().await;
    let chorus = Path::new(env!("CARGO_BIN_EXE_chorus"));
    let args = ["--redis-url", &redis.url(), "--presence-ttl", "3s"];
    let survivor = ProcessNode::spawn(chorus, &args).await;
    let mut doomed = ProcessNode::spawn(chorus, &args).await;
    let mut alice = Client::connect(&survivor.ws_url()).await;
    let mut carol = Client::connect(&doomed.ws_url()).await;
    let carol_id = carol.welcome["user"]["id"].as_str().unwrap().to_owned();
    alice.join("lobby").await;
    carol.join("lobby").await;
    presence_event(&mut alice, &carol_id, "join").await;

    let killed = Instant::now();
    doomed.kill().await;
    presence_event(&mut alice, &carol_id, "leave").await;
    let took = killed.elapsed();
    // TTL 3 s, refreshed every 1 s: the bound the docs give, with slack for CI.
    assert!(took < Duration::from_secs(8), "leave after {took:?}");
    let members = alice
        .request_reply(json!({"type": "presence", "room": "lobby"}))
        .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 1, "{members}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_reaches_the_rooms_the_user_shares_and_the_members_list() {
    let cluster = Cluster::start(BackplaneKind::Redis, 3).await;
    let alice_id = fresh_user();
    let alice_token = token(&alice_id);
    // Alice is in "a" on node 0 and in "c" with a second connection on node 1.
    let mut alice = Client::connect_as(&cluster.url(0), &alice_token).await;
    let mut alice_tab = Client::connect_as(&cluster.url(1), &alice_token).await;
    let mut bob = Client::connect(&cluster.url(2)).await;
    let mut carol = Client::connect(&cluster.url(1)).await;
    let mut dave = Client::connect(&cluster.url(2)).await;
    alice.join("status-a").await;
    alice_tab.join("status-c").await;
    bob.join("status-a").await;
    carol.join("status-c").await;
    dave.join("status-d").await;

    let reply = alice
        .request_reply(json!({"type": "status", "status": "away"}))
        .await;
    assert_eq!(reply["type"], "status_set", "{reply}");
    assert_eq!(reply["status"], "away", "{reply}");
    // Both rooms she shares hear it, each from the node that holds her there.
    for (client, room) in [(&mut bob, "status-a"), (&mut carol, "status-c")] {
        let status = client
            .wait_for("a status", |e| {
                e["type"] == "status" && e["user"]["id"] == alice_id.as_str()
            })
            .await;
        assert_eq!(status["room"], room, "{status}");
        assert_eq!(status["status"], "away", "{status}");
    }
    // Her own connections learn it too (without a room).
    let own = alice_tab.expect("status").await;
    assert_eq!(
        (own["status"].as_str(), own.get("room")),
        (Some("away"), None)
    );
    // The member list shows it; someone who shares no room hears nothing.
    let members = bob
        .request_reply(json!({"type": "presence", "room": "status-a"}))
        .await;
    let listed: Vec<(String, String)> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        listed.contains(&(alice_id.clone(), "away".into())),
        "{members}"
    );
    dave.sync().await;
    assert!(
        dave.pending().iter().all(|e| e["type"] != "status"),
        "a user sharing no room saw the status: {:?}",
        dave.pending()
    );
    // Back online, and a bad status is refused.
    let reply = alice_tab
        .request_reply(json!({"type": "status", "status": "online"}))
        .await;
    assert_eq!(reply["type"], "status_set", "{reply}");
    let status = bob
        .wait_for("back online", |e| {
            e["type"] == "status" && e["status"] == "online"
        })
        .await;
    assert_eq!(status["user"]["id"], alice_id.as_str());
    alice
        .send(json!({"type": "status", "status": "busy", "ref": "b"}))
        .await;
    let error = alice.expect("error").await;
    assert_eq!(
        (error["code"].as_str(), error["ref"].as_str()),
        (Some("invalid_command"), Some("b"))
    );
}

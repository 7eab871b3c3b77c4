//! Presence across nodes (real Redis): join and leave events once per user
//! however many tabs, the `presence` query, and convergence after a node is
//! SIGKILLed (its users leave within the presence TTL plus one refresh).

use std::{path::Path, time::Duration};

use chorus_testkit::{BackplaneKind, Client, Cluster, ProcessNode, RedisServer, fresh_user, token};
use serde_json::{Value, json};
use tokio::time::Instant;

chorus_testkit::on_redis_and_redis_cluster!(
    two_tabs_are_one_member_and_the_last_one_leaving_is_a_leave,
    a_status_reaches_the_rooms_the_user_shares_and_the_members_list,
);

/// Whether `event` is a presence event listing `user` among its `joins` or `leaves`.
fn lists(event: &Value, user: &str, state: &str) -> bool {
    let list = if state == "join" { "joins" } else { "leaves" };
    event["type"] == "presence"
        && event[list]
            .as_array()
            .is_some_and(|users| users.iter().any(|u| u["id"] == user))
}

fn presence_of(events: &std::collections::VecDeque<Value>, user: &str, state: &str) -> usize {
    events.iter().filter(|e| lists(e, user, state)).count()
}

async fn presence_event(client: &mut Client, user: &str, state: &str) -> Value {
    client
        .wait_for("a presence event", |e| lists(e, user, state))
        .await
}

/// A barrier for presence: a new user joins `room` (through `node`), and
/// `client` waits for that join. Changes relayed before it arrive in the same
/// batch or an earlier one, so they are in `client`'s pending events by then.
async fn presence_barrier(client: &mut Client, node: &str, room: &str) -> Client {
    let mut newcomer = Client::connect(node).await;
    let id = newcomer.welcome["user"]["id"].as_str().unwrap().to_owned();
    newcomer.join(room).await;
    presence_event(client, &id, "join").await;
    newcomer
}

async fn two_tabs_are_one_member_and_the_last_one_leaving_is_a_leave(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 3).await;
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
    // A second tab, on another node: no second join. (The barrier's newcomer
    // joins through the tab's node, whose presence task writes arrivals in
    // order: a join of the tab would come with the newcomer's or before it.)
    bob_tab.join("lobby").await;
    let dave = presence_barrier(&mut alice, &cluster.url(2), "lobby").await;
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
    let dave_id = dave.welcome["user"]["id"].as_str().unwrap().to_owned();
    let mut expected = vec![alice_id.as_str(), bob_id.as_str(), dave_id.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "{members}");
    assert_eq!(members["total"], 3, "{members}");

    // One tab leaves: bob is still here.
    bob.leave("lobby").await;
    // `leave` ends presence without waiting: a ping after it on the same
    // connection, then the barrier, come after its script.
    bob.sync().await;
    bob_tab.say_ok("lobby", "one tab left").await;
    let _erin = presence_barrier(&mut alice, &cluster.url(1), "lobby").await;
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

async fn a_status_reaches_the_rooms_the_user_shares_and_the_members_list(kind: BackplaneKind) {
    let cluster = Cluster::start(kind, 3).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_filling_up_sends_its_members_batches_not_one_event_per_user() {
    let cluster = Cluster::start(BackplaneKind::Redis, 2).await;
    let mut alice = Client::connect(&cluster.url(0)).await;
    alice.join("crowded").await;
    let crowd = 30;
    let joining = (0..crowd).map(|i| {
        let url = cluster.url(i % 2);
        async move {
            let mut client = Client::connect(&url).await;
            client.join("crowded").await;
            client
        }
    });
    let clients = futures_util::future::join_all(joining).await;
    let ids: Vec<String> = clients
        .iter()
        .map(|c| c.welcome["user"]["id"].as_str().unwrap().to_owned())
        .collect();
    // Every join arrives; the events that carry them are far fewer.
    let mut missing: std::collections::HashSet<String> = ids.into_iter().collect();
    let mut events = 0;
    while !missing.is_empty() {
        let event = alice
            .wait_for("presence joins", |e| e["type"] == "presence")
            .await;
        events += 1;
        for user in event["joins"].as_array().into_iter().flatten() {
            missing.remove(user["id"].as_str().unwrap());
        }
    }
    assert!(events < crowd, "{events} presence events for {crowd} joins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_listed_at_once_after_joining() {
    let cluster = Cluster::start(BackplaneKind::Redis, 1).await;
    let mut members_so_far = Vec::new();
    for n in 0..10 {
        let mut client = Client::connect(&cluster.url(0)).await;
        let id = client.welcome["user"]["id"].as_str().unwrap().to_owned();
        // Both at once: the query comes before the node's presence task may
        // have written the entry.
        client.send(json!({"type": "join", "room": "lobby"})).await;
        let members = client
            .request_reply(json!({"type": "presence", "room": "lobby"}))
            .await;
        assert_eq!(members["type"], "members", "{members}");
        let listed = members["members"].as_array().unwrap();
        assert!(listed.iter().any(|m| m["id"] == id.as_str()), "{members}");
        assert_eq!(members["total"], n + 1, "{members}");
        members_so_far.push(client);
    }
}

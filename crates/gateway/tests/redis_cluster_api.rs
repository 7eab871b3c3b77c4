//! The server API's cluster-wide parts on a Redis Cluster: webhooks (a
//! queue whose keys share one slot, leases per partition) deliver every
//! event of rooms spread over every shard once, signed, in room order; the
//! listings ask every node over a shard channel.

use std::{collections::HashSet, path::Path, time::Duration};

use chorus_gateway::auth::new_key;
use chorus_testkit::{
    Client, ProcessNode, RedisCluster, WebhookReceiver, api, failover, fresh_user, slot_of, token,
    webhooks_file,
};
use serde_json::json;

/// Bound on deliveries (retries back off, with full jitter).
const DELIVERED: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_listings_work_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let receiver = WebhookReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("webhooks.toml");
    std::fs::write(
        &hooks,
        webhooks_file(&[("app", &receiver.url(), &["message.created"], &[])]),
    )
    .unwrap();
    let (key, hash) = new_key();
    let keys = dir.path().join("api-keys.toml");
    let entry = format!("[[keys]]\nname = \"ops\"\nsha256 = \"{hash}\"\nscopes = [\"presence\"]\n");
    std::fs::write(&keys, entry).unwrap();
    let url = cluster.url();
    let (hooks, keys) = (hooks.to_str().unwrap(), keys.to_str().unwrap());
    let mut args = vec!["--redis-url", &url, "--redis-mode", "cluster"];
    args.extend(["--webhooks-file", hooks, "--api-keys-file", keys]);
    args.extend(["--send-rate", "1000/s", "--user-send-rate", "1000/s"]);
    args.extend(failover::NODE_ARGS);
    let chorus = Path::new(env!("CARGO_BIN_EXE_chorus"));
    let a = ProcessNode::spawn(chorus, &args).await;
    let b = ProcessNode::spawn(chorus, &args).await;

    // Rooms on every primary: names whose slots belong to each.
    let mut rooms: Vec<String> = Vec::new();
    for primary in 0..3 {
        for n in 0.. {
            let room = format!("hooks-{n}");
            let owner = cluster.owner_of(slot_of(&room)).await;
            if owner == Some(primary) && !rooms.contains(&room) {
                rooms.push(room);
                break;
            }
        }
    }
    let user = fresh_user();
    let mut on_a = Client::connect_as(&a.ws_url(), &token(&user)).await;
    let mut on_b = Client::connect_as(&b.ws_url(), &token(&fresh_user())).await;
    let mut second = Client::connect_as(&b.ws_url(), &token(&user)).await;
    for room in &rooms {
        on_a.join(room).await;
        on_b.join(room).await;
    }
    second.join(&rooms[0]).await;
    let mut sent = HashSet::new();
    for i in 0..30 {
        let sender = if i % 2 == 0 { &mut on_a } else { &mut on_b };
        let id = sender.say_ok(&rooms[i % 3], &format!("m{i}")).await;
        sent.insert(format!("msg_{id}"));
    }
    let taken = receiver
        .wait_until("30 events", DELIVERED, |t| {
            t.iter().map(|r| &r.id).collect::<HashSet<_>>().len() >= 30
        })
        .await;
    let ids: HashSet<String> = taken.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, sent);
    // Once per cluster: no redelivery without a failure.
    assert_eq!(taken.len(), 30, "delivered more than once");
    assert!(taken.iter().all(|r| r.signed));
    for room in &rooms {
        let seqs: Vec<u64> = taken
            .iter()
            .filter(|r| r.body["data"]["room"] == json!(room))
            .map(|r| r.body["data"]["message"]["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "{room}");
    }

    // The user listing, asked on node a, finds the connections on both.
    let (status, listing) = api(
        a.addr,
        "GET",
        &format!("/api/v1/users/{user}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200, "{listing}");
    let mut found: Vec<&str> = listing["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    found.sort_unstable();
    let mut want = vec![
        on_a.welcome["conn"].as_str().unwrap(),
        second.welcome["conn"].as_str().unwrap(),
    ];
    want.sort_unstable();
    assert_eq!(found, want, "{listing}");
    assert_eq!(listing["nodes_missing"], json!([]), "{listing}");
}

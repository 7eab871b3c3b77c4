//! Keeping the archive: a room exported as JSON Lines, a user's messages
//! erased on request (tombstoned where Redis still holds them, gone from
//! PostgreSQL), and messages past their room's retention swept out by a
//! node, on real nodes, Redis and PostgreSQL.

use std::time::Duration;

use chorus_archive::{Archive, ArchiveSettings, Entry, EntryBody, RetentionRule};
use chorus_gateway::Config;
use chorus_protocol::{ChatMessage, RoomName, Sender};
use chorus_testkit::{
    ApiKeyring, BackplaneKind, Client, Cluster, Postgres, api, eventually, fresh_user,
    http_request, token,
};
use serde_json::{Value, json};

fn settings(db: &Postgres) -> ArchiveSettings {
    ArchiveSettings {
        connect_timeout: Duration::from_secs(2),
        retention: vec![RetentionRule {
            pattern: "old.*".into(),
            keep: Duration::from_secs(24 * 3600),
        }],
        retention_every: Duration::from_millis(200),
        ..ArchiveSettings::new(db.url())
    }
}

/// A message of `room` sent `age` ago, as the archive stores it.
fn aged(room: &str, seq: u64, age: Duration) -> Entry {
    let now = chorus_protocol::unix_micros() / 1000;
    Entry {
        seq,
        body: EntryBody::Message(Box::new(ChatMessage {
            id: uuid::Uuid::now_v7(),
            room: RoomName::parse(room).unwrap(),
            from: Sender {
                id: "old-timer".into(),
                name: None,
                avatar: None,
                kind: None,
            },
            ts: now - age.as_millis() as u64,
            body: format!("message {seq}"),
            seq,
            epoch: None,
            mentions: Vec::new(),
            edited: None,
            deleted: false,
            reactions: Vec::new(),
            attachments: Vec::new(),
        })),
    }
}

async fn archived_count(archive: &Archive, room: &str) -> Option<usize> {
    archive
        .page(room, None, 1000)
        .await
        .ok()
        .map(|(m, _)| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_erase_and_retention_keep_the_archive_as_asked() {
    let db = Postgres::start().await;
    let archived = settings(&db);
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::Redis, 1, move |c: &mut Config| {
        c.archive = Some(archived.clone());
        c.api_keys = keys.clone();
    })
    .await;
    let archive = Archive::new(&settings(&db)).unwrap();
    let (addr, all) = (cluster.nodes[0].addr, Some(keyring.all.as_str()));

    // Retention: two days old in a room matching old.* goes; elsewhere it stays.
    eventually("the schema migrated", || async {
        archive.position("none").await.ok()
    })
    .await;
    let two_days = Duration::from_secs(2 * 24 * 3600);
    let old: Vec<Entry> = (1..=3).map(|s| aged("old.logs", s, two_days)).collect();
    archive.append("old.logs", 1, &old).await.unwrap();
    let kept: Vec<Entry> = (1..=2).map(|s| aged("kept.logs", s, two_days)).collect();
    archive.append("kept.logs", 1, &kept).await.unwrap();
    let archive = &archive;
    eventually("old.logs swept", || async move {
        (archived_count(archive, "old.logs").await? == 0).then_some(())
    })
    .await;
    assert_eq!(archived_count(archive, "kept.logs").await, Some(2));

    // Export: every message as it is now, one JSON per line, oldest first.
    let (ada, bob) = (fresh_user(), fresh_user());
    let mut ada_ws = Client::connect_as(&cluster.url(0), &token(&ada)).await;
    let mut bob_ws = Client::connect_as(&cluster.url(0), &token(&bob)).await;
    ada_ws.join("story").await;
    bob_ws.join("story").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let client = if i % 2 == 0 { &mut ada_ws } else { &mut bob_ws };
        ids.push(client.say_ok("story", &format!("ada-secret {i}")).await);
    }
    let edit = json!({"type": "edit", "room": "story", "seq": 2, "body": "edited by bob"});
    assert_eq!(bob_ws.request_reply(edit).await["type"], "changed");
    let exported = eventually("the story archived and exported", || async {
        let (status, body) = http_request(addr, "GET", "/api/v1/rooms/story/export", None, all)
            .await
            .ok()?;
        let lines: Vec<Value> = body
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        (status == 200 && lines.len() == 5 && lines[1]["body"] == "edited by bob").then_some(lines)
    })
    .await;
    let exported_ids: Vec<&str> = exported.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(exported_ids, ids);
    assert!(exported.iter().all(|m| m["epoch"].as_u64().is_some()));
    let publisher = Some(keyring.publish_only.as_str());
    let (status, _) = api(addr, "GET", "/api/v1/rooms/story/export", publisher, None).await;
    assert_eq!(status, 403);

    // Erase Ada's messages: tombstones where Redis holds them, members told,
    // nothing of hers left in the archive or its search.
    let path = format!("/api/v1/users/{ada}/messages");
    let (status, erased) = api(addr, "DELETE", &path, all, None).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(
        (erased["erased"].as_u64(), &erased["more"]),
        (Some(3), &json!(false))
    );
    for seq in [1, 3, 5] {
        let deleted = bob_ws
            .wait_for("a deleted", |e| {
                e["type"] == "deleted" && e["target"] == seq
            })
            .await;
        assert_eq!(deleted["room"], "story");
    }
    let page = bob_ws
        .request_reply(json!({"type": "history", "room": "story"}))
        .await;
    let shown: Vec<(bool, &str)> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["deleted"] == true, m["body"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shown,
        [
            (true, ""),
            (false, "edited by bob"),
            (true, ""),
            (false, "ada-secret 3"),
            (true, "")
        ]
    );
    assert!(archive.messages_of(&ada, 10).await.unwrap().is_empty());
    let (_, found) = api(addr, "GET", "/api/v1/search?q=ada-secret", all, None).await;
    let bodies: Vec<&str> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["ada-secret 3"], "only Bob's message is left");
    // Again: nothing left to erase; bad input gets a code.
    let (_, again) = api(addr, "DELETE", &path, all, None).await;
    assert_eq!(again["erased"], 0);
    let (status, _) = api(addr, "DELETE", &path, publisher, None).await;
    assert_eq!(status, 403);
}

//! The archive (`--database-url`) on 3 nodes with Redis and a real
//! PostgreSQL: every message and every change, sent through any node, ends
//! in PostgreSQL exactly once, as history shows it.

use std::time::Duration;

use chorus_archive::{Archive, ArchiveSettings};
use chorus_gateway::Config;
use chorus_protocol::ChatMessage;
use chorus_testkit::{BackplaneKind, Client, Cluster, Postgres, eventually, fresh_user, token};
use serde_json::{Value, json};

fn settings(db: &Postgres) -> ArchiveSettings {
    ArchiveSettings {
        pool_size: 4,
        connect_timeout: Duration::from_secs(2),
        ..ArchiveSettings::new(db.url())
    }
}

/// A room's history as a client sees it: (seq, id, body, deleted, reactions).
fn shown(page: &Value) -> Vec<(u64, String, String, bool, usize)> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["id"].as_str().unwrap().to_owned(),
                m["body"].as_str().unwrap().to_owned(),
                m["deleted"].as_bool().unwrap_or(false),
                m["reactions"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

/// The archive's messages, shaped as [`shown`] shapes history.
fn archived_rows(messages: &[ChatMessage]) -> Vec<(u64, String, String, bool, usize)> {
    messages
        .iter()
        .map(|m| {
            (
                m.seq,
                m.id.to_string(),
                m.body.clone(),
                m.deleted,
                m.reactions.len(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_and_change_through_any_node_is_archived_exactly_once() {
    let db = Postgres::start().await;
    let archived = settings(&db);
    let cluster = Cluster::start_with(BackplaneKind::Redis, 3, move |c: &mut Config| {
        c.archive = Some(archived.clone());
    })
    .await;
    let rooms: Vec<String> = (0..12).map(|i| format!("arch-{i}")).collect();
    let mut clients = Vec::new();
    for node in 0..3 {
        let mut client = Client::connect_as(&cluster.url(node), &token(&fresh_user())).await;
        for room in &rooms {
            client.join(room).await;
        }
        clients.push(client);
    }
    for round in 0..4 {
        for (i, room) in rooms.iter().enumerate() {
            let client = &mut clients[(i + round) % 3];
            client
                .say_ok(room, &format!("round {round} in {room}"))
                .await;
        }
    }
    // Changes, each through the node its author is on.
    for (i, room) in rooms.iter().enumerate().take(6) {
        let author = &mut clients[i % 3];
        let edit =
            json!({"type": "edit", "room": room, "seq": 1, "body": format!("edited in {room}")});
        assert_eq!(author.request_reply(edit).await["type"], "changed");
        let reader = &mut clients[(i + 1) % 3];
        let react = json!({"type": "react", "room": room, "seq": 2, "emoji": "👍"});
        assert_eq!(reader.request_reply(react).await["type"], "changed");
        let deleter = &mut clients[(i + 2) % 3];
        let delete = json!({"type": "delete", "room": room, "seq": 3});
        assert_eq!(deleter.request_reply(delete).await["type"], "changed");
    }

    let archive = Archive::new(&settings(&db)).unwrap();
    for room in &rooms {
        let page = clients[0]
            .request_reply(json!({"type": "history", "room": room, "limit": 100}))
            .await;
        let expected = shown(&page);
        assert_eq!(expected.len(), 4, "{page}");
        let what = format!("{room} archived as history shows it");
        let (archive, expected) = (&archive, &expected);
        eventually(&what, || async move {
            let (messages, more) = archive.page(room, None, 1000).await.ok()?;
            let got = archived_rows(&messages);
            (!more && &got == expected).then_some(())
        })
        .await;
        // Every entry (4 messages, and 3 changes in half the rooms) once.
        let position = archive.position(room).await.unwrap();
        let changes = if room_index(room) < 6 { 3 } else { 0 };
        assert_eq!(position.map(|(_, seq)| seq), Some(4 + changes), "{room}");
    }
    drop(cluster);
}

fn room_index(room: &str) -> usize {
    room.trim_start_matches("arch-").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_database_is_down_is_ready_and_chats_and_archives_once_it_is_up() {
    let mut db = Postgres::start().await;
    db.kill().await;
    let archived = settings(&db);
    let cluster = Cluster::start_with(BackplaneKind::Redis, 1, move |c: &mut Config| {
        c.archive = Some(archived.clone());
    })
    .await;
    let addr = cluster.nodes[0].addr;
    assert_eq!(
        chorus_testkit::http_get(addr, "/readyz").await.unwrap().0,
        200,
        "archiving is not delivery: ready without the database"
    );
    let mut client = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    client.join("down").await;
    let first = client.say_ok("down", "while the database is down").await;
    // The database comes back: the node migrates and archives what waited.
    db.restart().await;
    client.say_ok("down", "after it came back").await;
    let archive = Archive::new(&settings(&db)).unwrap();
    let archive = &archive;
    let (messages, _) = eventually("both messages archived", || async move {
        let page = archive.page("down", None, 10).await.ok()?;
        (page.0.len() == 2).then_some(page)
    })
    .await;
    assert_eq!(messages[0].id.to_string(), first);
}

#[test]
fn chorus_migrate_brings_the_schema_up_and_refuses_bad_input() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(Postgres::start());
    let chorus = env!("CARGO_BIN_EXE_chorus");
    let run = |args: &[&str]| {
        std::process::Command::new(chorus)
            .arg("migrate")
            .args(args)
            .env_remove("CHORUS_DATABASE_URL")
            .output()
            .unwrap()
    };
    let done = run(&["--database-url", &db.url()]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // Again: nothing to do, still fine.
    assert!(run(&["--database-url", &db.url()]).status.success());
    let archive = Archive::new(&settings(&db)).unwrap();
    assert_eq!(runtime.block_on(archive.position("none")).unwrap(), None);
    let missing = run(&[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--database-url"));
    let bad = run(&["--database-url", "postgres://u@h:notaport/db"]);
    assert_eq!(bad.status.code(), Some(2));
    let secret = "postgres://chorus:hunter2@127.0.0.1:1/postgres";
    let refused = run(&["--database-url", secret]);
    assert_eq!(refused.status.code(), Some(1), "no database there");
    let said = String::from_utf8_lossy(&refused.stderr).to_string()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(
        !said.contains("hunter2"),
        "the password is never printed: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archiving_node_killed_mid_run_and_a_database_restart_lose_and_repeat_nothing() {
    let redis = chorus_testkit::RedisServer::start().await;
    let mut db = Postgres::start().await;
    let (redis_url, db_url) = (redis.url(), db.url());
    let chorus = std::path::Path::new(env!("CARGO_BIN_EXE_chorus"));
    let args = |id: &'static str| {
        let mut args = vec![
            "--redis-url".to_owned(),
            redis_url.clone(),
            "--database-url".to_owned(),
            db_url.clone(),
            "--node-id".to_owned(),
            id.to_owned(),
        ];
        args.extend(chorus_testkit::chaos::NODE_ARGS.map(String::from));
        args
    };
    let spawn = |id: &'static str| {
        let args = args(id);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            chorus_testkit::ProcessNode::spawn(chorus, &args).await
        }
    };
    // The first node takes the archive's leases (it is alone), then lets
    // about half lapse to the second, which also sends.
    let mut archiver = spawn("archiver-a").await;
    let sender_node = spawn("archiver-b").await;
    let rooms: Vec<String> = (0..6).map(|i| format!("chaos-arch-{i}")).collect();
    let mut sender = Client::connect_as(&sender_node.ws_url(), &token(&fresh_user())).await;
    for room in &rooms {
        sender.join(room).await;
    }
    let mut sent = 0;
    let mut send_round = async |sender: &mut Client, tag: &str| {
        for room in &rooms {
            for i in 0..10 {
                sender.say_ok(room, &format!("{tag} {i}")).await;
                sent += 1;
            }
        }
    };
    send_round(&mut sender, "before").await;
    // The lease holder dies mid-run; the other node takes its partitions
    // within the lease's TTL and carries on from the cursors.
    archiver.kill().await;
    send_round(&mut sender, "after the kill").await;
    // PostgreSQL dies and comes back while messages keep coming.
    db.kill().await;
    send_round(&mut sender, "database down").await;
    db.restart().await;
    send_round(&mut sender, "database back").await;
    assert_eq!(sent, 240);

    let archive = Archive::new(&settings(&db)).unwrap();
    for room in &rooms {
        let page = sender
            .request_reply(json!({"type": "history", "room": room, "limit": 100}))
            .await;
        let expected = shown(&page);
        assert_eq!(expected.len(), 40, "{page}");
        let (archive, expected) = (&archive, &expected);
        let what = format!("{room} archived whole after the kill and the restart");
        eventually(&what, || async move {
            let (messages, _) = archive.page(room, None, 1000).await.ok()?;
            let got = archived_rows(&messages);
            (&got == expected).then_some(())
        })
        .await;
        assert_eq!(archive.position(room).await.unwrap().map(|p| p.1), Some(40));
    }
    drop(sender_node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_over_tls_trusts_the_ca_given_and_no_other() {
    let db = Postgres::start_tls().await;
    let url = format!("{}?sslmode=require", db.url());
    let trusted = ArchiveSettings {
        ca_file: Some(db.tls_ca()),
        ..settings(&db)
    };
    let trusted = ArchiveSettings {
        url: url.clone(),
        ..trusted
    };
    let node_settings = trusted.clone();
    let cluster = Cluster::start_with(BackplaneKind::Redis, 1, move |c: &mut Config| {
        c.archive = Some(node_settings.clone());
    })
    .await;
    let mut client = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    client.join("sealed").await;
    let id = client.say_ok("sealed", "over TLS").await;
    let archive = Archive::new(&trusted).unwrap();
    let archive = &archive;
    let (messages, _) = eventually("archived over TLS", || async move {
        let page = archive.page("sealed", None, 10).await.ok()?;
        (page.0.len() == 1).then_some(page)
    })
    .await;
    assert_eq!(messages[0].id.to_string(), id);
    // The system's roots do not know the test CA: no connection.
    let unknown_ca = Archive::new(&ArchiveSettings {
        url: url.clone(),
        ..settings(&db)
    })
    .unwrap();
    assert!(unknown_ca.position("sealed").await.is_err());
    // Without TLS the server refuses.
    let plain = Archive::new(&ArchiveSettings {
        url: format!("{}?sslmode=disable", db.url()),
        ca_file: Some(db.tls_ca()),
        ..settings(&db)
    })
    .unwrap();
    assert!(plain.position("sealed").await.is_err());
}

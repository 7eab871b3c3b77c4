//! The archive's store against a real PostgreSQL (started by the test in a
//! temporary directory): every entry exactly once however often and by how
//! many writers it is appended, changes applied, paging across epochs, and a
//! database restart survived.

mod common;

use chorus_archive::Entry;
use chorus_protocol::{ChangeKind, ChatMessage};
use chorus_testkit::Postgres;
use common::{archive, change, message};

fn bodies(messages: &[ChatMessage]) -> Vec<(u64, String)> {
    messages.iter().map(|m| (m.seq, m.body.clone())).collect()
}

#[tokio::test]
async fn entries_are_archived_once_however_often_they_come_and_changes_apply() {
    let db = Postgres::start().await;
    let archive = archive(&db).await;
    let entries: Vec<Entry> = (1..=5)
        .map(|seq| message("lobby", seq, &format!("m{seq}")))
        .collect();
    let first = archive.append("lobby", 7, &entries).await.unwrap();
    assert_eq!((first.written, first.skipped, first.lost), (5, 0, 0));
    // A retry, and an overlapping later batch: only what is new is written.
    let again = archive.append("lobby", 7, &entries).await.unwrap();
    assert_eq!((again.written, again.skipped), (0, 5));
    let mut later: Vec<Entry> = entries[3..].to_vec();
    later.push(message("lobby", 6, "m6"));
    later.push(change(
        "lobby",
        7,
        2,
        "ada",
        ChangeKind::Edit("m2, fixed".into()),
    ));
    later.push(change("lobby", 8, 3, "bob", ChangeKind::React("👍".into())));
    later.push(change("lobby", 9, 3, "cy", ChangeKind::React("👍".into())));
    later.push(change(
        "lobby",
        10,
        3,
        "bob",
        ChangeKind::Unreact("👍".into()),
    ));
    later.push(change("lobby", 11, 4, "ada", ChangeKind::Delete));
    let more = archive.append("lobby", 7, &later).await.unwrap();
    assert_eq!((more.written, more.skipped), (6, 2));
    assert_eq!(archive.position("lobby").await.unwrap(), Some((7, 11)));

    let (messages, older) = archive.page("lobby", None, 100).await.unwrap();
    assert!(!older);
    assert_eq!(
        bodies(&messages),
        [
            (1, "m1"),
            (2, "m2, fixed"),
            (3, "m3"),
            (4, ""),
            (5, "m5"),
            (6, "m6")
        ]
        .map(|(s, b)| (s, b.to_owned()))
    );
    assert_eq!(messages[1].edited, Some(1_800_000_100_007));
    assert_eq!(messages[2].reactions.len(), 1);
    assert_eq!(messages[2].reactions[0].users, ["cy"]);
    assert!(messages[3].deleted);

    // Entries gone from Redis before they were archived are counted, not invented.
    let gap = archive
        .append("lobby", 7, &[message("lobby", 15, "m15")])
        .await
        .unwrap();
    assert_eq!((gap.written, gap.lost), (1, 3));
}

#[tokio::test]
async fn pages_go_back_across_epochs_oldest_first() {
    let db = Postgres::start().await;
    let archive = archive(&db).await;
    let old: Vec<Entry> = (1..=3)
        .map(|s| message("team", s, &format!("old {s}")))
        .collect();
    let new: Vec<Entry> = (1..=2)
        .map(|s| message("team", s, &format!("new {s}")))
        .collect();
    archive.append("team", 100, &old).await.unwrap();
    archive.append("team", 200, &new).await.unwrap();
    // An entry of the epoch the room has left is not taken any more.
    let stale = archive
        .append("team", 100, &[message("team", 4, "late")])
        .await
        .unwrap();
    assert_eq!((stale.written, stale.skipped), (0, 1));

    let (latest, more) = archive.page("team", None, 3).await.unwrap();
    assert_eq!(
        bodies(&latest),
        [(3, "old 3"), (1, "new 1"), (2, "new 2")].map(|(s, b)| (s, b.to_owned()))
    );
    assert!(more);
    let (older, more) = archive.page("team", Some((100, 3)), 10).await.unwrap();
    assert_eq!(
        bodies(&older),
        [(1, "old 1"), (2, "old 2")].map(|(s, b)| (s, b.to_owned()))
    );
    assert!(!more);
}

#[tokio::test]
async fn writers_racing_on_one_room_archive_each_entry_once() {
    let db = Postgres::start().await;
    let (a, b) = (archive(&db).await, archive(&db).await);
    let entries: Vec<Entry> = (1..=200)
        .map(|s| message("busy", s, &format!("m{s}")))
        .collect();
    let mut tasks = Vec::new();
    for (i, archive) in [a.clone(), b.clone(), a, b].into_iter().enumerate() {
        let entries = entries.clone();
        tasks.push(tokio::spawn(async move {
            let mut written = 0;
            // Each writer goes in its own batch size, so their batches overlap.
            for chunk in entries.chunks(7 + i * 5) {
                written += archive.append("busy", 1, chunk).await.unwrap().written;
            }
            written
        }));
    }
    let mut written = 0;
    for task in tasks {
        written += task.await.unwrap();
    }
    assert_eq!(written, 200, "every entry written by exactly one writer");
    let reader = archive(&db).await;
    let (messages, _) = reader.page("busy", None, 1000).await.unwrap();
    assert_eq!(messages.len(), 200);
}

#[tokio::test]
async fn a_database_restart_fails_appends_cleanly_and_the_pool_recovers() {
    let mut db = Postgres::start().await;
    let archive = archive(&db).await;
    archive
        .append("r", 1, &[message("r", 1, "before")])
        .await
        .unwrap();
    db.kill().await;
    let failed = archive.append("r", 1, &[message("r", 2, "during")]).await;
    assert!(failed.is_err(), "an append to a dead database fails");
    db.restart().await;
    // The pool throws the dead connections away; the retry goes through.
    let mut appended = None;
    for _ in 0..5 {
        if let Ok(done) = archive.append("r", 1, &[message("r", 2, "during")]).await {
            appended = Some(done);
            break;
        }
    }
    assert_eq!(appended.map(|a| a.written), Some(1));
    let (messages, _) = archive.page("r", None, 10).await.unwrap();
    assert_eq!(
        bodies(&messages),
        [(1, "before".to_owned()), (2, "during".to_owned())]
    );
}

//! Search against a real PostgreSQL: by current text, never deleted
//! messages or rooms the caller may not read, ranked and paged, snippets
//! as plain text, and hostile input harmless.

mod common;

use chorus_archive::{Archive, Entry, SearchQuery};
use chorus_protocol::ChangeKind;
use chorus_testkit::Postgres;
use common::{archive, change, message};

async fn seeded(db: &Postgres) -> Archive {
    let archive = archive(db).await;
    let rooms: [(&str, Vec<Entry>); 6] = [
        (
            "team-1.dev",
            vec![
                message("team-1.dev", 1, "the deploy pipeline is green"),
                message("team-1.dev", 2, "deploy failed on node three"),
                message("team-1.dev", 3, "lunch at noon"),
                change(
                    "team-1.dev",
                    4,
                    3,
                    "ada",
                    ChangeKind::Edit("lunch moved, deploy first".into()),
                ),
                message("team-1.dev", 5, "secret deploy keys rotated"),
                change("team-1.dev", 6, 5, "ada", ChangeKind::Delete),
            ],
        ),
        (
            "team-2.dev",
            vec![message("team-2.dev", 1, "deploy of team two")],
        ),
        (
            "dm:ada+bob",
            vec![message("dm:ada+bob", 1, "psst, the deploy is mine")],
        ),
        (
            "dm:bob+cy",
            vec![message("dm:bob+cy", 1, "deploy gossip about ada")],
        ),
        ("a_b", vec![message("a_b", 1, "deploy sale")]),
        ("axb", vec![message("axb", 1, "deploy elsewhere")]),
    ];
    for (room, entries) in rooms {
        archive.append(room, 1, &entries).await.unwrap();
    }
    archive
}

fn query(text: &str, readable: &[&str]) -> SearchQuery {
    SearchQuery {
        text: text.into(),
        user: Some("ada".into()),
        readable: readable.iter().map(|p| (*p).to_owned()).collect(),
        rooms: None,
        limit: 20,
        offset: 0,
    }
}

fn found(hits: &[chorus_archive::Hit]) -> Vec<(String, u64)> {
    let mut found: Vec<_> = hits
        .iter()
        .map(|h| (h.message.room.as_str().to_owned(), h.message.seq))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn finds_current_text_in_readable_rooms_and_never_deleted_messages() {
    let db = Postgres::start().await;
    let archive = seeded(&db).await;
    let (hits, _) = archive
        .search(&query("deploy", &["team-1.*"]))
        .await
        .unwrap();
    assert_eq!(
        found(&hits),
        [
            ("dm:ada+bob", 1),
            ("team-1.dev", 1),
            ("team-1.dev", 2),
            ("team-1.dev", 3)
        ]
        .map(|(r, s)| (r.to_owned(), s)),
        "team-1 (the edited message by its new text, not the deleted one) and Ada's own DM"
    );
    // The old text of an edited message is not found.
    assert!(
        archive
            .search(&query("noon", &["team-1.*"]))
            .await
            .unwrap()
            .0
            .is_empty()
    );
    // A snippet is plain text pieces, the matched words marked.
    let hit = hits
        .iter()
        .find(|h| h.message.seq == 2 && h.message.room.as_str() == "team-1.dev")
        .unwrap();
    let marked: Vec<&str> = hit
        .snippet
        .iter()
        .filter(|f| f.hit)
        .map(|f| f.text.as_str())
        .collect();
    assert_eq!(marked, ["deploy"]);
    assert_eq!(
        hit.snippet
            .iter()
            .map(|f| f.text.as_str())
            .collect::<String>(),
        "deploy failed on node three"
    );
    // "*" reads everything but others' direct messages.
    let (all, _) = archive.search(&query("deploy", &["*"])).await.unwrap();
    assert!(
        !found(&all).iter().any(|(room, _)| room == "dm:bob+cy"),
        "{:?}",
        found(&all)
    );
    assert_eq!(all.len(), 7);
    // Only the rooms asked for, within what may be read.
    let mut only = query("deploy", &["*"]);
    only.rooms = Some(vec!["team-2.dev".into(), "dm:bob+cy".into()]);
    assert_eq!(
        found(&archive.search(&only).await.unwrap().0),
        [("team-2.dev".to_owned(), 1)]
    );
}

#[tokio::test]
async fn pages_are_ranked_and_bounded() {
    let db = Postgres::start().await;
    let archive = archive(&db).await;
    let entries: Vec<Entry> = (1..=30)
        .map(|s| {
            let body = if s % 10 == 0 {
                "release release release notes"
            } else {
                "release notes"
            };
            message("notes", s, body)
        })
        .collect();
    archive.append("notes", 1, &entries).await.unwrap();
    let mut first = query("release", &["notes"]);
    first.limit = 10;
    let (page, more) = archive.search(&first).await.unwrap();
    assert_eq!(page.len(), 10);
    assert!(more);
    let best: Vec<u64> = page.iter().take(3).map(|h| h.message.seq).collect();
    assert!(
        best.iter().all(|s| s % 10 == 0),
        "the denser matches rank first: {best:?}"
    );
    let mut seen: Vec<u64> = page.iter().map(|h| h.message.seq).collect();
    for offset in [10, 20] {
        let mut next = first.clone();
        next.offset = offset;
        seen.extend(
            archive
                .search(&next)
                .await
                .unwrap()
                .0
                .iter()
                .map(|h| h.message.seq),
        );
    }
    seen.sort();
    assert_eq!(
        seen,
        (1..=30).collect::<Vec<_>>(),
        "three pages, each message once"
    );
    // Limits are clamped, not trusted.
    let mut huge = first.clone();
    huge.limit = 1_000_000;
    assert_eq!(archive.search(&huge).await.unwrap().0.len(), 30);
    huge.offset = usize::MAX;
    assert!(archive.search(&huge).await.unwrap().0.is_empty());
}

#[tokio::test]
async fn hostile_queries_and_patterns_are_only_text() {
    let db = Postgres::start().await;
    let archive = seeded(&db).await;
    for text in [
        "'; DROP TABLE chorus_messages; --",
        "deploy' OR '1'='1",
        "\"unclosed phrase",
        "!!! &&& ||| :* <->",
        "",
        "-deploy",
        "or or or",
    ] {
        let hits = archive.search(&query(text, &["team-1.*"])).await;
        assert!(hits.is_ok(), "{text:?}: {hits:?}");
    }
    // A pattern's _ is a character, not a wildcard ("a_b" is not "axb").
    let (exact, _) = archive.search(&query("deploy", &["a_b"])).await.unwrap();
    assert_eq!(
        found(&exact),
        [("a_b", 1), ("dm:ada+bob", 1)].map(|(r, s)| (r.to_owned(), s)),
        "a_b and Ada's own direct messages, not axb"
    );
    // A user id cannot widen the direct-message rooms.
    let mut sneaky = query("deploy", &[]);
    sneaky.user = Some("%".into());
    assert!(archive.search(&sneaky).await.unwrap().0.is_empty());
    // Everything is still there.
    let (messages, _) = archive.page("team-1.dev", None, 10).await.unwrap();
    assert_eq!(messages.len(), 4);
}

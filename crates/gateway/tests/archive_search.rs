//! Search of the archive: the `search` command and `GET /api/v1/search` on
//! real nodes, Redis and PostgreSQL find messages by their current text,
//! only in rooms the caller may read, never deleted ones, page by page;
//! bad input gets a code and injection attempts are only text.

use std::time::Duration;

use chorus_archive::ArchiveSettings;
use chorus_gateway::{
    Config,
    auth::{RoomClaims, TokenRequest},
};
use chorus_testkit::{
    ApiKeyring, BackplaneKind, Client, Cluster, Postgres, api, eventually, fresh_user, token_for,
};
use serde_json::{Value, json};

/// A token that may read and post only in rooms matching `pattern`.
fn scoped(user: &str, pattern: &str) -> String {
    token_for(TokenRequest {
        sub: user.into(),
        ttl: Duration::from_secs(3600),
        rooms: RoomClaims {
            join: vec![pattern.into()],
            post: vec![pattern.into()],
            moderate: Vec::new(),
        },
        ..Default::default()
    })
}

/// (room, seq) of every hit, sorted.
fn found(results: &Value) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = results["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {results}"))
        .iter()
        .map(|hit| {
            let m = &hit["message"];
            (
                m["room"].as_str().unwrap().to_owned(),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

fn rooms(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(r, s)| ((*r).to_owned(), *s)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_current_text_in_readable_rooms_only_and_refuses_bad_input() {
    let db = Postgres::start().await;
    let settings = ArchiveSettings {
        connect_timeout: Duration::from_secs(2),
        ..ArchiveSettings::new(db.url())
    };
    let keyring = ApiKeyring::unlimited();
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::Redis, 2, move |c: &mut Config| {
        c.archive = Some(settings.clone());
        c.api_keys = keys.clone();
    })
    .await;
    let (ada, bob) = (fresh_user(), fresh_user());
    let ada_token = scoped(&ada, "team-1.*");
    let mut ada_ws = Client::connect_as(&cluster.url(0), &ada_token).await;
    let mut bob_ws = Client::connect_as(&cluster.url(1), &scoped(&bob, "team-2.*")).await;
    ada_ws.join("team-1.dev").await;
    bob_ws.join("team-2.dev").await;
    ada_ws
        .say_ok("team-1.dev", "the deploy went out at noon")
        .await; // 1
    ada_ws
        .say_ok("team-1.dev", "deploy failed on node three")
        .await; // 2
    ada_ws.say_ok("team-1.dev", "lunch at noon?").await; // 3
    ada_ws.say_ok("team-1.dev", "secret deploy plans").await; // 4
    bob_ws.say_ok("team-2.dev", "team two deploy notes").await;
    let edit =
        json!({"type": "edit", "room": "team-1.dev", "seq": 3, "body": "deploy rollback at three"});
    assert_eq!(ada_ws.request_reply(edit).await["type"], "changed");
    let delete = json!({"type": "delete", "room": "team-1.dev", "seq": 4});
    assert_eq!(ada_ws.request_reply(delete).await["type"], "changed");
    let dm = ada_ws
        .request_reply(json!({"type": "dm", "user": bob}))
        .await;
    let dm_room = dm["room"].as_str().unwrap().to_owned();
    ada_ws.say_ok(&dm_room, "about that deploy").await;

    // Once archived (with the edit and the delete), over WebSocket on the other node.
    let want = rooms(&[
        (&dm_room, 1),
        ("team-1.dev", 1),
        ("team-1.dev", 2),
        ("team-1.dev", 3),
    ]);
    let (url, token) = (cluster.url(1), ada_token.clone());
    let results = eventually("the deploys archived and found", || {
        let (url, token, want) = (url.clone(), token.clone(), want.clone());
        async move {
            let mut client = Client::connect_as(&url, &token).await;
            let results = client
                .request_reply(json!({"type": "search", "q": "deploy"}))
                .await;
            (found(&results) == want).then_some(results)
        }
    })
    .await;
    let mut ada_b = Client::connect_as(&cluster.url(1), &ada_token).await;
    assert_eq!(results["type"], "search");
    assert_eq!(results["more"], false);
    // The edited message by its current text; the snippet marks the match.
    let edited = results["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|hit| hit["message"]["seq"] == 3 && hit["message"]["room"] == "team-1.dev")
        .unwrap();
    assert_eq!(edited["message"]["body"], "deploy rollback at three");
    assert!(edited["message"]["epoch"].as_u64().is_some(), "{edited}");
    let marked: Vec<&str> = edited["snippet"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|part| part["hit"] == true)
        .map(|part| part["text"].as_str().unwrap())
        .collect();
    assert_eq!(marked, ["deploy"]);
    // The old text of the edited message, and the deleted one, are not found.
    let lunch = ada_b
        .request_reply(json!({"type": "search", "q": "lunch"}))
        .await;
    assert_eq!(found(&lunch), []);
    let secret = ada_b
        .request_reply(json!({"type": "search", "q": "secret plans"}))
        .await;
    assert_eq!(found(&secret), []);
    // Paging: one hit at a time, each once.
    let mut paged = Vec::new();
    for offset in 0..4 {
        let page = ada_b
            .request_reply(json!({"type": "search", "q": "deploy", "limit": 1, "offset": offset}))
            .await;
        paged.extend(found(&page));
        assert_eq!(page["more"], offset < 3, "{page}");
    }
    paged.sort();
    assert_eq!(paged, want);
    // Only the rooms asked for; a room the token does not allow is refused.
    let only = ada_b
        .request_reply(json!({"type": "search", "q": "deploy", "rooms": [&dm_room]}))
        .await;
    assert_eq!(found(&only), rooms(&[(&dm_room, 1)]));
    let forbidden = ada_b
        .request_reply(json!({"type": "search", "q": "deploy", "rooms": ["team-2.dev"]}))
        .await;
    assert_eq!(forbidden["code"], "forbidden", "{forbidden}");
    // Bad input gets a code; injection attempts are text.
    for bad in [
        json!({"type": "search", "q": ""}),
        json!({"type": "search", "q": "   "}),
        json!({"type": "search", "q": "x".repeat(257)}),
        json!({"type": "search", "q": "a\u{0}b"}),
        json!({"type": "search", "q": "deploy", "offset": 1001}),
        json!({"type": "search", "q": "deploy", "limit": 0}),
        json!({"type": "search", "q": "deploy", "rooms": []}),
        json!({"type": "search", "q": "deploy", "rooms": ["no spaces"]}),
        json!({"type": "search", "q": 5}),
    ] {
        let reply = ada_b.request_reply(bad.clone()).await;
        assert_eq!(reply["code"], "invalid_command", "{bad} -> {reply}");
    }
    for hostile in [
        "'; DROP TABLE chorus_messages; --",
        "deploy' OR '1'='1",
        "\"unclosed",
        "!!! &&& ||| :* <->",
        "or or -",
    ] {
        let reply = ada_b
            .request_reply(json!({"type": "search", "q": hostile}))
            .await;
        assert_eq!(reply["type"], "search", "{hostile} -> {reply}");
        assert!(
            found(&reply).iter().all(|(room, _)| room != "team-2.dev"),
            "{reply}"
        );
    }

    // Over HTTP: the same for the user's token; every room for an API key.
    let addr = cluster.nodes[0].addr;
    let (status, results) = api(
        addr,
        "GET",
        "/api/v1/search?q=deploy",
        Some(&ada_token),
        None,
    )
    .await;
    assert_eq!((status, found(&results)), (200, want.clone()), "{results}");
    let all = Some(keyring.all.as_str());
    let (status, results) = api(addr, "GET", "/api/v1/search?q=deploy&limit=100", all, None).await;
    assert_eq!(status, 200, "{results}");
    let mut everything = want.clone();
    everything.push(("team-2.dev".to_owned(), 1));
    everything.sort();
    assert_eq!(found(&results), everything);
    let path = format!(
        "/api/v1/search?q=deploy&rooms=team-2.dev,{}",
        dm_room.replace('+', "%2B")
    );
    let (_, results) = api(addr, "GET", &path, all, None).await;
    assert_eq!(found(&results), rooms(&[(&dm_room, 1), ("team-2.dev", 1)]));
    let publisher = Some(keyring.publish_only.as_str());
    for (path, key, status, code) in [
        ("/api/v1/search?q=deploy", publisher, 403, "missing_scope"),
        ("/api/v1/search?q=deploy", None, 401, "unauthenticated"),
        (
            "/api/v1/search?q=deploy",
            Some("not-a-token"),
            401,
            "invalid_key",
        ),
        ("/api/v1/search", all, 400, "invalid_query"),
        ("/api/v1/search?q=deploy&limit=0", all, 400, "invalid_query"),
        (
            "/api/v1/search?q=deploy&offset=-1",
            all,
            400,
            "invalid_query",
        ),
        (
            "/api/v1/search?q=deploy&offset=5000",
            all,
            400,
            "invalid_query",
        ),
        ("/api/v1/search?q=deploy&rooms=", all, 400, "invalid_query"),
        (
            "/api/v1/search?q=deploy&rooms=team-2.dev",
            Some(ada_token.as_str()),
            403,
            "forbidden",
        ),
    ] {
        let (got, body) = api(addr, "GET", path, key, None).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_archive_search_says_so() {
    let cluster = Cluster::start(BackplaneKind::InProcess, 1).await;
    let user = fresh_user();
    let mut client = Client::connect_as(&cluster.url(0), &scoped(&user, "*")).await;
    let reply = client
        .request_reply(json!({"type": "search", "q": "anything"}))
        .await;
    assert_eq!(reply["code"], "archive_unavailable", "{reply}");
    let (status, body) = api(
        cluster.nodes[0].addr,
        "GET",
        "/api/v1/search?q=anything",
        Some(&scoped(&user, "*")),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("archive_unavailable"))
    );
}

//! History past what Redis holds: `history` and `GET /api/rooms/{room}/messages`
//! page from Redis into the archive (PostgreSQL) without gap or overlap, with
//! each message's epoch, also across an epoch change (Redis lost its data).

use std::time::Duration;

use chorus_archive::{Archive, ArchiveSettings};
use chorus_gateway::Config;
use chorus_testkit::{
    BackplaneKind, Client, Cluster, Postgres, eventually, fresh_user, http_get_authorized, token,
};
use serde_json::{Value, json};

const ROOM: &str = "long-story";

fn settings(db: &Postgres) -> ArchiveSettings {
    ArchiveSettings {
        pool_size: 4,
        connect_timeout: Duration::from_secs(2),
        ..ArchiveSettings::new(db.url())
    }
}

/// Sends `n` messages numbered from `from`, then waits until the archive holds
/// every one (so Redis trimming them loses nothing). Returns their ids.
async fn send_archived(
    client: &mut Client,
    archive: &Archive,
    from: usize,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in from..from + n {
        ids.push(client.say_ok(ROOM, &format!("line {i}")).await);
    }
    let last = ids.last().unwrap().clone();
    eventually("the batch archived", || {
        let last = last.clone();
        async move {
            let (messages, _) = archive.page(ROOM, None, 1).await.ok()?;
            (messages.first()?.id.to_string() == last).then_some(())
        }
    })
    .await;
    ids
}

/// The ids of a page's messages (oldest first), and each message's (epoch, seq).
fn ids_and_places(page: &Value) -> (Vec<String>, Vec<(u64, u64)>) {
    let messages = page["messages"].as_array().unwrap();
    let ids = messages
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let places = messages
        .iter()
        .map(|m| {
            (
                m["epoch"].as_u64().expect("every message has its epoch"),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    (ids, places)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_runs_from_redis_into_the_archive_to_the_first_message_across_an_epoch() {
    let db = Postgres::start().await;
    let archived = settings(&db);
    let mut cluster = Cluster::start_with(BackplaneKind::Redis, 2, move |c: &mut Config| {
        c.archive = Some(archived.clone());
        // Redis keeps about the last hundred: most of the story is only archived.
        c.history.bounds.max_len = 20;
        c.history.page_max = 70;
    })
    .await;
    let archive = Archive::new(&settings(&db)).unwrap();
    let user = fresh_user();
    let mut writer = Client::connect_as(&cluster.url(0), &token(&user)).await;
    writer.join(ROOM).await;
    let mut sent = Vec::new();
    for batch in 0..5 {
        sent.extend(send_archived(&mut writer, &archive, batch * 60, 60).await);
    }
    let first_epoch = writer
        .request_reply(json!({"type": "history", "room": ROOM, "limit": 1}))
        .await["epoch"]
        .as_u64()
        .unwrap();

    // Redis loses everything: the room starts a new epoch, numbered from 1.
    cluster.redis.as_mut().unwrap().restart().await;
    let fresh = eventually("a send after the restart", || {
        let url = cluster.url(0);
        let user = user.clone();
        async move {
            let mut client = Client::connect_as(&url, &token(&user)).await;
            client.join(ROOM).await;
            let reply = client.say(ROOM, "line 300").await;
            (reply["type"] == "sent").then(|| reply["id"].as_str().unwrap().to_owned())
        }
    })
    .await;
    sent.push(fresh);
    let mut writer = Client::connect_as(&cluster.url(0), &token(&user)).await;
    writer.join(ROOM).await;
    for i in 301..340 {
        sent.push(writer.say_ok(ROOM, &format!("line {i}")).await);
    }

    // Over WebSocket on the other node, with `before` and `epoch`.
    let mut reader = Client::connect_as(&cluster.url(1), &token(&fresh_user())).await;
    let (mut seen, mut places, mut cursor) = (Vec::new(), Vec::new(), None::<(u64, u64)>);
    let mut pages = 0;
    loop {
        let mut ask = json!({"type": "history", "room": ROOM, "limit": 70});
        if let Some((epoch, seq)) = cursor {
            ask["before"] = json!(seq);
            ask["epoch"] = json!(epoch);
        }
        let page = reader.request_reply(ask).await;
        assert_eq!(page["type"], "history", "{page}");
        let (ids, at) = ids_and_places(&page);
        assert!(!ids.is_empty() || page["more"] == false, "{page}");
        cursor = at.first().copied();
        seen.splice(0..0, ids);
        places.splice(0..0, at);
        pages += 1;
        if page["more"] == false {
            break;
        }
        assert!(pages < 20, "paging ends");
    }
    assert_eq!(
        seen, sent,
        "every message once, in order, back to the first"
    );
    assert_eq!(places[0], (first_epoch, 1));
    assert_eq!(places[299], (first_epoch, 300));
    let new_epoch = places[300].0;
    assert!(new_epoch > first_epoch);
    assert_eq!(
        places[300..].iter().map(|p| p.1).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );

    // Over HTTP with `before_id`: the same story, page by page.
    let addr = cluster.nodes[0].addr;
    let reader_token = token(&fresh_user());
    let (mut over_http, mut before_id) = (Vec::new(), None::<String>);
    loop {
        let path = match &before_id {
            Some(id) => format!("/api/rooms/{ROOM}/messages?limit=45&before_id={id}"),
            None => format!("/api/rooms/{ROOM}/messages?limit=45"),
        };
        let (status, body) = http_get_authorized(addr, &path, &reader_token)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        let (ids, _) = ids_and_places(&page);
        before_id = ids.first().cloned();
        over_http.splice(0..0, ids);
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(over_http, sent);

    // A cursor from before the archive's first message: an empty last page.
    let page = reader
        .request_reply(json!({"type": "history", "room": ROOM, "before": 1, "epoch": first_epoch}))
        .await;
    assert_eq!(
        (page["messages"].as_array().unwrap().len(), &page["more"]),
        (0, &json!(false))
    );
    // An id no one sent is unknown in both.
    let unknown = reader
        .request_reply(
            json!({"type": "history", "room": ROOM, "before_id": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    assert_eq!(unknown["code"], "unknown_message", "{unknown}");
    let bad = reader
        .request_reply(json!({"type": "history", "room": ROOM, "epoch": 5}))
        .await;
    assert_eq!(bad["code"], "invalid_command", "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_down_redis_keeps_what_is_unarchived_and_paging_past_it_waits() {
    let mut db = Postgres::start().await;
    let archived = settings(&db);
    let cluster = Cluster::start_with(BackplaneKind::Redis, 1, move |c: &mut Config| {
        c.archive = Some(archived.clone());
        c.history.bounds.max_len = 20;
    })
    .await;
    let archive = Archive::new(&settings(&db)).unwrap();
    let mut client = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    client.join("outage").await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(client.say_ok("outage", &format!("m{i}")).await);
    }
    let first = sent[0].clone();
    eventually("the first messages archived", || {
        let (archive, first) = (&archive, first.clone());
        async move {
            let (messages, _) = archive.page("outage", None, 10).await.ok()?;
            (messages.len() == 3 && messages[0].id.to_string() == first).then_some(())
        }
    })
    .await;
    db.kill().await;
    // Far past --history-max-len while nothing can be archived.
    for i in 3..250 {
        sent.push(client.say_ok("outage", &format!("m{i}")).await);
    }
    // What Redis holds is served; the page says more may be older.
    let page = client
        .request_reply(json!({"type": "history", "room": "outage", "limit": 200}))
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 200);
    let page = client
        .request_reply(json!({"type": "history", "room": "outage", "before": 4}))
        .await;
    let (ids, _) = ids_and_places(&page);
    assert_eq!(ids, sent[..3], "Redis kept the unarchived ones: {page}");
    assert_eq!(
        page["more"], true,
        "the archive was not asked: more may remain"
    );
    // Past what Redis holds the archive is needed: a code to retry on.
    let past = client
        .request_reply(json!({"type": "history", "room": "outage", "before": 1}))
        .await;
    assert_eq!(past["code"], "archive_unavailable", "{past}");
    client.say_ok("outage", "still chatting").await;

    // Back: every message reaches the archive, none trimmed away first.
    db.restart().await;
    let archive = Archive::new(&settings(&db)).unwrap();
    let want = sent.clone();
    let archived = eventually("all archived", || {
        let (archive, want) = (&archive, want.clone());
        async move {
            let (messages, _) = archive.page("outage", None, 1000).await.ok()?;
            let ids: Vec<String> = messages.iter().map(|m| m.id.to_string()).collect();
            (ids.len() > want.len()).then_some(ids)
        }
    })
    .await;
    assert_eq!(archived[..250], sent[..], "nothing lost, nothing twice");
}

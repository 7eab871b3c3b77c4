//! The browser client with an archive (PostgreSQL): search finds a message
//! only the archive still holds and jumps to it; scrolling up reaches the
//! room's first message.

use chorus_testkit::{Browser, Client, eventually};

use super::{bodies, cluster_with, screenshot, sign_in, wait_for_body};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_jumps_to_an_archived_message_and_scrolling_up_reaches_the_first() {
    let db = chorus_testkit::Postgres::start().await;
    let database = db.url();
    // Redis keeps about the last 20: the start of the story is only archived.
    let cluster = cluster_with(&["--database-url", &database, "--history-max-len", "20"]).await;
    let mut writer = Client::connect(&cluster.ws_url()).await;
    writer.join("saga").await;
    for n in 0..150 {
        let body = match n {
            5 => "the lighthouse keeper waves".to_owned(),
            n => format!("chapter {n}"),
        };
        writer.say_ok("saga", &body).await;
    }
    let ws = cluster.ws_url();
    eventually("the story archived", || {
        let ws = ws.clone();
        async move {
            let mut client = Client::connect(&ws).await;
            let found = client
                .request_reply(serde_json::json!({"type": "search", "q": "chapter 149"}))
                .await;
            (found["hits"].as_array()?.len() == 1).then_some(())
        }
    })
    .await;

    let reader = Browser::start(1024, 768).await;
    sign_in(&reader, &cluster.url(), "Reader").await;
    reader.type_into("#join-room", "saga\n").await;
    wait_for_body(&reader, "chapter 149").await;
    reader.type_into("#search-q", "lighthouse\n").await;
    reader
        .wait_text("#search-results .search-hit", "lighthouse keeper waves")
        .await;
    let marked = reader.texts("#search-results .search-hit mark").await;
    assert_eq!(marked, ["lighthouse"]);
    reader.click("#search-results .search-hit").await;
    reader
        .wait_text(
            "#messages .message.found .body",
            "the lighthouse keeper waves",
        )
        .await;
    reader.screenshot(&screenshot("search.png")).await;
    // On up past it: the archive's first messages, then the start of the room.
    reader.eval("const log = document.getElementById('log'); log.scrollTop = 0; log.dispatchEvent(new Event('scroll')); return true").await;
    wait_for_body(&reader, "chapter 0").await;
    let all = bodies(&reader).await;
    let expected: Vec<String> = (0..150)
        .map(|n| match n {
            5 => "the lighthouse keeper waves".to_owned(),
            n => format!("chapter {n}"),
        })
        .collect();
    assert_eq!(all, expected, "the whole story once, in order");
    reader.wait_text("#older", "Start of the room").await;
    reader.close().await;
    cluster.stop().await.unwrap();
}

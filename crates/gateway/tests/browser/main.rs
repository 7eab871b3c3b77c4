//! The browser client and the dashboard in a real headless Chromium, against a
//! real 2-node cluster behind nginx (the native local cluster) with Redis.
//! Screenshots land in target/screenshots/ (not committed).

use std::path::{Path, PathBuf};

use chorus_localcluster::{LocalCluster, Options};
use chorus_testkit::{Browser, Client, TEST_SECRET, eventually};

mod archive;

async fn cluster() -> LocalCluster {
    cluster_with(&[]).await
}

/// [`cluster`], the nodes started with `extra` flags too.
async fn cluster_with(extra: &[&str]) -> LocalCluster {
    let mut options = Options::new(Path::new(env!("CARGO_BIN_EXE_chorus")), 2);
    options.node_env = vec![
        ("CHORUS_JWT_SECRET".into(), TEST_SECRET.into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    options.node_args = [
        "--dev-login",
        "on",
        "--drain-grace",
        "0s",
        "--drain-window",
        "0s",
    ]
    .into_iter()
    .chain(chorus_testkit::chaos::NODE_ARGS)
    .chain(extra.iter().copied())
    .map(String::from)
    .collect();
    LocalCluster::start(&options)
        .await
        .expect("the local cluster starts")
}

fn screenshot(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/screenshots")
        .join(name)
}

/// Signs in with a display name and waits until connected; returns the node's id.
async fn sign_in(browser: &Browser, url: &str, name: &str) -> String {
    browser.goto(url).await;
    browser.type_into("#login-name", name).await;
    browser.click("#login-form button[type=submit]").await;
    let status = browser.wait_text("#status", "connected · ").await;
    status.rsplit(" · ").next().unwrap().to_owned()
}

async fn say(browser: &Browser, text: &str) {
    browser.type_into("#message", &format!("{text}\n")).await;
}

async fn bodies(browser: &Browser) -> Vec<String> {
    browser.texts("#messages .message .body").await
}

async fn wait_for_body(browser: &Browser, text: &str) {
    let what = format!("the message {text:?} on screen");
    eventually(&what, || async move {
        bodies(browser)
            .await
            .iter()
            .any(|b| b == text)
            .then_some(())
    })
    .await;
}

/// Clicks a control (`button`, a CSS class) on the message showing `body`.
async fn click_on_message(browser: &Browser, body: &str, button: &str) {
    let what = format!("{button} on the message {body:?}");
    let script = format!(
        "const item = [...document.querySelectorAll('#messages .message')] \
           .find((li) => li.querySelector('.body').textContent === {body:?}); \
         const control = item && item.querySelector({button:?}); \
         if (!control) return false; control.click(); return true;"
    );
    eventually(&what, || async {
        (browser.eval(&script).await == true).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_across_nodes_and_survive_reload_and_a_node_crash() {
    let mut cluster = cluster().await;
    let url = cluster.url();
    let ada = Browser::start(1280, 800).await;
    let bob = Browser::start(390, 844).await; // a phone-sized window
    let ada_node = sign_in(&ada, &url, "Ada Lovelace").await;
    let bob_node = sign_in(&bob, &url, "Bob").await;
    assert_ne!(
        ada_node, bob_node,
        "nginx put the two pages on different nodes"
    );

    say(&ada, "hello from Ada").await;
    wait_for_body(&bob, "hello from Ada").await;
    // Both are in the lobby, on different nodes: each page counts two.
    ada.wait_text("#online", "2 online").await;
    bob.wait_text("#online", "2 online").await;
    say(&bob, "hi Ada").await;
    wait_for_body(&ada, "hi Ada").await;
    assert_eq!(ada.text("#messages .message .author").await, "Ada Lovelace");

    // A reload keeps the session and shows the history.
    ada.reload().await;
    ada.wait_text("#status", "connected").await;
    wait_for_body(&ada, "hi Ada").await;
    assert_eq!(bodies(&ada).await, ["hello from Ada", "hi Ada"]);

    // Bob's room list shows an unread count for a room he is not looking at.
    // On a phone the room list sits behind the menu button.
    bob.click("#menu").await;
    bob.type_into("#join-room", "side\n").await;
    bob.wait_text("#room-title", "# side").await;
    say(&ada, "while Bob is elsewhere").await;
    bob.click("#menu").await;
    bob.wait_text("#rooms [data-room=lobby] .badge", "1").await;
    bob.click("#rooms [data-room=lobby]").await;
    wait_for_body(&bob, "while Bob is elsewhere").await;

    // Kill the node Ada's page is on: it shows reconnecting, then resumes elsewhere.
    let ada_node = ada.wait_text("#status", "connected · ").await;
    let ada_node = ada_node.rsplit(" · ").next().unwrap().to_owned();
    let victim = cluster
        .nodes
        .iter()
        .position(|n| n.id == ada_node)
        .expect("Ada's node is one of ours");
    cluster.kill_node(victim).await;
    ada.wait_text("#status", "reconnecting").await;
    bob.wait_text("#status", "connected").await;
    say(&bob, "sent while Ada was away").await;
    ada.wait_text("#status", "connected").await;
    wait_for_body(&ada, "sent while Ada was away").await;
    let seen = bodies(&ada).await;
    assert_eq!(
        seen,
        [
            "hello from Ada",
            "hi Ada",
            "while Bob is elsewhere",
            "sent while Ada was away"
        ],
        "every message once, in order"
    );

    // Typing shows on the other page, and the message ends it.
    ada.type_into("#message", "typing a").await;
    bob.wait_text("#typing", "Ada Lovelace is typing").await;
    bob.screenshot(&screenshot("typing-phone.png")).await;
    ada.type_into("#message", "nswer\n").await;
    wait_for_body(&bob, "typing answer").await;
    eventually("the typing line cleared by the message", || async {
        bob.text("#typing").await.is_empty().then_some(())
    })
    .await;

    // Both pages mark what they show as read: the room's receipts say so.
    let mut watcher = Client::connect(&cluster.ws_url()).await;
    watcher.join("lobby").await;
    // The markers set before the watcher joined are in the query; later ones
    // arrive as receipt events.
    let receipts = watcher
        .request_reply(serde_json::json!({"type": "receipts", "room": "lobby"}))
        .await;
    let mut at_last: std::collections::HashSet<String> = receipts["receipts"]
        .as_array()
        .expect("a receipts list")
        .iter()
        .filter(|r| r["seq"] == 5)
        .map(|r| r["user"].as_str().unwrap().to_owned())
        .collect();
    while at_last.len() < 2 {
        let receipt = watcher.expect("receipt").await;
        if receipt["seq"] == 5 {
            at_last.insert(receipt["user"]["id"].as_str().unwrap().to_owned());
        }
    }

    // An unsent draft is kept by the server: a reload (a new page, as on
    // another device) restores it.
    ada.type_into("#message", "unsent words").await;
    ada.find("#message[data-draft=saved]").await;
    ada.reload().await;
    ada.wait_text("#status", "connected").await;
    eventually("the draft back in the composer", || async {
        let value = ada
            .eval("return document.getElementById('message').value")
            .await;
        (value == "unsent words").then_some(())
    })
    .await;

    // A direct message to Bob's user puts the conversation in his room list.
    let bob_id = bob
        .eval(
            "const t = JSON.parse(sessionStorage.getItem('chorus.session')).token; \
             return JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub",
        )
        .await;
    let bob_id = bob_id.as_str().expect("Bob's user id").to_owned();
    let tester = chorus_testkit::fresh_user();
    let mut friend = Client::connect_as(&cluster.ws_url(), &chorus_testkit::token(&tester)).await;
    let joined = friend
        .request_reply(serde_json::json!({"type": "dm", "user": bob_id}))
        .await;
    let dm_room = joined["room"].as_str().expect("the DM room").to_owned();
    friend.say_ok(&dm_room, "psst, Bob").await;
    bob.find(&format!("#rooms [data-room='{dm_room}']")).await;
    bob.wait_text("#notice", "Direct message from").await;

    // Reactions, edits and deletes show on the other page; so does a status.
    click_on_message(&ada, "hi Ada", ".add-reaction").await;
    bob.wait_text("#messages .reaction[data-emoji='👍']", "👍 1")
        .await;
    click_on_message(&ada, "typing answer", ".edit").await;
    ada.type_into("#message", " (fixed)\n").await;
    wait_for_body(&bob, "typing answer (fixed)").await;
    bob.wait_text("#messages .edited", "(edited)").await;
    click_on_message(&ada, "hello from Ada", ".delete").await;
    wait_for_body(&bob, "This message was deleted.").await;
    ada.click("#away").await;
    bob.wait_text("#online", "1 away").await;

    ada.screenshot(&screenshot("chat.png")).await;
    bob.screenshot(&screenshot("chat-phone.png")).await;
    ada.close().await;
    bob.close().await;
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_messages_with_html_render_as_text() {
    let cluster = cluster().await;
    let url = cluster.url();
    let mallory = Browser::start(1024, 768).await;
    let victim = Browser::start(1024, 768).await;
    let name = r#"<img src=x onerror="window.pwned=1">Mallory"#;
    let body = r#"<script>window.pwned=2</script><b>bold</b> & <i>it</i>"#;
    sign_in(&mallory, &url, name).await;
    sign_in(&victim, &url, "Victim").await;
    say(&mallory, body).await;
    wait_for_body(&victim, body).await;
    assert!(
        victim
            .texts("#messages .author")
            .await
            .iter()
            .any(|a| a == name)
    );
    assert_eq!(victim.eval("return window.pwned === undefined").await, true);
    assert_eq!(
        victim.eval("return document.querySelectorAll('#messages b, #messages script, #messages img').length").await,
        0
    );
    mallory.close().await;
    victim.close().await;
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_nodes_and_follows_connections_live() {
    let cluster = cluster().await;
    let operator = Browser::start(1280, 800).await;
    operator.goto(&format!("{}/dashboard", cluster.url())).await;
    operator.wait_text("#status", "live").await;
    for node in &cluster.nodes {
        operator
            .wait_text(&format!("#nodes [data-node={}]", node.id), "ready")
            .await;
    }
    assert_eq!(operator.text("#t-nodes").await, "2");
    // A client connecting straight to node 1 shows up without a reload.
    let mut client = Client::connect(&format!("ws://{}/ws", cluster.nodes[1].addr)).await;
    operator.wait_text("#t-connections", "1").await;
    let row = format!("#nodes [data-node={}]", cluster.nodes[1].id);
    operator
        .wait_text(&format!("{row} td:nth-child(3)"), "1")
        .await;
    // Traffic shows as rates, fan-out and delivery latency on the node's row.
    client.join("lobby").await;
    for n in 0..20 {
        client.say_ok("lobby", &format!("load {n}")).await;
    }
    client.messages_in("lobby", 20).await;
    operator
        .wait_text(&format!("{row} td:nth-child(8)"), "ms")
        .await;
    operator
        .wait_text(&format!("{row} td:nth-child(7)"), "1.0")
        .await;
    operator.screenshot(&screenshot("dashboard.png")).await;
    operator.close().await;
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_shows_recent_history_and_scrolling_up_loads_older_messages() {
    let cluster = cluster().await;
    let mut writer = Client::connect(&cluster.ws_url()).await;
    writer.join("archive").await;
    for n in 0..70 {
        writer.say_ok("archive", &format!("m{n}")).await;
    }
    let reader = Browser::start(1024, 768).await;
    sign_in(&reader, &cluster.url(), "Reader").await;
    reader.type_into("#join-room", "archive\n").await;
    reader.wait_text("#room-title", "# archive").await;
    wait_for_body(&reader, "m69").await;
    let first_page = bodies(&reader).await;
    assert_eq!(first_page.len(), 50, "the join brings the last 50");
    assert_eq!(first_page[0], "m20");
    reader.eval("const log = document.getElementById('log'); log.scrollTop = 0; log.dispatchEvent(new Event('scroll')); return true").await;
    wait_for_body(&reader, "m0").await;
    let all = bodies(&reader).await;
    let expected: Vec<String> = (0..70).map(|n| format!("m{n}")).collect();
    assert_eq!(all, expected, "older messages prepended, in order, once");
    reader.wait_text("#older", "Start of the room").await;
    reader.close().await;
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_chosen_in_the_page_shows_on_another_users_page_on_another_node() {
    let files = tempfile::tempdir().unwrap();
    let cluster = cluster_with(&["--files-dir", files.path().to_str().unwrap()]).await;
    let url = cluster.url();
    let ada = Browser::start(1280, 800).await;
    let bob = Browser::start(1024, 768).await;
    let ada_node = sign_in(&ada, &url, "Ada").await;
    let bob_node = sign_in(&bob, &url, "Bob").await;
    assert_ne!(
        ada_node, bob_node,
        "nginx put the two pages on different nodes"
    );

    // A picture and a document chosen with the file picker upload with a
    // progress bar and wait, ready, above the composer.
    let picture = files.path().join("sunset.png");
    image::RgbImage::from_fn(640, 360, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, 90])
    })
    .save(&picture)
    .unwrap();
    let notes = files.path().join("notes.pdf");
    std::fs::write(&notes, b"%PDF-1.4 a small document").unwrap();
    let input = ada.find("#file-input").await;
    input.send_keys(picture.to_str().unwrap()).await.unwrap();
    input.send_keys(notes.to_str().unwrap()).await.unwrap();
    let ready = "return [...document.querySelectorAll('#uploads .upload')].map((u) => u.dataset.state + ':' + u.querySelector('progress').value).join(',')";
    eventually("both uploads ready, their progress full", || async {
        (ada.eval(ready).await == "ready:1,ready:1").then_some(())
    })
    .await;
    say(&ada, "the view tonight").await;

    // Bob, on the other node, sees the preview (the thumbnail, fetched with
    // his token) and the document's card; a click opens the full picture.
    wait_for_body(&bob, "the view tonight").await;
    let preview = "const img = document.querySelector('#messages .attachments .preview img'); \
        return !!img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0";
    eventually("the picture's preview on Bob's page", || async {
        (bob.eval(preview).await == true).then_some(())
    })
    .await;
    let card = bob
        .text("#messages .attachments .file-card .file-name")
        .await;
    assert_eq!(card, "notes.pdf");
    bob.click("#messages .attachments .preview").await;
    let full = "const img = document.querySelector('.lightbox img'); \
        return img && img.complete ? img.naturalWidth : 0";
    eventually("the full picture opened", || async {
        (bob.eval(full).await == 640).then_some(())
    })
    .await;
    assert!(
        ada.eval("return document.getElementById('uploads').hidden")
            .await
            == true
    );
    ada.screenshot(&screenshot("files-ada.png")).await;
    bob.screenshot(&screenshot("files-bob.png")).await;
    ada.close().await;
    bob.close().await;
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_dropped_or_pasted_upload_a_cancelled_one_vanishes_a_refused_one_says_why() {
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().to_str().unwrap();
    let cluster = cluster_with(&["--files-dir", dir, "--max-upload-bytes", "200000"]).await;
    let url = cluster.url();
    let ada = Browser::start(1280, 800).await;
    let bob = Browser::start(1024, 768).await;
    sign_in(&ada, &url, "Ada").await;
    sign_in(&bob, &url, "Bob").await;
    let states = "return [...document.querySelectorAll('#uploads .upload')] \
        .map((u) => u.dataset.state + ':' + u.querySelector('.upload-name').textContent).join(',')";

    // A file dropped on the log and a picture pasted into the composer upload.
    let dropped = ada
        .eval(
            "const data = new DataTransfer(); \
             data.items.add(new File(['minutes of the meeting'], 'minutes.txt', {type: 'text/plain'})); \
             document.getElementById('log').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true})); \
             return true",
        )
        .await;
    assert_eq!(dropped, true);
    let pasted = ada
        .eval(
            "const canvas = document.createElement('canvas'); canvas.width = 320; canvas.height = 200; \
             const g = canvas.getContext('2d'); g.fillStyle = '#3a7'; g.fillRect(0, 0, 320, 200); \
             return new Promise((done) => canvas.toBlob((blob) => { \
               const data = new DataTransfer(); \
               data.items.add(new File([blob], 'image.png', {type: 'image/png'})); \
               document.getElementById('message').dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true})); \
               done(true); }, 'image/png'))",
        )
        .await;
    assert_eq!(pasted, true);
    eventually("the dropped and the pasted file ready", || async {
        (ada.eval(states).await == "ready:minutes.txt,ready:image.png").then_some(())
    })
    .await;

    // An upload cancelled while it runs leaves the list; a refused one stays
    // with the server's reason until it is removed.
    let cancelled = ada
        .eval(
            "const data = new DataTransfer(); \
             data.items.add(new File([new Uint8Array(150000)], 'cancel-me.bin')); \
             document.getElementById('log').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true})); \
             const item = [...document.querySelectorAll('#uploads .upload')].find((u) => u.textContent.includes('cancel-me.bin')); \
             if (!item || item.dataset.state !== 'uploading') return 'not uploading'; \
             item.querySelector('.upload-cancel').click(); return 'cancelled'",
        )
        .await;
    assert_eq!(cancelled, "cancelled");
    ada.eval(
        "const data = new DataTransfer(); \
         data.items.add(new File([new Uint8Array(300000)], 'too-big.bin')); \
         document.getElementById('log').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true})); \
         return true",
    )
    .await;
    eventually(
        "the large file refused with the server's reason",
        || async {
            (ada.eval(states).await == "ready:minutes.txt,ready:image.png,failed:too-big.bin")
                .then_some(())
        },
    )
    .await;
    let reason = ada
        .text("#uploads .upload[data-state=failed] .upload-status")
        .await;
    assert!(reason.contains("at most 200000 bytes"), "{reason}");
    ada.screenshot(&screenshot("files-refused.png")).await;
    ada.click("#uploads .upload[data-state=failed] .upload-cancel")
        .await;
    eventually("the refused upload removed", || async {
        (ada.eval(states).await == "ready:minutes.txt,ready:image.png").then_some(())
    })
    .await;

    // Sent, the two ready files reach Bob; not the cancelled one.
    say(&ada, "notes and a picture").await;
    wait_for_body(&bob, "notes and a picture").await;
    let shown = "const m = document.querySelector('#messages .attachments'); \
        const img = m && m.querySelector('.preview img'); \
        return m ? [...m.querySelectorAll('.file-name')].map((n) => n.textContent).join(',') \
          + '|' + (!!img && img.complete && img.naturalWidth > 0) : ''";
    eventually(
        "the card and the pasted picture's preview on Bob's page",
        || async { (bob.eval(shown).await == "minutes.txt|true").then_some(()) },
    )
    .await;
    ada.close().await;
    bob.close().await;
    cluster.stop().await.unwrap();
}

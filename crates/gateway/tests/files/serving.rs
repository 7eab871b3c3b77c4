//! Serving: any node, readers only, ranges, safe headers, types from the
//! bytes, thumbnails, attachments in messages.

use chorus_testkit::{BackplaneKind, Client, Cluster, fresh_user, token};
use serde_json::Value;

use super::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_through_one_node_is_served_by_another_to_readers_only() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().to_path_buf();
    let cluster = Cluster::start_with(BackplaneKind::Redis, 2, move |c| {
        c.files.dir = shared.clone();
    })
    .await;
    let (a, b) = (cluster.nodes[0].addr, cluster.nodes[1].addr);
    let member = token(&fresh_user());

    // An image: its size and a thumbnail.
    let picture = png(800, 600);
    let (status, stored) = upload(a, Some(&member), "pics", "beach.png", picture.clone()).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(
        (&stored["content_type"], &stored["width"], &stored["height"]),
        (&"image/png".into(), &800.into(), &600.into())
    );
    assert_eq!(
        (&stored["thumbnail"], &stored["room"]),
        (&true.into(), &"pics".into())
    );
    let id = stored["id"].as_str().unwrap().to_owned();

    // Attached to a message (files alone: no text), it reaches members on
    // the other node and stays in history.
    let uploader = members_in_pics(&cluster, &member).await;
    let (mut sender, mut reader_client) = uploader;
    let reply = sender
        .request_reply(
            serde_json::json!({"type": "send", "room": "pics", "body": "", "attachments": [id]}),
        )
        .await;
    assert_eq!(reply["type"], "sent", "{reply}");
    let message = reader_client.message_in("pics").await;
    let attached = &message["attachments"][0];
    assert_eq!(attached["id"], id.as_str(), "{message}");
    assert_eq!(
        (
            &attached["name"],
            &attached["content_type"],
            &attached["width"],
            &attached["thumbnail"]
        ),
        (
            &"beach.png".into(),
            &"image/png".into(),
            &800.into(),
            &true.into()
        )
    );
    assert_eq!(attached["size"], picture.len());
    let page = reader_client
        .request_reply(serde_json::json!({"type": "history", "room": "pics", "limit": 10}))
        .await;
    assert_eq!(
        page["messages"][0]["attachments"][0]["id"],
        id.as_str(),
        "{page}"
    );
    // An edit keeps the files; a resume (on the other node) replays them.
    let reply = sender
        .request_reply(serde_json::json!({"type": "edit", "room": "pics", "seq": message["seq"], "body": "the beach"}))
        .await;
    assert_eq!(reply["type"], "changed", "{reply}");
    let page = reader_client
        .request_reply(serde_json::json!({"type": "history", "room": "pics", "limit": 10}))
        .await;
    let edited = &page["messages"][0];
    assert_eq!(
        (&edited["body"], &edited["attachments"][0]["id"]),
        (&"the beach".into(), &id.as_str().into()),
        "{page}"
    );
    let mut resumer = Client::connect_as(&cluster.url(1), &member).await;
    let after = message["seq"].as_u64().unwrap() - 1;
    let joined = resumer
        .join_with(
            "pics",
            serde_json::json!({"epoch": page["epoch"], "after": after}),
        )
        .await;
    assert_eq!(joined["recovered"], true, "{joined}");
    let replayed = resumer.message_in("pics").await;
    assert_eq!(replayed["attachments"][0]["id"], id.as_str(), "{replayed}");
    // At most 10 files per message.
    let eleven: Vec<String> = (0..11).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let refused = sender
        .request_reply(
            serde_json::json!({"type": "send", "room": "pics", "body": "x", "attachments": eleven}),
        )
        .await;
    assert_eq!(refused["code"], "too_many_attachments", "{refused}");
    // Only one's own uploads, to the same room.
    let mut stranger = Client::connect_as(&cluster.url(0), &token(&fresh_user())).await;
    stranger.join("pics").await;
    let refused = stranger
        .request_reply(serde_json::json!({"type": "send", "room": "pics", "body": "mine now", "attachments": [id]}))
        .await;
    assert_eq!(refused["code"], "unknown_attachment", "{refused}");
    sender.join("elsewhere").await;
    let refused = sender
        .request_reply(serde_json::json!({"type": "send", "room": "elsewhere", "body": "x", "attachments": [id]}))
        .await;
    assert_eq!(refused["code"], "unknown_attachment", "{refused}");

    // Served by the other node, whole and in ranges, never run by a browser.
    let response = get(b, &member, &format!("/api/v1/files/{id}"), None).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; sandbox"
    );
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    assert_eq!(response.bytes().await.unwrap(), picture);
    let response = get(
        b,
        &member,
        &format!("/api/v1/files/{id}"),
        Some("bytes=10-19"),
    )
    .await;
    assert_eq!(response.status(), 206);
    let total = picture.len();
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes 10-19/{total}").as_str()
    );
    assert_eq!(response.bytes().await.unwrap(), picture[10..20]);
    let beyond = format!("bytes={total}-");
    let response = get(b, &member, &format!("/api/v1/files/{id}"), Some(&beyond)).await;
    assert_eq!(response.status(), 416);
    let response = get(b, &member, &format!("/api/v1/files/{id}/thumbnail"), None).await;
    assert_eq!(response.status(), 200);
    let thumbnail = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (320, 240));

    // Readers of the room only: a token that may read it may download; one
    // that may not gets 403; one that may read but not post may not upload.
    let reader = limited(&["pics"], &[]);
    let outsider = limited(&["other"], &["other"]);
    let path = format!("/api/v1/files/{id}");
    assert_eq!(get(a, &reader, &path, None).await.status(), 200);
    let refused = get(a, &outsider, &path, None).await;
    assert_eq!(refused.status(), 403);
    let refused: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(refused["code"], "forbidden");
    let (status, answer) = upload(a, Some(&reader), "pics", "x.txt", b"hi".to_vec()).await;
    assert_eq!((status, &answer["code"]), (403, &"forbidden".into()));
    let (status, answer) = upload(a, None, "pics", "x.txt", b"hi".to_vec()).await;
    assert_eq!((status, &answer["code"]), (401, &"unauthenticated".into()));
    let unknown = get(
        a,
        &member,
        &format!("/api/v1/files/{}", uuid::Uuid::now_v7()),
        None,
    )
    .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        get(a, &member, "/api/v1/files/not-an-id", None)
            .await
            .status(),
        400
    );

    // The type comes from the bytes: a page named .png is text, and a
    // program is a download whatever its name.
    let page = b"<html><script>alert(1)</script></html>".to_vec();
    let (status, stored) = upload(a, Some(&member), "pics", "cat.png", page).await;
    assert_eq!(
        (status, stored["thumbnail"].as_bool()),
        (201, Some(false)),
        "{stored}"
    );
    assert_ne!(stored["content_type"], "image/png");
    let mut program = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    program.resize(512, 0);
    let (_, stored) = upload(a, Some(&member), "pics", "song.mp3", program).await;
    let response = get(
        b,
        &member,
        &format!("/api/v1/files/{}", stored["id"].as_str().unwrap()),
        None,
    )
    .await;
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''song.mp3"),
        "{disposition}"
    );

    // A decompression bomb is refused with a code and leaves nothing behind.
    let (status, answer) = upload(a, Some(&member), "pics", "bomb.png", bomb(100_000)).await;
    assert_eq!(
        (status, &answer["code"]),
        (422, &"image_too_large".into()),
        "{answer}"
    );
    let (status, answer) = upload(a, Some(&member), "pics", "empty", Vec::new()).await;
    assert_eq!((status, &answer["code"]), (400, &"empty_file".into()));
    let (status, answer) = upload(a, Some(&member), "pics", "a/b", b"x".to_vec()).await;
    assert_eq!((status, &answer["code"]), (400, &"invalid_name".into()));
    assert_eq!(only_complete_files(dir.path()), 3);

    // Deleting the message deletes its file; history keeps a tombstone
    // without it.
    let reply = sender
        .request_reply(serde_json::json!({"type": "delete", "room": "pics", "seq": message["seq"]}))
        .await;
    assert_eq!(reply["type"], "changed", "{reply}");
    let gone = get(b, &member, &format!("/api/v1/files/{id}"), None).await;
    assert_eq!(gone.status(), 404);
    let page = reader_client
        .request_reply(serde_json::json!({"type": "history", "room": "pics", "limit": 10}))
        .await;
    let tombstone = &page["messages"][0];
    assert_eq!(tombstone["deleted"], true, "{page}");
    assert!(tombstone.get("attachments").is_none(), "{page}");
    assert_eq!(only_complete_files(dir.path()), 2);
}

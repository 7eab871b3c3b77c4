//! Files against real nodes on Redis sharing one files directory (a shared
//! volume): an upload through one node is served by another, to readers of
//! its room only, with ranges and the headers that keep a browser from
//! running it; images get their size and a thumbnail, a decompression bomb
//! is refused; every refusal has its code and leaves nothing stored.

use std::{path::Path, time::Duration};

use chorus_gateway::auth::{RoomClaims, TokenRequest};
use chorus_testkit::{BackplaneKind, Client, Cluster, fresh_user, metric, token, token_for};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A token for a fresh user who may join `join` and post in `post`.
fn limited(join: &[&str], post: &[&str]) -> String {
    let names = |rooms: &[&str]| rooms.iter().map(|r| r.to_string()).collect();
    token_for(TokenRequest {
        sub: fresh_user(),
        ttl: Duration::from_secs(3600),
        rooms: RoomClaims {
            join: names(join),
            post: names(post),
            moderate: Vec::new(),
        },
        ..Default::default()
    })
}

/// A `width` x `height` PNG of a gradient.
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A small PNG whose header claims `side` x `side` pixels: decoding it
/// would need side² x 3 bytes.
fn bomb(side: u32) -> Vec<u8> {
    let mut bytes = png(1, 1);
    // IHDR's data starts at byte 16: width, height, then 5 bytes; CRC after.
    bytes[16..20].copy_from_slice(&side.to_be_bytes());
    bytes[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `POST /api/v1/rooms/{room}/files?name=` on `addr` with `token` and `body`.
async fn upload(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    room: &str,
    name: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/rooms/{room}/files"))
        .query(&[("name", name)])
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// `GET path` on `addr` with `token` and an optional `Range`.
async fn get(
    addr: std::net::SocketAddr,
    token: &str,
    path: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(token);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    request.send().await.unwrap()
}

/// Every file in `dir` has its metadata: nothing half-stored is left.
fn only_complete_files(dir: &Path) -> usize {
    let files = dir.join("files");
    let Ok(entries) = std::fs::read_dir(&files) else {
        return 0;
    };
    let mut complete = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        assert!(path.is_dir(), "a stray object {path:?}");
        let names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n == "meta.json") && names.iter().all(|n| !n.contains('#')),
            "{path:?} holds {names:?}"
        );
        complete += 1;
    }
    complete
}

/// The uploader (`token`) on node 0 and another member on node 1, both in `pics`.
async fn members_in_pics(cluster: &Cluster, token_: &str) -> (Client, Client) {
    let mut sender = Client::connect_as(&cluster.url(0), token_).await;
    let mut reader = Client::connect_as(&cluster.url(1), &token(&fresh_user())).await;
    sender.join("pics").await;
    reader.join("pics").await;
    (sender, reader)
}

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_rated_and_cut_uploads_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().to_path_buf();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.files.dir = shared.clone();
        c.files.max_upload_bytes = 100_000;
        // A burst of 5: the streamed oversized upload, the cut one, 3 more.
        c.files.upload_rate = chorus_gateway::auth::Rate::new(1.0 / 3600.0, 5);
    })
    .await;
    let a = cluster.nodes[0].addr;
    let member = token(&fresh_user());

    // Too large, announced (Content-Length) and streamed (chunked).
    let (status, answer) = upload(a, Some(&member), "r", "big", vec![1; 100_001]).await;
    assert_eq!((status, &answer["code"]), (413, &"file_too_large".into()));
    let mut socket = tokio::net::TcpStream::connect(a).await.unwrap();
    let head = format!(
        "POST /api/v1/rooms/r/files?name=stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {member}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    for _ in 0..30 {
        let chunk = format!("1000\r\n{}\r\n", "7".repeat(4096));
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let _ = socket.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("file_too_large"), "{answer}");

    // A client that goes away mid-upload: nothing half-stored stays.
    let mut socket = tokio::net::TcpStream::connect(a).await.unwrap();
    let head = format!(
        "POST /api/v1/rooms/r/files?name=cut HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {member}\r\nContent-Length: 90000\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&[5u8; 30_000]).await.unwrap();
    drop(socket);
    let sample = "chorus_uploads_total{outcome=\"truncated\"}";
    tokio::time::timeout(Duration::from_secs(10), async {
        while metric(a, sample).await < 1.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the cut upload is counted as truncated");

    // The rate: every upload that began counts; the burst's last 3, then 429.
    for n in 0..3 {
        let (status, answer) = upload(a, Some(&member), "r", &format!("f{n}"), vec![n; 10]).await;
        assert_eq!(status, 201, "{answer}");
    }
    let response = reqwest::Client::new()
        .post(format!("http://{a}/api/v1/rooms/r/files?name=more"))
        .bearer_auth(&member)
        .body("more")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(only_complete_files(dir.path()), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_written_refuses_uploads_and_chat_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A directory cannot be made under a file.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.files.dir = blocker.join("files");
    })
    .await;
    let a = cluster.nodes[0].addr;
    let member = token(&fresh_user());
    let (status, answer) = upload(a, Some(&member), "r", "f", b"data".to_vec()).await;
    assert_eq!(
        (status, &answer["code"]),
        (503, &"store_unavailable".into()),
        "{answer}"
    );
    assert_eq!(
        metric(a, "chorus_uploads_total{outcome=\"store_error\"}").await,
        1.0
    );
    let mut client = Client::connect_as(&cluster.url(0), &member).await;
    client.join("r").await;
    client.say_ok("r", "still chatting").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_no_message_carries_are_swept_and_attached_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().to_path_buf();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.files.dir = shared.clone();
        c.files.unattached_ttl = Duration::from_secs(1);
    })
    .await;
    let a = cluster.nodes[0].addr;
    let member = token(&fresh_user());
    let (_, kept) = upload(a, Some(&member), "r", "kept.txt", b"kept".to_vec()).await;
    let (_, dropped) = upload(a, Some(&member), "r", "dropped.txt", b"dropped".to_vec()).await;
    let mut client = Client::connect_as(&cluster.url(0), &member).await;
    client.join("r").await;
    let reply = client
        .request_reply(serde_json::json!({"type": "send", "room": "r", "body": "see file", "attachments": [kept["id"]]}))
        .await;
    assert_eq!(reply["type"], "sent", "{reply}");
    let path = |file: &Value| format!("/api/v1/files/{}", file["id"].as_str().unwrap());
    tokio::time::timeout(Duration::from_secs(10), async {
        while get(a, &member, &path(&dropped), None).await.status() != 404 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the unattached file is swept");
    let response = get(a, &member, &path(&kept), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), &b"kept"[..]);
    assert_eq!(only_complete_files(dir.path()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photos_location_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().to_path_buf();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.files.dir = shared.clone();
    })
    .await;
    let a = cluster.nodes[0].addr;
    let member = token(&fresh_user());
    // A JPEG with an EXIF block (as a phone writes one) naming a place.
    let image = image::RgbImage::from_fn(64, 48, |x, _| image::Rgb([x as u8 * 4, 90, 200]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let jpeg = jpeg.into_inner();
    let exif = b"Exif\0\0MM\0*\0\0\0\x08GPSLatitude 48.8584N GPSLongitude 2.2945E";
    let mut photo = jpeg[..2].to_vec();
    photo.extend_from_slice(&[0xFF, 0xE1]);
    photo.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    photo.extend_from_slice(exif);
    photo.extend_from_slice(&jpeg[2..]);
    let (status, stored) = upload(a, Some(&member), "r", "eiffel.jpg", photo).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(
        (&stored["content_type"], &stored["width"]),
        (&"image/jpeg".into(), &64.into())
    );
    let response = get(
        a,
        &member,
        &format!("/api/v1/files/{}", stored["id"].as_str().unwrap()),
        None,
    )
    .await;
    let served = response.bytes().await.unwrap();
    assert_eq!(served.len() as u64, stored["size"].as_u64().unwrap());
    let text = String::from_utf8_lossy(&served);
    assert!(
        !text.contains("GPSLatitude") && !text.contains("48.8584"),
        "the location is served"
    );
    let decoded = image::load_from_memory(&served).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (64, 48));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_at_once_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().to_path_buf();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.files.dir = shared.clone();
        c.files.max_concurrent_uploads = 1;
        c.files.upload_rate = chorus_gateway::auth::Rate::new(1000.0, 1000);
    })
    .await;
    let a = cluster.nodes[0].addr;
    let member = token(&fresh_user());
    // One upload that keeps streaming (its body is not all there yet).
    let mut held = tokio::net::TcpStream::connect(a).await.unwrap();
    let head = format!(
        "POST /api/v1/rooms/r/files?name=slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {member}\r\nContent-Length: 90000\r\n\r\n"
    );
    held.write_all(head.as_bytes()).await.unwrap();
    held.write_all(&[1u8; 1000]).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (status, answer) = upload(a, Some(&member), "r", "second", b"2".to_vec()).await;
            if status == 503 {
                return answer;
            }
            assert_eq!(status, 201, "{answer}");
        }
    })
    .await
    .expect("a second upload is refused while the first streams");
    assert_eq!(refused["code"], "too_many_uploads");
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), async {
        while metric(a, "chorus_uploads_total{outcome=\"truncated\"}").await < 1.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the held upload ends as truncated");
    let (status, answer) = upload(a, Some(&member), "r", "third", b"3".to_vec()).await;
    assert_eq!(status, 201, "{answer}");
}

//! Limits and failures: sizes, rates, cut uploads, uploads at once, a store
//! that cannot be written, the sweep of unattached files, photo metadata.

use std::time::Duration;

use chorus_testkit::{BackplaneKind, Client, Cluster, fresh_user, metric, token};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::helpers::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_foreign_token_gets_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().to_path_buf();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.files.dir = shared.clone();
    })
    .await;
    let a = cluster.nodes[0].addr;
    let user = fresh_user();
    let (status, stored) = upload(a, Some(&token(&user)), "r", "f.txt", b"kept".to_vec()).await;
    assert_eq!(status, 201, "{stored}");
    let path = format!("/api/v1/files/{}", stored["id"].as_str().unwrap());
    // The same user's token, expired a minute ago (past the 10 s leeway).
    let now = chorus_protocol::unix_micros() / 1_000_000;
    let claims = serde_json::json!({"sub": user, "exp": now - 60, "iat": now - 3660,
        "rooms": {"join": ["*"], "post": ["*"]}});
    let key = jsonwebtoken::EncodingKey::from_secret(chorus_testkit::TEST_SECRET.as_bytes());
    let expired = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
    let refused = get(a, &expired, &path, None).await;
    assert_eq!(refused.status(), 401);
    let answer: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["code"], "token_expired");
    // A token signed by someone else.
    let foreign = chorus_testkit::token_with_secret("another-secret-0123456789abcdef-0123", &user);
    let refused = get(a, &foreign, &path, None).await;
    let answer: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["code"], "invalid_token");
    // The valid token, in the query (for an <img src>), is served.
    let query = format!("{path}?token={}", token(&user));
    let response = reqwest::get(format!("http://{a}{query}")).await.unwrap();
    assert_eq!(response.status(), 200);
}

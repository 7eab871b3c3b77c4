//! Files in a real S3-compatible store (`s3s-fs`) shared by three nodes on
//! Redis: uploaded through one node, attached to a message that reaches
//! members on the others, downloaded through another; a store that goes
//! away fails uploads and attachments with a code while chat goes on, and
//! works again when it is back; unattached files are swept from the bucket.

use std::time::Duration;

use chorus_gateway::config::S3Settings;
use chorus_testkit::{
    BackplaneKind, Client, Cluster, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server, fresh_user, token,
};
use serde_json::{Value, json};

async fn upload(
    addr: std::net::SocketAddr,
    token: &str,
    room: &str,
    name: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/rooms/{room}/files"))
        .query(&[("name", name)])
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn download(
    addr: std::net::SocketAddr,
    token: &str,
    path: &str,
    range: Option<&str>,
) -> (u16, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(token);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_a_bucket_are_served_by_every_node_and_an_outage_is_refused_cleanly() {
    let mut s3 = S3Server::start("chorus-files").await;
    let settings = S3Settings {
        bucket: s3.bucket.clone(),
        endpoint: Some(s3.endpoint()),
        region: "us-east-1".into(),
        access_key_id: Some(S3_ACCESS_KEY.into()),
        secret_access_key: Some(S3_SECRET_KEY.into()),
    };
    let cluster = Cluster::start_with(BackplaneKind::Redis, 3, move |c| {
        c.files.s3 = Some(settings.clone());
        c.files.unattached_ttl = Duration::from_secs(3);
    })
    .await;
    let (a, b) = (cluster.nodes[0].addr, cluster.nodes[1].addr);
    let alice = token(&fresh_user());
    let mut sender = Client::connect_as(&cluster.url(0), &alice).await;
    let mut on_b = Client::connect_as(&cluster.url(1), &token(&fresh_user())).await;
    let mut on_c = Client::connect_as(&cluster.url(2), &token(&fresh_user())).await;
    for client in [&mut sender, &mut on_b, &mut on_c] {
        client.join("gallery").await;
    }

    // Upload through A (a picture and a file bigger than one 5 MiB part),
    // attach both, members on B and C get the message.
    let picture = png(640, 480);
    let (status, image) = upload(a, &alice, "gallery", "view.png", picture.clone()).await;
    assert_eq!(
        (status, &image["thumbnail"]),
        (201, &json!(true)),
        "{image}"
    );
    let big: Vec<u8> = (0..6 * 1024 * 1024 + 123)
        .map(|i| (i % 251) as u8)
        .collect();
    let (status, archive) = upload(a, &alice, "gallery", "data.bin", big.clone()).await;
    assert_eq!(status, 201, "{archive}");
    let ids = json!([image["id"], archive["id"]]);
    let reply = sender
        .request_reply(
            json!({"type": "send", "room": "gallery", "body": "two files", "attachments": ids}),
        )
        .await;
    assert_eq!(reply["type"], "sent", "{reply}");
    for member in [&mut on_b, &mut on_c] {
        let message = member.message_in("gallery").await;
        let attached: Vec<&Value> = message["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["id"])
            .collect();
        assert_eq!(attached, vec![&image["id"], &archive["id"]], "{message}");
    }

    // Downloaded through B: whole, in a range across the part boundary, the thumbnail.
    let path = |file: &Value| format!("/api/v1/files/{}", file["id"].as_str().unwrap());
    let reader = token(&fresh_user());
    assert_eq!(
        download(b, &reader, &path(&image), None).await,
        (200, picture)
    );
    let (status, whole) = download(b, &reader, &path(&archive), None).await;
    assert_eq!((status, whole.len()), (200, big.len()));
    assert!(whole == big, "the big file came back different");
    let boundary = 5 * 1024 * 1024;
    let range = format!("bytes={}-{}", boundary - 10, boundary + 9);
    let (status, part) = download(b, &reader, &path(&archive), Some(&range)).await;
    assert_eq!(
        (status, part.as_slice()),
        (206, &big[boundary - 10..boundary + 10])
    );
    let (status, thumbnail) =
        download(b, &reader, &format!("{}/thumbnail", path(&image)), None).await;
    assert_eq!(status, 200);
    assert_eq!(image::load_from_memory(&thumbnail).unwrap().width(), 320);

    // An upload nobody attaches is swept from the bucket.
    let (_, stray) = upload(a, &alice, "gallery", "stray.txt", b"stray".to_vec()).await;
    tokio::time::timeout(Duration::from_secs(20), async {
        while download(b, &reader, &path(&stray), None).await.0 != 404 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the unattached file is swept");
    assert_eq!(download(b, &reader, &path(&image), None).await.0, 200);

    // The store goes away: uploads and attachments are refused with a code,
    // chat goes on; back, uploads work again.
    s3.kill().await;
    let (status, answer) = upload(a, &alice, "gallery", "late.txt", b"late".to_vec()).await;
    assert_eq!(
        (status, &answer["code"]),
        (503, &json!("store_unavailable")),
        "{answer}"
    );
    let refused = sender
        .request_reply(json!({"type": "send", "room": "gallery", "body": "again", "attachments": [image["id"]]}))
        .await;
    assert_eq!(refused["code"], "store_unavailable", "{refused}");
    sender.say_ok("gallery", "still chatting").await;
    s3.restart().await;
    let (status, answer) = upload(a, &alice, "gallery", "late.txt", b"late".to_vec()).await;
    assert_eq!(status, 201, "{answer}");
}

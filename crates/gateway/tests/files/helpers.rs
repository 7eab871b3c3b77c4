//! What the file tests share: tokens, images, and the upload and download calls.

use std::{path::Path, time::Duration};

use chorus_gateway::auth::{RoomClaims, TokenRequest};
use chorus_testkit::{Client, Cluster, fresh_user, token, token_for};
use serde_json::Value;

/// A token for a fresh user who may join `join` and post in `post`.
pub fn limited(join: &[&str], post: &[&str]) -> String {
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
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A small PNG whose header claims `side` x `side` pixels: decoding it
/// would need side² x 3 bytes.
pub fn bomb(side: u32) -> Vec<u8> {
    let mut bytes = png(1, 1);
    // IHDR's data starts at byte 16: width, height, then 5 bytes; CRC after.
    bytes[16..20].copy_from_slice(&side.to_be_bytes());
    bytes[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

pub fn crc32(data: &[u8]) -> u32 {
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
pub async fn upload(
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
pub async fn get(
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
pub fn only_complete_files(dir: &Path) -> usize {
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
pub async fn members_in_pics(cluster: &Cluster, token_: &str) -> (Client, Client) {
    let mut sender = Client::connect_as(&cluster.url(0), token_).await;
    let mut reader = Client::connect_as(&cluster.url(1), &token(&fresh_user())).await;
    sender.join("pics").await;
    reader.join("pics").await;
    (sender, reader)
}

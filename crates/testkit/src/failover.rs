//! What the failover tests share: sending as a client does through an outage,
//! and checking that every acknowledged send arrived once, in the room's order.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{Client, WAIT};

/// Flags of a node in a failover test: Redis commands bounded at 2 s, and
/// positions checked every 250 ms, so relays lost in a switch are repaired soon.
pub const NODE_ARGS: [&str; 4] = [
    "--redis-timeout",
    "2s",
    "--position-check-interval",
    "250ms",
];

/// Sends `body` to `room` until it is acknowledged, as a client does through
/// an outage (the body is the `client_msg_id`, the same every time); returns
/// the `sent`. Every refusal must be `backplane_unavailable` (retried after
/// a short pause) or `rate_limited` (retried when it says).
pub async fn send_until_acknowledged(client: &mut Client, room: &str, body: &str) -> Value {
    let acknowledged = tokio::time::timeout(WAIT, async {
        loop {
            let reply = client.request_reply(send(room, body)).await;
            if reply["type"] == "sent" {
                return reply;
            }
            // A client's retry pause, not a wait for the failover.
            let pause = match reply["code"].as_str() {
                Some("backplane_unavailable") => 50,
                Some("rate_limited") => reply["retry_after_ms"].as_u64().unwrap_or(100),
                _ => panic!("{body} refused: {reply}"),
            };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    })
    .await;
    acknowledged.unwrap_or_else(|_| panic!("{body} was never acknowledged"))
}

/// Issues the sends of `m<first>` .. `m<end - 1>` to `room` without waiting
/// for their replies (each with `ref` `in-flight-<i>`), as a pipelining
/// client has them out when its Redis fails.
pub async fn send_in_flight(client: &mut Client, room: &str, (first, end): (usize, usize)) {
    for i in first..end {
        let mut command = send(room, &format!("m{i}"));
        command["ref"] = json!(format!("in-flight-{i}"));
        client.send(command).await;
    }
}

/// Reads the replies of [`send_in_flight`]'s sends, and sends each one that
/// was not acknowledged again until it is.
pub async fn settle_in_flight(client: &mut Client, room: &str, (first, end): (usize, usize)) {
    for i in first..end {
        let reference = format!("in-flight-{i}");
        let reply = client
            .wait_for("an in-flight reply", |v| {
                v["ref"] == reference.as_str() && v["type"] != "message"
            })
            .await;
        if reply["type"] != "sent" {
            send_until_acknowledged(client, room, &format!("m{i}")).await;
        }
    }
}

/// The `send` of `body` to `room`, with `body` as its `client_msg_id`.
pub fn send(room: &str, body: &str) -> Value {
    json!({"type": "send", "room": room, "body": body, "client_msg_id": body})
}

/// Checks that `live` (the bodies a member received, in order) is `room`'s
/// history as `reader` reads it, and that it holds `m0` .. `m<count - 1>`
/// once each, with ascending seqs.
pub async fn assert_each_once_in_order(
    reader: &mut Client,
    room: &str,
    live: &[String],
    count: usize,
) {
    let history = reader
        .request_reply(json!({"type": "history", "room": room, "limit": 200}))
        .await;
    let messages = history["messages"].as_array().expect("a page of messages");
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(live, bodies, "delivered live in the stored order");
    let mut once = bodies.clone();
    once.sort_by_key(|body| body[1..].parse::<u32>().unwrap());
    let expected: Vec<String> = (0..count).map(|i| format!("m{i}")).collect();
    assert_eq!(once, expected, "every acknowledged send, once");
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs ascend: {seqs:?}"
    );
}

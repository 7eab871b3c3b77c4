//! The server API's refusals: every wrong key, missing scope, malformed,
//! oversized or out-of-range input gets its HTTP status and code, and the
//! key's rate limit answers 429.

use std::time::Duration;

use chorus_gateway::auth::Rate;
use chorus_testkit::{ApiKeyring, BackplaneKind, Cluster, api};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Bound on reaching the key's rate limit.
const WAIT: Duration = Duration::from_secs(10);

fn bot_post(body: &str, client_msg_id: &str) -> Value {
    json!({
        "from": {"id": "bot:shipping", "name": "Shipping", "kind": "bot"},
        "body": body,
        "client_msg_id": client_msg_id,
    })
}

/// A call and the refusal it must get: method, path, key, body, status, code.
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<Value>,
    u16,
    &'a str,
);

/// One node on the in-process backplane: every refusal has its status and code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_scopes_and_input_get_their_status_and_code() {
    let keyring = ApiKeyring::new(Rate::new(1.0, 40));
    let keys = keyring.keys.clone();
    let cluster = Cluster::start_with(BackplaneKind::InProcess, 1, move |c| {
        c.api_keys = keys.clone();
        c.max_body_bytes = 100;
    })
    .await;
    let a = cluster.nodes[0].addr;
    let (all, publisher) = (
        Some(keyring.all.as_str()),
        Some(keyring.publish_only.as_str()),
    );
    let post = bot_post("hello", "c1");
    let messages = "/api/v1/rooms/lobby/messages";
    let cases: Vec<Case> = vec![
        (
            "POST",
            messages,
            None,
            Some(post.clone()),
            401,
            "unauthenticated",
        ),
        (
            "POST",
            messages,
            Some("chorus_not-a-key"),
            Some(post.clone()),
            401,
            "invalid_key",
        ),
        (
            "POST",
            "/api/v1/users/someone/revoke",
            publisher,
            Some(json!({"until": 1})),
            403,
            "missing_scope",
        ),
        (
            "GET",
            "/api/v1/rooms/lobby",
            publisher,
            None,
            403,
            "missing_scope",
        ),
        (
            "POST",
            "/api/v1/rooms/no%20spaces/messages",
            all,
            Some(post.clone()),
            400,
            "invalid_room",
        ),
        (
            "POST",
            "/api/v1/rooms/!u:1/messages",
            all,
            Some(post.clone()),
            400,
            "invalid_room",
        ),
        (
            "POST",
            messages,
            all,
            Some(json!({"body": "no sender"})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            messages,
            all,
            Some(json!({"from": {"id": ""}, "body": "x"})),
            400,
            "invalid_sender",
        ),
        (
            "POST",
            messages,
            all,
            Some(json!({"from": {"id": "b"}, "body": ""})),
            400,
            "empty_body",
        ),
        (
            "POST",
            messages,
            all,
            Some(json!({"from": {"id": "b"}, "body": "x".repeat(101)})),
            400,
            "body_too_large",
        ),
        (
            "POST",
            messages,
            all,
            Some(json!({"from": {"id": "b"}, "body": "x", "extra": 1})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/broadcast",
            all,
            Some(json!({"rooms": [], "from": {"id": "b"}, "body": "x"})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/broadcast",
            all,
            Some(json!({"rooms": ["a", "a"], "from": {"id": "b"}, "body": "x"})),
            400,
            "invalid_request",
        ),
        (
            "PATCH",
            "/api/v1/rooms/lobby/messages/0",
            all,
            Some(json!({"body": "x"})),
            400,
            "invalid_request",
        ),
        (
            "PATCH",
            "/api/v1/rooms/lobby/messages/x",
            all,
            Some(json!({"body": "x"})),
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/api/v1/rooms/lobby/messages?limit=0",
            all,
            None,
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/rooms/lobby/messages?before=1&before_id=x",
            all,
            None,
            400,
            "invalid_query",
        ),
        (
            "POST",
            "/api/v1/users/someone/revoke",
            all,
            Some(json!({"until": 1})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/users/someone/disconnect",
            all,
            Some(json!([])),
            400,
            "invalid_request",
        ),
        ("GET", "/api/v1/no/such/route", all, None, 404, "not_found"),
    ];
    for (method, path, key, body, status, code) in cases {
        let (got, answer) = api(a, method, path, key, body.as_ref()).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {answer}"
        );
    }
    // Not JSON at all, JSON of another type, and a body over 64 KiB.
    let raw = |content_type: &str, body: String| {
        let key = keyring.all.clone();
        let content_type = content_type.to_owned();
        async move {
            let mut stream = TcpStream::connect(a).await.unwrap();
            let request = format!(
                "POST /api/v1/rooms/lobby/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                 Authorization: Bearer {key}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    let answer = raw("text/plain", post.to_string()).await;
    assert!(
        answer.starts_with("HTTP/1.1 415") && answer.contains("unsupported_media_type"),
        "{answer}"
    );
    let answer = raw("application/json", "{\"from\":".into()).await;
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("invalid_json"),
        "{answer}"
    );
    let answer = raw(
        "application/json",
        format!("{{\"body\":\"{}\"}}", "x".repeat(70_000)),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 413") && answer.contains("request_too_large"),
        "{answer}"
    );

    // The key's rate: a burst of 40, then 429 with Retry-After.
    let limited = tokio::time::timeout(WAIT, async {
        loop {
            let (status, answer) = api(a, "GET", "/api/v1/rooms/lobby", all, None).await;
            if status == 429 {
                return answer;
            }
            assert_eq!(status, 200, "{answer}");
        }
    })
    .await
    .expect("the key's rate limit never answered 429");
    assert_eq!(limited["code"], "rate_limited");
}

//! Authentication: every way a token can be wrong gets its exact refusal, on the
//! upgrade (HTTP status and code) and in an `auth` frame (error code and close code).

use std::time::Duration;

use chorus_gateway::auth::{AuthConfig, Verifier};
use chorus_testkit::{Client, Event, TEST_SECRET, http_post_json, token};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_with_its_code_on_upgrade_and_in_auth() {
    let node = node_with(|_| {}).await;
    let url = node.ws_url();
    let expired = signed(&json!({"sub": "u", "exp": now() - 120}));
    let cases = [
        ("malformed", "not-a-jwt".to_owned(), "invalid_token"),
        (
            "bad signature",
            hs256(&claims("u"), b"some-other-secret-of-32-bytes-or-more"),
            "invalid_token",
        ),
        ("alg none", unsigned(&claims("u")), "invalid_token"),
        (
            "RS256 where HS256 is configured",
            jsonwebtoken::encode(
                &Header::new(Algorithm::RS256),
                &claims("u"),
                &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
            )
            .unwrap(),
            "invalid_token",
        ),
        ("expired", expired, "token_expired"),
        (
            "not yet valid",
            signed(&json!({"sub": "u", "exp": now() + 7200, "nbf": now() + 3600})),
            "invalid_token",
        ),
        (
            "no sub",
            signed(&json!({"exp": now() + 600})),
            "invalid_token",
        ),
        ("no exp", signed(&json!({"sub": "u"})), "invalid_token"),
    ];
    for (what, token, code) in &cases {
        assert_eq!(
            upgrade_refusal(&url, token).await,
            (401, (*code).to_owned()),
            "upgrade with a {what} token"
        );
        let close = if *code == "token_expired" { 4003 } else { 4500 };
        assert_eq!(
            auth_frame_refusal(&url, token).await,
            ((*code).to_owned(), Event::Closed(close)),
            "auth frame with a {what} token"
        );
    }
    // A token that is not even a usable string (empty, or over 8 KiB) in an
    // `auth` frame is refused the same way.
    for token in [String::new(), "x".repeat(8 * 1024 + 1)] {
        assert_eq!(
            auth_frame_refusal(&url, &token).await,
            ("invalid_token".to_owned(), Event::Closed(4500)),
            "auth frame with a token of {} bytes",
            token.len()
        );
    }
    // The query parameter is checked the same way.
    let query = Client::request(&format!("{url}?token=not-a-jwt"), None, None);
    assert_eq!(refusal(query).await, (401, "invalid_token".into()));
    // An Authorization header that is not Bearer is malformed.
    let mut basic = Client::request(&url, None, None);
    basic
        .headers_mut()
        .insert("authorization", "Basic dTpw".parse().unwrap());
    assert_eq!(refusal(basic).await, (401, "invalid_token".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_token_identifies_the_user() {
    let node = node_with(|_| {}).await;
    let url = format!("{}?token={}", node.ws_url(), token("carol"));
    let mut client = Client::connect_request(Client::request(&url, None, None)).await;
    assert_eq!(client.welcome["user"]["id"], "carol");
    client.join("lobby").await;
    client.say_ok("lobby", "hi").await;
    assert_eq!(client.message_in("lobby").await["from"]["id"], "carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_means_auth_frame_or_close_4004() {
    let node = node_with(|c| c.auth.auth_timeout = Duration::from_millis(500)).await;
    let url = node.ws_url();

    let mut idle = Client::connect_anonymous(&url).await;
    assert_eq!(idle.welcome["user"], Value::Null);
    assert_eq!(idle.welcome["auth_timeout_secs"], 1);
    idle.send(json!({"type": "join", "room": "lobby", "ref": "j"}))
        .await;
    let refused = idle.expect("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["ref"].as_str()),
        (Some("unauthenticated"), Some("j"))
    );
    assert_eq!(idle.closed().await, Event::Closed(4004));

    let mut late_joiner = Client::connect_anonymous(&url).await;
    late_joiner
        .send(json!({"type": "auth", "token": token("dave"), "ref": "a"}))
        .await;
    let ok = late_joiner.expect("authenticated").await;
    assert_eq!(ok["user"]["id"], "dave");
    assert_eq!(ok["ref"], "a");
    late_joiner.join("lobby").await;
    late_joiner
        .send(json!({"type": "auth", "token": token("dave")}))
        .await;
    assert_eq!(
        late_joiner.expect("error").await["code"],
        "already_authenticated"
    );
    // Authenticated before the deadline: the auth timeout no longer applies.
    let mut witness = Client::connect_anonymous(&url).await;
    assert_eq!(witness.closed().await, Event::Closed(4004));
    late_joiner.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_and_audience_are_enforced_when_configured() {
    let node = node_with(|c| {
        c.auth.verifier = Verifier::new(
            Algorithm::HS256,
            DecodingKey::from_secret(TEST_SECRET.as_bytes()),
            Some("https://id.example"),
            Some("chorus"),
            Duration::from_secs(5),
        );
    })
    .await;
    let url = node.ws_url();
    let with = |iss: Option<&str>, aud: Option<&str>| {
        let mut c = claims("u");
        if let Some(iss) = iss {
            c["iss"] = iss.into();
        }
        if let Some(aud) = aud {
            c["aud"] = aud.into();
        }
        signed(&c)
    };
    for (what, token) in [
        (
            "wrong issuer",
            with(Some("https://evil.example"), Some("chorus")),
        ),
        ("no issuer", with(None, Some("chorus"))),
        (
            "wrong audience",
            with(Some("https://id.example"), Some("other")),
        ),
        ("no audience", with(Some("https://id.example"), None)),
    ] {
        assert_eq!(
            upgrade_refusal(&url, &token).await,
            (401, "invalid_token".into()),
            "{what}"
        );
    }
    let good = with(Some("https://id.example"), Some("chorus"));
    let client = Client::connect_as(&url, &good).await;
    assert_eq!(client.welcome["user"]["id"], "u");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_public_keys_refuse_algorithm_confusion() {
    let rsa = node_with(|c| {
        c.auth = AuthConfig {
            verifier: Verifier::new(
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(RSA_PUBLIC).unwrap(),
                None,
                None,
                Duration::from_secs(5),
            ),
            minter: None,
            ..c.auth.clone()
        };
    })
    .await;
    let rs_token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims("rsa-user"),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    let client = Client::connect_as(&rsa.ws_url(), &rs_token).await;
    assert_eq!(client.welcome["user"]["id"], "rsa-user");
    // HS256 signed with the public key as the "secret": the classic confusion attack.
    let confused = hs256(&claims("mallory"), RSA_PUBLIC);
    assert_eq!(
        upgrade_refusal(&rsa.ws_url(), &confused).await,
        (401, "invalid_token".into())
    );
    assert_eq!(
        upgrade_refusal(&rsa.ws_url(), &unsigned(&claims("mallory"))).await,
        (401, "invalid_token".into())
    );

    let ec = node_with(|c| {
        c.auth.verifier = Verifier::new(
            Algorithm::ES256,
            DecodingKey::from_ec_pem(EC_PUBLIC).unwrap(),
            None,
            None,
            Duration::from_secs(5),
        );
    })
    .await;
    let es_token = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims("ec-user"),
        &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
    )
    .unwrap();
    let client = Client::connect_as(&ec.ws_url(), &es_token).await;
    assert_eq!(client.welcome["user"]["id"], "ec-user");
    assert_eq!(
        upgrade_refusal(&ec.ws_url(), &rs_token).await,
        (401, "invalid_token".into())
    );
    assert_eq!(
        upgrade_refusal(&ec.ws_url(), &hs256(&claims("m"), EC_PUBLIC)).await,
        (401, "invalid_token".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_closes_4003_unless_refreshed() {
    let node = node_with(|_| {}).await;
    let url = node.ws_url();
    let short = |sub: &str| {
        signed(&json!({"sub": sub, "exp": now() + 2, "rooms": {"join": ["*"], "post": ["*"]}}))
    };
    let mut lapsing = Client::connect_as(&url, &short("erin")).await;
    let mut refreshing = Client::connect_as(&url, &short("erin")).await;
    refreshing.join("lobby").await;

    // A refresh for someone else, or with a bad token, changes nothing.
    refreshing
        .send(json!({"type": "refresh", "token": token("frank"), "ref": "x"}))
        .await;
    assert_eq!(refreshing.expect("error").await["code"], "invalid_token");
    refreshing
        .send(json!({"type": "refresh", "token": "garbage", "ref": "y"}))
        .await;
    assert_eq!(refreshing.expect("error").await["code"], "invalid_token");

    let fresh = signed(&claims("erin"));
    refreshing
        .send(json!({"type": "refresh", "token": fresh, "ref": "r"}))
        .await;
    let refreshed = refreshing.expect("refreshed").await;
    assert_eq!(refreshed["ref"], "r");
    assert!(refreshed["token_expires_at"].as_u64().unwrap() > now() + 60);

    assert_eq!(lapsing.closed().await, Event::Closed(4003));
    // The other connection had the same expiry and outlived it.
    refreshing.say_ok("lobby", "still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_narrows_the_grants_leaves_the_lost_rooms() {
    let node = node_with(|_| {}).await;
    let url = node.ws_url();
    let both = json!({"sub": "gina", "exp": now() + 600, "rooms": {"join": ["a", "b"], "post": ["a", "b"]}});
    let only_a =
        json!({"sub": "gina", "exp": now() + 600, "rooms": {"join": ["a"], "post": ["a"]}});
    let mut client = Client::connect_as(&url, &signed(&both)).await;
    client.join("a").await;
    client.join("b").await;
    client
        .send(json!({"type": "refresh", "token": signed(&only_a), "ref": "r"}))
        .await;
    let left = client.expect("left").await;
    assert_eq!(
        (left["room"].as_str(), left["reason"].as_str()),
        (Some("b"), Some("forbidden"))
    );
    client.expect("refreshed").await;
    assert_eq!(client.say("b", "x").await["code"], "not_joined");
    client.say_ok("a", "still in a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_grants_public_rooms_read_only_rooms_and_direct_messages() {
    let node = node_with(|c| {
        c.auth.policy.public = chorus_gateway::auth::Patterns::parse(&["lobby"]).unwrap();
        c.auth.policy.read_only = chorus_gateway::auth::Patterns::parse(&["announce.*"]).unwrap();
    })
    .await;
    let url = node.ws_url();
    let user = |sub: &str, join: &[&str], post: &[&str]| {
        signed(&json!({"sub": sub, "exp": now() + 600, "rooms": {"join": join, "post": post}}))
    };
    let mut alice =
        Client::connect_as(&url, &user("alice", &["team-42.*"], &["team-42.dev"])).await;
    let mut bob = Client::connect_as(&url, &user("bob", &[], &["announce.*"])).await;
    let mut carol = Client::connect_as(&url, &signed(&claims("carol"))).await;

    let join_code = async |client: &mut Client, room: &str| {
        client
            .send(json!({"type": "join", "room": room, "ref": room}))
            .await;
        let reply = client.wait_for("join reply", |v| v["ref"] == room).await;
        if reply["type"] == "joined" {
            "joined".to_owned()
        } else {
            assert_eq!(reply["room"], room);
            reply["code"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(join_code(&mut alice, "team-42.dev").await, "joined");
    assert_eq!(join_code(&mut alice, "team-42.all").await, "joined");
    assert_eq!(join_code(&mut alice, "team-43.dev").await, "forbidden");
    assert_eq!(join_code(&mut alice, "lobby").await, "joined");
    assert_eq!(join_code(&mut alice, "announce.news").await, "joined");
    assert_eq!(join_code(&mut alice, "dm:alice+bob").await, "joined");
    assert_eq!(join_code(&mut bob, "dm:alice+bob").await, "joined");
    assert_eq!(join_code(&mut bob, "announce.news").await, "joined");
    // Carol's token grants `*`, which still does not open others' direct messages.
    assert_eq!(join_code(&mut carol, "dm:alice+bob").await, "forbidden");
    assert_eq!(join_code(&mut carol, "team-43.dev").await, "joined");

    // Posting needs a post grant: read-only rooms refuse it with `forbidden`.
    let refused = alice.say("team-42.all", "nope").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    assert_eq!(
        alice.say("announce.news", "nope").await["code"],
        "forbidden"
    );
    alice.say_ok("team-42.dev", "dev talk").await;
    alice.say_ok("lobby", "public talk").await;
    bob.say_ok("announce.news", "announcement").await;
    assert_eq!(
        alice.message_in("announce.news").await["body"],
        "announcement"
    );
    alice.say_ok("dm:alice+bob", "psst").await;
    assert_eq!(bob.message_in("dm:alice+bob").await["body"], "psst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_login_hands_out_working_guest_tokens_only_when_on() {
    let on = node_with(|c| c.auth.dev_login = true).await;
    let (status, body) = http_post_json(on.addr, "/api/login", r#"{"name":"Ada"}"#)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let login: Value = serde_json::from_str(&body).unwrap();
    let mut ada = Client::connect_as(&on.ws_url(), login["token"].as_str().unwrap()).await;
    assert_eq!(ada.welcome["user"]["name"], "Ada");
    assert_eq!(ada.welcome["user"]["id"], login["user"]["id"]);
    ada.join("lobby").await;
    ada.say_ok("lobby", "hello").await;
    assert_eq!(ada.message_in("lobby").await["from"]["name"], "Ada");

    for (body, code) in [
        (r#"{"name":""}"#, "invalid_name"),
        (r#"{"nom":"x"}"#, "invalid_request"),
        ("not json", "invalid_request"),
    ] {
        let (status, reply) = http_post_json(on.addr, "/api/login", body).await.unwrap();
        assert_eq!(status, 400, "{body}: {reply}");
        assert_eq!(serde_json::from_str::<Value>(&reply).unwrap()["code"], code);
    }
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(4096));
    let (status, _) = http_post_json(on.addr, "/api/login", &huge).await.unwrap();
    assert_eq!(status, 400, "an oversized login body is refused");

    let off = node_with(|c| c.auth.dev_login = false).await;
    let (status, reply) = http_post_json(off.addr, "/api/login", r#"{"name":"Ada"}"#)
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&reply).unwrap()["code"],
        "dev_login_disabled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_upgrades_are_refused_with_403() {
    let same_origin = node_with(|_| {}).await;
    let listed = node_with(|c| {
        c.auth.origins =
            chorus_gateway::auth::Origins::parse(&["https://chat.example".into()]).unwrap();
    })
    .await;
    let with_origin = |url: &str, origin: &str| {
        let mut request = Client::request(url, None, Some(&token("o")));
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        request
    };
    let status = async |request| match Client::handshake_request(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["code"], "origin_not_allowed");
            response.status().as_u16()
        }
        Err(other) => panic!("{other}"),
    };
    let own = format!("http://{}", same_origin.addr);
    assert_eq!(status(with_origin(&same_origin.ws_url(), &own)).await, 101);
    assert_eq!(
        status(with_origin(&same_origin.ws_url(), "https://evil.example")).await,
        403
    );
    assert_eq!(
        status(with_origin(&listed.ws_url(), "https://chat.example")).await,
        101
    );
    assert_eq!(
        status(with_origin(&listed.ws_url(), "https://evil.example")).await,
        403
    );
    // Checked before the token: a forged page learns nothing about the token either.
    let mut no_token = Client::request(&listed.ws_url(), None, None);
    no_token
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert_eq!(status(no_token).await, 403);
}

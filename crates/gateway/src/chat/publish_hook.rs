//! The publish hook: before a user's message is stored, the application's
//! endpoint (`--publish-hook-url`) is asked, and answers `allow`, `reject`
//! (with a reason the sender sees) or `replace` (with the text to store).
//! No answer in `--publish-hook-timeout`, or one that makes no sense, is a
//! failure: the message is stored anyway (`--publish-hook-failure open`) or
//! refused with `hook_unavailable` (`closed`, the default).

use prometheus::{IntCounterVec, Opts, Registry};
use serde::Deserialize;
use serde_json::json;

use crate::{auth::signature, config::PublishHookConfig};
use chorus_protocol::{RoomName, Sender};

/// What the hook decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Store the message as it is.
    Allow,
    /// Store this text instead.
    Replace(String),
    /// Refuse it, telling the sender this.
    Reject(String),
    /// The hook failed and the node fails closed: refuse it.
    Unavailable,
}

/// The hook's answer, as it writes it.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Answer {
    Allow,
    Reject {
        #[serde(default)]
        reason: String,
    },
    Replace {
        body: String,
    },
}

/// What the hook is asked about: a user's message, checked, not stored yet.
pub struct Question<'a> {
    /// Where.
    pub room: &'a RoomName,
    /// Who.
    pub from: &'a Sender,
    /// The text.
    pub body: &'a str,
    /// The client's id for it.
    pub client_msg_id: Option<&'a str>,
    /// Users it mentions.
    pub mentions: &'a [String],
}

/// Longest reject reason passed on to the sender, in bytes.
const MAX_REASON_BYTES: usize = 256;

/// The configured hook and its client.
pub struct PublishHook {
    /// URL, timeout, failure mode, secret.
    config: PublishHookConfig,
    /// Sends the questions (keeps connections to the hook open).
    client: reqwest::Client,
    /// Answers by outcome (a fixed set of labels).
    outcomes: IntCounterVec,
}

impl PublishHook {
    /// A hook per `config`, its metric registered in `registry`.
    pub fn new(config: PublishHookConfig, registry: &Registry) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .expect("the HTTP client builds");
        let outcomes = IntCounterVec::new(
            Opts::new(
                "chorus_publish_hook_total",
                "Publish hook answers: allow, replace, reject, and failures stored (failed_open) or refused (failed_closed).",
            ),
            &["outcome"],
        )
        .unwrap();
        registry.register(Box::new(outcomes.clone())).unwrap();
        for outcome in ["allow", "replace", "reject", "failed_open", "failed_closed"] {
            outcomes.with_label_values(&[outcome]).reset();
        }
        Self {
            config,
            client,
            outcomes,
        }
    }

    /// Asks the hook about `post`; `max_body` bounds a replacement.
    pub async fn ask(&self, post: Question<'_>, max_body: usize) -> Verdict {
        let verdict = match self.question(post).await {
            Ok(Answer::Allow) => Ok(Verdict::Allow),
            Ok(Answer::Replace { body }) if !body.is_empty() && body.len() <= max_body => {
                Ok(Verdict::Replace(body))
            }
            Ok(Answer::Replace { .. }) => Err("a replacement that is empty or too long".into()),
            Ok(Answer::Reject { mut reason }) => {
                if reason.is_empty() {
                    reason = "the message was refused".into();
                }
                let mut end = reason.len().min(MAX_REASON_BYTES);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                reason.truncate(end);
                Ok(Verdict::Reject(reason))
            }
            Err(why) => Err(why),
        };
        let (verdict, label) = match verdict {
            Ok(Verdict::Allow) => (Verdict::Allow, "allow"),
            Ok(Verdict::Replace(body)) => (Verdict::Replace(body), "replace"),
            Ok(verdict) => (verdict, "reject"),
            Err(why) => {
                tracing::warn!(%why, "the publish hook failed");
                match self.config.fail_open {
                    true => (Verdict::Allow, "failed_open"),
                    false => (Verdict::Unavailable, "failed_closed"),
                }
            }
        };
        self.outcomes.with_label_values(&[label]).inc();
        verdict
    }

    async fn question(&self, post: Question<'_>) -> Result<Answer, String> {
        let body = json!({
            "room": post.room,
            "from": post.from,
            "body": post.body,
            "client_msg_id": post.client_msg_id,
            "mentions": post.mentions,
        });
        let body = serde_json::to_vec(&body).expect("JSON values encode");
        let mut request = self
            .client
            .post(&self.config.url)
            .header("content-type", "application/json");
        if let Some(secret) = &self.config.secret {
            let id = format!("hook_{}", uuid::Uuid::now_v7());
            let timestamp = chorus_protocol::unix_micros() / 1_000_000;
            request = request
                .header(
                    "webhook-signature",
                    signature(secret, &id, timestamp, &body),
                )
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string());
        }
        let answer = request
            .body(body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !answer.status().is_success() {
            return Err(format!("answered {}", answer.status()));
        }
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("an answer that is not one: {e}"))
    }
}

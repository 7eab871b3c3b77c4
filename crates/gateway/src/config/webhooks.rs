//! Webhook endpoints, read from `--webhooks-file` (TOML):
//!
//! ```toml
//! [[endpoints]]
//! name = "shop"                                   # in metrics and logs
//! url = "https://shop.example/hooks/chorus"
//! secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" # Standard Webhooks secret
//! events = ["message.created", "message.edited"]   # default: all
//! rooms = ["orders.*"]                             # default: all
//! ```

use std::{path::Path, sync::Arc, time::Duration};

use serde::Deserialize;
use wildmatch::WildMatch;

/// Most endpoints (each is a label value of the webhook metrics).
pub const MAX_ENDPOINTS: usize = 16;

/// The events webhooks carry.
pub const EVENT_TYPES: [&str; 8] = [
    "message.created",
    "message.edited",
    "message.deleted",
    "reaction.changed",
    "member.joined",
    "member.left",
    "user.connected",
    "user.disconnected",
];

/// Where and how webhooks go.
#[derive(Clone)]
pub struct WebhooksConfig {
    /// The endpoints.
    pub endpoints: Arc<[Endpoint]>,
    /// How long an event is retried before it becomes a dead letter.
    pub give_up_after: Duration,
    /// Bound on one delivery (connect, send, answer).
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhooksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.endpoints.iter().map(|e| e.name.as_str()).collect();
        f.debug_struct("WebhooksConfig")
            .field("endpoints", &names)
            .field("give_up_after", &self.give_up_after)
            .finish_non_exhaustive()
    }
}

/// One receiver of webhooks.
pub struct Endpoint {
    /// Names it in metrics, logs and the dead-letter API.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// The HMAC-SHA256 key (the secret's bytes after `whsec_`).
    pub secret: Vec<u8>,
    /// Event types it gets (empty: all).
    pub events: Vec<String>,
    /// Room patterns it gets events of (empty: all).
    pub rooms: Vec<WildMatch>,
}

impl Endpoint {
    /// Whether this endpoint gets an event of `kind` in `room` (the room
    /// patterns do not apply to events of no room: a user's connections).
    pub fn wants(&self, kind: &str, room: Option<&str>) -> bool {
        (self.events.is_empty() || self.events.iter().any(|e| e == kind))
            && match room {
                Some(room) => self.rooms.is_empty() || self.rooms.iter().any(|p| p.matches(room)),
                None => true,
            }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    endpoints: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    url: String,
    secret: String,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    rooms: Vec<String>,
}

impl WebhooksConfig {
    /// Reads the endpoints file at `path`.
    pub fn load(path: &Path, give_up_after: Duration, timeout: Duration) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text, give_up_after, timeout).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses an endpoints file's text.
    pub fn parse(text: &str, give_up_after: Duration, timeout: Duration) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if file.endpoints.len() > MAX_ENDPOINTS {
            return Err(format!("at most {MAX_ENDPOINTS} endpoints"));
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for entry in file.endpoints {
            let name = entry.name;
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid_name {
                return Err(format!(
                    "endpoint name {name:?} must be 1-64 letters, digits, - _ ."
                ));
            }
            if endpoints.iter().any(|e| e.name == name) {
                return Err(format!("two endpoints are named {name:?}"));
            }
            if !(entry.url.starts_with("http://") || entry.url.starts_with("https://"))
                || reqwest::Url::parse(&entry.url).is_err()
            {
                return Err(format!("endpoint {name:?}: url must be an http(s) URL"));
            }
            let secret = crate::auth::secret_key(&entry.secret).ok_or_else(|| {
                format!("endpoint {name:?}: secret must be whsec_ and 24-64 bytes in base64")
            })?;
            if let Some(unknown) = entry
                .events
                .iter()
                .find(|e| !EVENT_TYPES.contains(&e.as_str()))
            {
                return Err(format!(
                    "endpoint {name:?}: unknown event {unknown:?} ({})",
                    EVENT_TYPES.join(", ")
                ));
            }
            endpoints.push(Endpoint {
                name,
                url: entry.url,
                secret,
                events: entry.events,
                rooms: entry.rooms.iter().map(|p| WildMatch::new(p)).collect(),
            });
        }
        Ok(Self {
            endpoints: endpoints.into(),
            give_up_after,
            timeout,
        })
    }

    /// Whether some endpoint gets events of `kind` (events nobody wants are not queued).
    pub fn wanted(&self, kind: &str) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.events.is_empty() || e.events.iter().any(|k| k == kind))
    }
}

/// The publish hook: asked before a user's message is stored.
#[derive(Clone)]
pub struct PublishHookConfig {
    /// Where the question is POSTed.
    pub url: String,
    /// Bound on the answer.
    pub timeout: Duration,
    /// When the hook does not answer (in time, or sensibly): store the
    /// message anyway (`true`) or refuse it with `hook_unavailable`.
    pub fail_open: bool,
    /// Signs the questions like webhooks, when set.
    pub secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for PublishHookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishHookConfig")
            .field("timeout", &self.timeout)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl PublishHookConfig {
    /// From the flags: `url` http(s), `failure` `open` or `closed`, an optional `whsec_` secret.
    pub fn new(
        url: &str,
        timeout: Duration,
        failure: &str,
        secret: Option<&str>,
    ) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || reqwest::Url::parse(url).is_err()
        {
            return Err("--publish-hook-url must be an http(s) URL".into());
        }
        let secret = match secret {
            None => None,
            Some(secret) => Some(
                crate::auth::secret_key(secret)
                    .ok_or("--publish-hook-secret must be whsec_ and 24-64 bytes in base64")?,
            ),
        };
        Ok(Self {
            url: url.to_owned(),
            timeout,
            fail_open: failure == "open",
            secret,
        })
    }
}

//! The server API's keys: kept as SHA-256 hashes (the keys themselves are
//! never stored or logged), each with a name, scopes and a rate bucket.
//!
//! The keys file (`--api-keys-file`) is TOML:
//!
//! ```toml
//! [[keys]]
//! name = "shop-backend"
//! sha256 = "<64 hex digits: SHA-256 of the key>"
//! scopes = ["publish", "moderate"]
//! ```
//!
//! `chorus api-key --name shop-backend --scopes publish,moderate` makes a
//! key and prints it with its entry.

use std::{collections::HashMap, fmt, path::Path, sync::Arc};

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Bucket, Rate};

/// What a key may do through the server API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Post and broadcast messages as a bot or the system.
    Publish,
    /// Edit, delete and react on any message.
    Moderate,
    /// Read who is in a room and room info.
    Presence,
    /// Read room history.
    History,
    /// Disconnect users and revoke their tokens.
    Users,
    /// List and replay webhook dead letters.
    Webhooks,
}

impl Scope {
    /// Every scope, as written in the keys file.
    pub const ALL: [Self; 6] = [
        Self::Publish,
        Self::Moderate,
        Self::Presence,
        Self::History,
        Self::Users,
        Self::Webhooks,
    ];

    /// The scope's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Moderate => "moderate",
            Self::Presence => "presence",
            Self::History => "history",
            Self::Users => "users",
            Self::Webhooks => "webhooks",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.name() == name)
    }
}

/// One configured key.
pub struct ApiKey {
    /// Names the key in logs and metrics (never the key itself).
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Its own rate bucket.
    pub bucket: Bucket,
}

/// The configured keys, by the SHA-256 of the key.
#[derive(Clone, Default)]
pub struct ApiKeys {
    /// SHA-256 of a key -> the key's entry.
    by_hash: Arc<HashMap<[u8; 32], ApiKey>>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.by_hash.values().map(|k| k.name.as_str()).collect();
        names.sort_unstable();
        f.debug_struct("ApiKeys").field("names", &names).finish()
    }
}

/// The keys file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    /// Every key.
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

/// One entry of the keys file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    sha256: String,
    scopes: Vec<String>,
}

impl ApiKeys {
    /// Reads the keys file at `path`; each key gets a bucket of `rate`.
    pub fn load(path: &Path, rate: Rate) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text, rate).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a keys file's text.
    pub fn parse(text: &str, rate: Rate) -> Result<Self, String> {
        let file: KeysFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let mut by_hash = HashMap::new();
        for entry in file.keys {
            if entry.name.is_empty()
                || entry.name.len() > 64
                || !entry
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(format!(
                    "key name {:?} must be 1-64 letters, digits, - _ .",
                    entry.name
                ));
            }
            let hash = parse_hash(&entry.sha256)
                .ok_or_else(|| format!("key {:?}: sha256 must be 64 hex digits", entry.name))?;
            let mut scopes = Vec::new();
            for name in &entry.scopes {
                let scope = Scope::parse(name).ok_or_else(|| {
                    format!(
                        "key {:?}: unknown scope {name:?} (publish, moderate, presence, history, users, webhooks)",
                        entry.name
                    )
                })?;
                scopes.push(scope);
            }
            let key = ApiKey {
                name: entry.name,
                scopes,
                bucket: Bucket::new(rate),
            };
            if by_hash.insert(hash, key).is_some() {
                return Err("two entries have the same sha256".into());
            }
        }
        Ok(Self {
            by_hash: Arc::new(by_hash),
        })
    }

    /// The entry of a presented key, if it is one of ours.
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        self.by_hash.get(&hash(presented))
    }

    /// Whether no key is configured (the server API then refuses everything).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// A new random key (256 bits) and the SHA-256 hex for the keys file.
pub fn new_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    let key = format!(
        "chorus_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hex = hash(&key).iter().map(|b| format!("{b:02x}")).collect();
    (key, hex)
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_found_by_its_entry_and_nothing_else_is() {
        let (key, hex) = new_key();
        let text =
            format!("[[keys]]\nname = \"shop\"\nsha256 = \"{hex}\"\nscopes = [\"publish\"]\n");
        let keys = ApiKeys::parse(&text, Rate::new(10.0, 10)).unwrap();
        let found = keys.find(&key).unwrap();
        assert_eq!(found.name, "shop");
        assert_eq!(found.scopes, vec![Scope::Publish]);
        assert!(keys.find(&format!("{key}x")).is_none());
        assert!(keys.find(&hex).is_none());
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let rate = Rate::new(10.0, 10);
        let bad_scope = "[[keys]]\nname = \"a\"\nsha256 = \"00\"\nscopes = []\n";
        assert!(
            ApiKeys::parse(bad_scope, rate)
                .unwrap_err()
                .contains("64 hex")
        );
        let hex = "ab".repeat(32);
        let unknown = format!("[[keys]]\nname = \"a\"\nsha256 = \"{hex}\"\nscopes = [\"all\"]\n");
        assert!(
            ApiKeys::parse(&unknown, rate)
                .unwrap_err()
                .contains("unknown scope")
        );
        let twice = format!(
            "[[keys]]\nname = \"a\"\nsha256 = \"{hex}\"\nscopes = []\n[[keys]]\nname = \"b\"\nsha256 = \"{hex}\"\nscopes = []\n"
        );
        assert!(
            ApiKeys::parse(&twice, rate)
                .unwrap_err()
                .contains("same sha256")
        );
    }
}

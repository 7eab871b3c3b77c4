//! Token revocations as this node knows them: read from the backplane at
//! start and again whenever their version changes (checked every
//! [`CHECK_EVERY`]), and recorded here at once when this node's server API
//! revokes. [`super::Chat::verify`] refuses a revoked token.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chorus_backplane::{Revocation, UserState};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::auth::Identity;

/// How often the node asks the backplane whether revocations changed: a
/// revocation made on another node reaches connects here within this.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The revocations known here.
#[derive(Default)]
pub struct Revocations {
    /// The backplane's version last read, and user -> their revocation.
    known: RwLock<(u64, HashMap<String, Revocation>)>,
}

impl Revocations {
    /// Whether `identity`'s token is revoked at `now` (ms since the Unix
    /// epoch): its user has a revocation that has not ended, and the token
    /// was issued before it (a token without `iat` counts as issued before).
    pub fn refuses(&self, identity: &Identity, now: u64) -> bool {
        let known = self.known.read();
        let Some(revocation) = known.1.get(&identity.user.id) else {
            return false;
        };
        let issued_ms = identity.issued_at.saturating_mul(1000);
        revocation.until > now && issued_ms < revocation.issued_before
    }

    /// Records a revocation this node made (before the next check reads it back).
    pub fn record(&self, user: &str, revocation: Revocation) {
        self.known.write().1.insert(user.to_owned(), revocation);
    }

    fn version(&self) -> u64 {
        self.known.read().0
    }

    fn replace(&self, version: u64, list: Vec<(String, Revocation)>) {
        *self.known.write() = (version, list.into_iter().collect());
    }
}

/// Keeps `revocations` in step with the backplane until `stopped`.
pub fn follow(
    revocations: Arc<Revocations>,
    users: Arc<dyn UserState>,
    stopped: CancellationToken,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stopped.cancelled() => return,
            }
            match users.revocations_version().await {
                Ok(version) if version == revocations.version() => continue,
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "revocations not checked");
                    continue;
                }
            }
            match users.revocations().await {
                Ok((version, list)) => revocations.replace(version, list),
                Err(error) => tracing::debug!(%error, "revocations not read"),
            }
        }
    });
}

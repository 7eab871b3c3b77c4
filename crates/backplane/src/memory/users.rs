//! Drafts and statuses on the in-process bus.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use async_trait::async_trait;
use chorus_protocol::RoomName;
use parking_lot::Mutex;

use super::relay::NodeLink;
use crate::{BackplaneError, MAX_REVOCATIONS, Revocation, UserState};

/// Most user statuses the bus keeps.
const MAX_STATUSES: usize = 100_000;

/// Every user's drafts and status.
#[derive(Default)]
pub(super) struct Users {
    /// User -> room -> unsent text.
    drafts: Mutex<HashMap<String, BTreeMap<String, String>>>,
    /// User -> status (at most [`MAX_STATUSES`]).
    statuses: Mutex<HashMap<String, String>>,
    /// Changes with each revocation, and user -> their revocation.
    revocations: Mutex<(u64, HashMap<String, Revocation>)>,
}

/// One node's view of [`Users`].
pub(super) struct MemoryUsers {
    /// The node's link to the bus.
    node: Arc<NodeLink>,
    /// The bus's users.
    users: Arc<Users>,
}

impl MemoryUsers {
    pub(super) fn new(node: Arc<NodeLink>, users: Arc<Users>) -> Self {
        Self { node, users }
    }

    fn users(&self) -> Result<&Users, BackplaneError> {
        self.node.check_open()?;
        Ok(&self.users)
    }
}

#[async_trait]
impl UserState for MemoryUsers {
    async fn save_draft(
        &self,
        user: &str,
        room: &RoomName,
        text: &str,
        max: usize,
    ) -> Result<bool, BackplaneError> {
        let mut all = self.users()?.drafts.lock();
        let drafts = all.entry(user.to_owned()).or_default();
        if text.is_empty() {
            drafts.remove(room.as_str());
        } else if drafts.contains_key(room.as_str()) || drafts.len() < max {
            drafts.insert(room.as_str().to_owned(), text.to_owned());
        } else {
            return Ok(false);
        }
        if drafts.is_empty() {
            all.remove(user);
        }
        Ok(true)
    }

    async fn drafts(&self, user: &str) -> Result<Vec<(String, String)>, BackplaneError> {
        let all = self.users()?.drafts.lock();
        let drafts = all.get(user).into_iter().flatten();
        Ok(drafts.map(|(r, t)| (r.clone(), t.clone())).collect())
    }

    async fn set_status(&self, user: &str, status: &str) -> Result<(), BackplaneError> {
        let mut statuses = self.users()?.statuses.lock();
        if statuses.len() >= MAX_STATUSES && !statuses.contains_key(user) {
            // Bounded: one other user's status goes (read as never set).
            if let Some(other) = statuses.keys().next().cloned() {
                statuses.remove(&other);
            }
        }
        statuses.insert(user.to_owned(), status.to_owned());
        Ok(())
    }

    async fn statuses(&self, users: &[String]) -> Result<Vec<Option<String>>, BackplaneError> {
        let statuses = self.users()?.statuses.lock();
        Ok(users.iter().map(|u| statuses.get(u).cloned()).collect())
    }

    async fn revoke(
        &self,
        user: &str,
        revocation: Revocation,
        now: u64,
    ) -> Result<bool, BackplaneError> {
        let mut all = self.users()?.revocations.lock();
        let (version, revocations) = &mut *all;
        revocations.retain(|_, r| r.until > now);
        if revocations.len() >= MAX_REVOCATIONS && !revocations.contains_key(user) {
            return Ok(false);
        }
        revocations.insert(user.to_owned(), revocation);
        *version += 1;
        Ok(true)
    }

    async fn revocations_version(&self) -> Result<u64, BackplaneError> {
        Ok(self.users()?.revocations.lock().0)
    }

    async fn revocations(&self) -> Result<(u64, Vec<(String, Revocation)>), BackplaneError> {
        let all = self.users()?.revocations.lock();
        let list = all.1.iter().map(|(u, r)| (u.clone(), *r)).collect();
        Ok((all.0, list))
    }
}

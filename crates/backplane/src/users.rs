//! State of one user that follows them across nodes and devices.

use async_trait::async_trait;
use chorus_protocol::RoomName;

use crate::BackplaneError;

/// Most users with tokens revoked at once, cluster-wide (a revocation ends at its `until`).
pub const MAX_REVOCATIONS: usize = 100_000;

/// A user's tokens issued before `issued_before` are refused until `until`
/// (both ms since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Tokens issued (`iat`) before this are refused; tokens without `iat` too.
    pub issued_before: u64,
    /// When the revocation ends (should outlive the tokens it refuses).
    pub until: u64,
}

/// Each user's drafts (unsent text per room) and status, kept as long as room state.
#[async_trait]
pub trait UserState: Send + Sync + 'static {
    /// Saves `user`'s unsent text for `room` (empty: deletes it); `false`, and
    /// nothing saved, when the user already has `max` other drafts.
    async fn save_draft(
        &self,
        user: &str,
        room: &RoomName,
        text: &str,
        max: usize,
    ) -> Result<bool, BackplaneError>;
    /// `user`'s drafts: (room, text), by room name.
    async fn drafts(&self, user: &str) -> Result<Vec<(String, String)>, BackplaneError>;
    /// Sets `user`'s status (`online` or `away`).
    async fn set_status(&self, user: &str, status: &str) -> Result<(), BackplaneError>;
    /// The statuses of `users`, in the order given (`None`: never set, or forgotten).
    async fn statuses(&self, users: &[String]) -> Result<Vec<Option<String>>, BackplaneError>;
    /// Records `revocation` for `user` (replacing theirs), after forgetting
    /// those ended by `now`; `false`, and nothing recorded, when
    /// [`MAX_REVOCATIONS`] other users have one.
    async fn revoke(
        &self,
        user: &str,
        revocation: Revocation,
        now: u64,
    ) -> Result<bool, BackplaneError>;
    /// A number that changes whenever a revocation is recorded.
    async fn revocations_version(&self) -> Result<u64, BackplaneError>;
    /// The version and every recorded revocation (ended ones included until
    /// the next [`Self::revoke`] forgets them).
    async fn revocations(&self) -> Result<(u64, Vec<(String, Revocation)>), BackplaneError>;
}

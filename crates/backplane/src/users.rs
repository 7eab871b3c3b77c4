//! State of one user that follows them across nodes and devices.

use async_trait::async_trait;
use chorus_protocol::RoomName;

use crate::BackplaneError;

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
}

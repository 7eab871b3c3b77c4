//! One node's view of the backplane: every part, together.

use std::sync::Arc;

use crate::{NodeRegistry, PresenceStore, PubSub, ReadMarkers, RoomLog, UserState, WebhookQueue};

/// One node's view of the backplane: every part, as the implementation that
/// owns it. Cloning shares the parts.
#[derive(Clone)]
pub struct Backplane {
    /// Rooms' numbered, bounded history.
    pub log: Arc<dyn RoomLog>,
    /// Read markers per room and user.
    pub markers: Arc<dyn ReadMarkers>,
    /// Room subscriptions, signals, readiness and the connections' shutdown.
    pub pubsub: Arc<dyn PubSub>,
    /// Drafts and statuses per user.
    pub users: Arc<dyn UserState>,
    /// Who is in which room, across nodes.
    pub presence: Arc<dyn PresenceStore>,
    /// The cluster's live nodes.
    pub registry: Arc<dyn NodeRegistry>,
    /// The queue webhooks are delivered from.
    pub webhooks: Arc<dyn WebhookQueue>,
    /// The same kind of queue, for the archive: each entry names a room
    /// with entries to archive (partitioned, leased and advanced alike).
    pub archive_notes: Arc<dyn WebhookQueue>,
}

impl std::fmt::Debug for Backplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backplane").finish_non_exhaustive()
    }
}

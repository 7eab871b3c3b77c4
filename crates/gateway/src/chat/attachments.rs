//! Files attached to a `send`: the message carries their descriptions. The
//! files themselves are kept by the node's file store (`crate::files`),
//! which answers through [`AttachmentSource`] so that the message path does
//! not depend on how files are kept.

use async_trait::async_trait;
use chorus_protocol::{Attachment, RoomName};
use uuid::Uuid;

/// Why files cannot be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    /// No such file, or one uploaded to another room or by someone else.
    #[error("no file {0} uploaded by you to this room")]
    Unknown(Uuid),
    /// The file store did not answer.
    #[error("the file store did not answer; retry")]
    Unavailable,
}

/// Describes files for a message.
#[async_trait]
pub trait AttachmentSource: Send + Sync + 'static {
    /// The descriptions of `ids`, in order, if each was uploaded by `user`
    /// to `room`.
    async fn describe(
        &self,
        user: &str,
        room: &RoomName,
        ids: &[Uuid],
    ) -> Result<Vec<Attachment>, AttachmentError>;
    /// A stored message carries `ids`: they are kept (best effort; a file
    /// left marked is swept as unattached later).
    async fn attached(&self, ids: &[Uuid]);
    /// The message carrying `ids` was deleted: the files go too (best effort).
    async fn discard(&self, ids: &[Uuid]);
}

//! The file store as the message path's [`AttachmentSource`]: a `send`
//! may attach the files its user uploaded to the same room. (The store, not
//! [`super::Files`], which holds the chat: no reference cycle.)

use async_trait::async_trait;
use chorus_protocol::{Attachment, RoomName};
use uuid::Uuid;

use super::store::{FileMeta, FileStore, StoreError};
use crate::chat::attachments::{AttachmentError, AttachmentSource};

#[async_trait]
impl AttachmentSource for FileStore {
    async fn describe(
        &self,
        user: &str,
        room: &RoomName,
        ids: &[Uuid],
    ) -> Result<Vec<Attachment>, AttachmentError> {
        let metas = futures_util::future::join_all(ids.iter().map(|id| self.meta(*id))).await;
        ids.iter()
            .zip(metas)
            .map(|(id, meta)| match meta {
                Ok(meta) if meta.uploader == user && meta.room == room.as_str() => {
                    Ok(attachment(meta))
                }
                Ok(_) | Err(StoreError::NotFound) => Err(AttachmentError::Unknown(*id)),
                Err(StoreError::Failed(why)) => {
                    tracing::warn!(error = %why, "file store failed describing an attachment");
                    Err(AttachmentError::Unavailable)
                }
            })
            .collect()
    }

    async fn discard(&self, ids: &[Uuid]) {
        for id in ids {
            if let Err(error) = self.delete(*id).await {
                tracing::warn!(%error, %id, "a deleted message's file was not deleted");
            }
        }
    }

    async fn attached(&self, ids: &[Uuid]) {
        if let Err(error) = FileStore::attached(self, ids).await {
            tracing::warn!(%error, "attached files not marked as kept; they may be swept");
        }
    }
}

/// How a message describes a stored file.
fn attachment(meta: FileMeta) -> Attachment {
    Attachment {
        id: meta.id,
        name: meta.name,
        size: meta.size,
        content_type: meta.content_type,
        width: meta.width,
        height: meta.height,
        thumbnail: meta.thumbnail,
    }
}

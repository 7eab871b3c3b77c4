//! The archiver, when the node has an archive (`--database-url`): the
//! schema is migrated (tried again every few seconds until the database
//! answers; readiness never waits for it: archiving is not delivery), then
//! [`Archiver::run`] takes its share of the archive's partitions until the
//! node stops.

use std::{sync::Arc, time::Duration};

use chorus_archive::Archiver;
use tokio_util::sync::CancellationToken;

use crate::chat::Chat;

/// Wait between attempts to migrate while the database does not answer.
const MIGRATE_RETRY: Duration = Duration::from_secs(3);

/// Starts archiving, if the node has an archive, until `stopped`.
pub fn start(chat: Arc<Chat>, stopped: CancellationToken) {
    let Some(archive) = chat.archive().cloned() else {
        return;
    };
    let archiver = Arc::new(Archiver {
        archive: archive.clone(),
        log: chat.backplane().log.clone(),
        notes: chat.backplane().archive_notes.clone(),
        registry: chat.backplane().registry.clone(),
        node: chat.config().node_id.clone(),
        retention: chat
            .config()
            .archive
            .as_ref()
            .map(|s| (s.retention.clone(), s.retention_every))
            .unwrap_or_default(),
    });
    tokio::spawn(async move {
        loop {
            match archive.migrate().await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, "the archive's schema is not migrated yet; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(MIGRATE_RETRY) => {}
                        () = stopped.cancelled() => return,
                    }
                }
            }
        }
        archiver.run(stopped).await;
    });
}

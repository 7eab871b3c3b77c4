//! With an archive (`--database-url`): every stored message or change notes
//! its room in the backplane's archive notes before the caller is answered,
//! so the archiver (`chorus_archive::Archiver`, started by the server)
//! archives it. A failed note fails the command like a failed webhook
//! event: the caller's retry (same `client_msg_id`) notes it again.

use chorus_backplane::BackplaneError;
use chorus_protocol::RoomName;

use super::Chat;

impl Chat {
    /// Notes that `room` has a new entry to archive (nothing without an archive).
    pub(super) async fn note_for_archive(&self, room: &RoomName) -> Result<(), BackplaneError> {
        if self.config().archive.is_none() {
            return Ok(());
        }
        chorus_archive::Archiver::note(self.backplane().archive_notes.as_ref(), room).await
    }
}

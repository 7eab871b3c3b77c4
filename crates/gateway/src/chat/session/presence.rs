//! The `presence` query: who is in a joined room now, with their status.

use chorus_protocol::{ServerEvent, commands};

use super::{Handled, Session};

impl Session {
    pub(super) async fn list_presence(
        &mut self,
        presence: commands::Presence,
        reference: Option<&str>,
    ) -> Handled {
        let room = presence.room;
        self.in_room(&room, "asking who is in it")?;
        let (total, members) = self.chat.members(&room).await?;
        self.reply(&ServerEvent::Members {
            room: &room,
            members: &members,
            total,
            reference,
        });
        Ok(())
    }
}

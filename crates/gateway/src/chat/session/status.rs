//! A user's status (`online` or `away`): stored for the cluster, told to the
//! user's own connections, and relayed to the rooms the user is in (see
//! `chat::presence::tasks::relay_statuses`). `offline` is no presence at all.

use chorus_protocol::{NoticeKind, RoomName, ServerEvent, commands};

use super::{Handled, Limited, Session};

impl Session {
    pub(super) async fn set_status(
        &mut self,
        status: commands::Status,
        reference: Option<&str>,
    ) -> Handled {
        self.take(Limited::Status)?;
        let status = if status.away { "away" } else { "online" };
        let user = self.user().id.clone();
        self.chat
            .backplane()
            .users
            .set_status(&user, status)
            .await?;
        // Every node with a connection of this user relays it to the rooms the
        // user is in there, and tells the user's connections.
        // A notice names a room; a status is about none (and a user shard's
        // name is not one a notice may carry).
        let room = RoomName::parse("status").expect("a valid room name");
        self.notice_self(&room, NoticeKind::Status(status.into()))
            .await;
        self.reply(&ServerEvent::StatusSet { status, reference });
        Ok(())
    }
}

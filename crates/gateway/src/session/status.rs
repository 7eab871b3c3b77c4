//! A user's status (`online` or `away`): stored for the cluster, told to the
//! user's own connections, and relayed to the rooms the user is in (see
//! `presence::relay_statuses`). `offline` is no presence at all.

use chorus_protocol::{ErrorCode, NoticeKind, RoomName, ServerEvent};

use super::Session;

impl Session {
    pub(super) async fn set_status(&mut self, away: bool, reference: Option<String>) {
        if let Err(wait) = self.limit(false) {
            self.node.metrics.rate_limited("join");
            let message = format!(
                "too many status changes; retry in {} ms",
                wait.as_millis().max(1)
            );
            let code = ErrorCode::RateLimited;
            return self.error_after(code, message, reference, None, Some(wait));
        }
        let status = if away { "away" } else { "online" };
        let user = self.user_id().to_owned();
        if let Err(error) = self.node.backplane.set_status(&user, status).await {
            let message = format!("status not set: {error}");
            return self.error(ErrorCode::BackplaneUnavailable, message, reference, None);
        }
        // Every node with a connection of this user relays it to the rooms the
        // user is in there, and tells the user's connections.
        // A notice names a room; a status is about none (and a user shard's
        // name is not one a notice may carry).
        let room = RoomName::parse("status").expect("a valid room name");
        self.notice_self(&room, NoticeKind::Status(status.into()))
            .await;
        self.reply(&ServerEvent::StatusSet {
            status,
            reference: reference.as_deref(),
        });
    }
}

//! What each webhook event says, queued by [`Chat`]: a stored message or
//! change is queued before the client or the API caller is answered, and a
//! failed queueing fails the command, which the caller retries: a retried
//! send (same `client_msg_id`) queues its event again under the same id, so
//! an event is queued at least once and receivers deduplicate by
//! `webhook-id`. A connection's events are best effort.

use chorus_backplane::BackplaneError;
use chorus_protocol::{ChangeKind, ChatMessage, RoomName, Sender};
use serde_json::{Value, json};

use super::Chat;

impl Chat {
    /// Queues a `message.created` event for `message` (stored, with its seq).
    pub(super) async fn message_event(&self, message: &ChatMessage) -> Result<(), BackplaneError> {
        self.note_for_archive(&message.room).await?;
        // On every send's path: nothing is built unless an endpoint wants it.
        if !self.events.wanted("message.created") {
            return Ok(());
        }
        let data = json!({"room": message.room, "message": message});
        let id = format!("msg_{}", message.id);
        self.queue_event(&message.room, "message.created", id, data)
            .await
    }

    /// Queues the event of a change (`id`: the change's own id) stored at `seq`.
    pub(super) async fn change_event(
        &self,
        (room, target, seq): (&RoomName, u64, u64),
        (kind, by): (&ChangeKind, &Sender),
        (id, ts): (&str, u64),
    ) -> Result<(), BackplaneError> {
        let name = match kind {
            ChangeKind::Edit(_) => "message.edited",
            ChangeKind::Delete => "message.deleted",
            ChangeKind::React(_) | ChangeKind::Unreact(_) => "reaction.changed",
        };
        if !self.events.wanted(name) {
            return Ok(());
        }
        let mut data = json!({"room": room, "target": target, "seq": seq, "ts": ts});
        let extra = match kind {
            ChangeKind::Edit(body) => json!({"by": by, "body": body}),
            ChangeKind::Delete => json!({"by": by}),
            ChangeKind::React(emoji) => json!({"user": by, "emoji": emoji, "action": "add"}),
            ChangeKind::Unreact(emoji) => json!({"user": by, "emoji": emoji, "action": "remove"}),
        };
        if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
            data.extend(extra);
        }
        self.queue_event(room, name, format!("chg_{id}"), data)
            .await
    }

    async fn queue_event(
        &self,
        room: &RoomName,
        kind: &str,
        id: String,
        data: Value,
    ) -> Result<(), BackplaneError> {
        self.events.queue(room.as_str(), kind, id, data).await
    }

    /// Whether some webhook endpoint wants events of `kind`.
    pub fn wants_event(&self, kind: &str) -> bool {
        self.events.wanted(kind)
    }

    /// Queues `user.connected` or `user.disconnected` (`kind`) for connection
    /// `conn` of `user` on this node, when some endpoint wants it; best effort.
    pub async fn user_event(&self, kind: &str, user: &Sender, conn: u64) {
        let node = self.config.node_id.as_str();
        let data = json!({"user": user, "node": node, "connection": conn});
        let id = format!("con_{}", uuid::Uuid::now_v7());
        if let Err(error) = self.events.queue(&user.id, kind, id, data).await {
            tracing::warn!(%error, kind, "user event not queued");
        }
    }
}

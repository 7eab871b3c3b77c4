//! Events for webhooks: what happened to a room's messages, queued in the
//! backplane's webhook queue (partitioned by room, so a room's events keep
//! their order) before the client or the API caller is answered. A failed
//! queueing fails the command, which the caller retries: a retried send
//! (same `client_msg_id`) queues its event again under the same id, so an
//! event is queued at least once and receivers deduplicate by `webhook-id`.

use std::time::SystemTime;

use bytes::Bytes;
use chorus_backplane::{BackplaneError, webhook_partition};
use chorus_protocol::{ChangeKind, ChatMessage, RoomName, Sender};
use serde_json::{Value, json};

use super::Chat;

impl Chat {
    /// Queues a `message.created` event for `message` (stored, with its seq).
    pub(super) async fn message_event(&self, message: &ChatMessage) -> Result<(), BackplaneError> {
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
        let base = json!({"room": room, "target": target, "seq": seq, "ts": ts});
        let (kind, extra) = match kind {
            ChangeKind::Edit(body) => ("message.edited", json!({"by": by, "body": body})),
            ChangeKind::Delete => ("message.deleted", json!({"by": by})),
            ChangeKind::React(emoji) => (
                "reaction.changed",
                json!({"user": by, "emoji": emoji, "action": "add"}),
            ),
            ChangeKind::Unreact(emoji) => (
                "reaction.changed",
                json!({"user": by, "emoji": emoji, "action": "remove"}),
            ),
        };
        let mut data = base;
        if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
            data.extend(extra);
        }
        self.queue_event(room, kind, format!("chg_{id}"), data)
            .await
    }

    async fn queue_event(
        &self,
        room: &RoomName,
        kind: &str,
        id: String,
        data: Value,
    ) -> Result<(), BackplaneError> {
        let Some(webhooks) = &self.config.webhooks else {
            return Ok(());
        };
        if !webhooks.wanted(kind) {
            return Ok(());
        }
        let timestamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let event = json!({"id": id, "type": kind, "timestamp": timestamp, "data": data});
        let event = Bytes::from(serde_json::to_vec(&event).expect("JSON values encode"));
        let partition = webhook_partition(room.as_str());
        self.backplane.webhooks.append(partition, event, None).await
    }
}

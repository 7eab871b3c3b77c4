//! Events for webhooks: the queue they go to ([`EventQueue`]: the backplane's
//! webhook queue, partitioned by room or user, so each one's events keep
//! their order) and the presence store that turns joins and leaves into
//! events ([`MemberEvents`]). What each message and connection event says
//! is in `event_kinds.rs`.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use bytes::Bytes;
use chorus_backplane::{
    BackplaneError, PresenceEntry, PresenceStore, WebhookQueue, webhook_partition,
};
use chorus_protocol::{Envelope, EnvelopeBody, RoomName};
use serde_json::{Value, json};

use crate::config::WebhooksConfig;

/// Where events go: the webhook queue, when some endpoint wants their type.
#[derive(Clone)]
pub struct EventQueue {
    /// The endpoints (`None`: no events are queued).
    webhooks: Option<WebhooksConfig>,
    /// The backplane's webhook queue.
    queue: Arc<dyn WebhookQueue>,
}

impl EventQueue {
    /// Events for `webhooks`' endpoints, into `queue`.
    pub fn new(webhooks: Option<WebhooksConfig>, queue: Arc<dyn WebhookQueue>) -> Self {
        Self { webhooks, queue }
    }

    /// Whether some endpoint wants events of `kind`.
    pub fn wanted(&self, kind: &str) -> bool {
        self.webhooks.as_ref().is_some_and(|w| w.wanted(kind))
    }

    /// Queues event `id` of type `kind`, if some endpoint wants it, in the
    /// partition of `key` (a room's name, or a user's id for their events).
    pub async fn queue(
        &self,
        key: &str,
        kind: &str,
        id: String,
        data: Value,
    ) -> Result<(), BackplaneError> {
        if !self.wanted(kind) {
            return Ok(());
        }
        let timestamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let event = json!({"id": id, "type": kind, "timestamp": timestamp, "data": data});
        let event = Bytes::from(serde_json::to_vec(&event).expect("JSON values encode"));
        self.queue.append(webhook_partition(key), event, None).await
    }
}

/// The presence store, queueing `member.joined` and `member.left` for the
/// join and leave signals each call relayed (each is relayed by one call of
/// one node, so each becomes one event). Presence is best effort: an event
/// that cannot be queued is logged.
pub struct MemberEvents {
    /// The store itself.
    pub store: Arc<dyn PresenceStore>,
    /// Where the events go.
    pub events: EventQueue,
}

impl MemberEvents {
    async fn queue(&self, room: &RoomName, relayed: &[Bytes]) {
        for signal in relayed {
            let Ok(Envelope {
                body: EnvelopeBody::Presence(signal),
                ..
            }) = Envelope::decode(signal)
            else {
                continue;
            };
            let kind = match signal.online {
                true => "member.joined",
                false => "member.left",
            };
            let id = format!("mem_{}", uuid::Uuid::now_v7());
            let data = json!({"room": room, "user": signal.user});
            if let Err(error) = self.events.queue(room.as_str(), kind, id, data).await {
                tracing::warn!(%error, %room, kind, "member event not queued");
            }
        }
    }
}

#[async_trait]
impl PresenceStore for MemberEvents {
    async fn up(
        &self,
        room: &RoomName,
        node: &str,
        entries: Vec<PresenceEntry>,
        ttl: Duration,
    ) -> Result<Vec<Bytes>, BackplaneError> {
        let relayed = self.store.up(room, node, entries, ttl).await?;
        self.queue(room, &relayed).await;
        Ok(relayed)
    }

    async fn down(
        &self,
        room: &RoomName,
        node: &str,
        users: Vec<String>,
    ) -> Result<Vec<Bytes>, BackplaneError> {
        let relayed = self.store.down(room, node, users).await?;
        self.queue(room, &relayed).await;
        Ok(relayed)
    }

    async fn list(&self, room: &RoomName, max: usize) -> Result<(u64, Vec<Bytes>), BackplaneError> {
        self.store.list(room, max).await
    }
}

//! The publishing half of the fan-out path: a client's message becomes an
//! envelope, gets its idempotency key, and is stored and relayed by the
//! backplane's room log; a new message in a direct room, or one that mentions
//! users, is also noticed to them.

use bytes::Bytes;
use chorus_backplane::{BackplaneError, Dedup, Outgoing, Published};
use chorus_protocol::{Attachment, ChatMessage, Envelope, NoticeKind, RoomName, Sender};
use uuid::Uuid;

use crate::chat::{Chat, notices};

/// A message a user sends.
pub struct Post {
    /// Where.
    pub room: RoomName,
    /// Who.
    pub from: Sender,
    /// The text (checked by the caller).
    pub body: String,
    /// The client's id for it: a retry with the same id is not stored twice.
    pub client_msg_id: Option<String>,
    /// Users to notify.
    pub mentions: Vec<String>,
    /// Files attached (described by the caller).
    pub attachments: Vec<Attachment>,
}

/// How the room took a message.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// The message's id.
    pub id: Uuid,
    /// When it was accepted (ms since the Unix epoch).
    pub ts: u64,
    /// Its place in the room.
    pub seq: u64,
    /// Whether this repeats an earlier send (nothing new was stored).
    pub duplicate: bool,
}

impl Chat {
    /// Stores and relays `post` (once per `client_msg_id` within the dedup
    /// window), then notices it to the users it concerns.
    pub async fn publish(&self, post: Post) -> Result<Accepted, BackplaneError> {
        let (id, ts) = (Uuid::now_v7(), unix_millis());
        // A retry with the same client id gets this acceptance back: "<id>:<ts>".
        let from = &post.from.id;
        let dedup = post.client_msg_id.map(|client_id| Dedup {
            key: format!("{}:{from}:{client_id}", from.len()),
            reply: Bytes::from(format!("{id}:{ts}")),
        });
        let sender = post.from.id.clone();
        let mut message = ChatMessage {
            id,
            room: post.room,
            from: post.from,
            ts,
            body: post.body,
            seq: 0,
            epoch: None,
            mentions: post.mentions,
            edited: None,
            deleted: false,
            reactions: Vec::new(),
            attachments: post.attachments,
        };
        let noticed = message.room.direct_members().is_some() || !message.mentions.is_empty();
        let outgoing = Outgoing {
            payload: Envelope::message(self.config.node_id.as_str(), message.clone()).encode(),
            id: id.to_string(),
            ts,
            sender,
            dedup,
        };
        let started = std::time::Instant::now();
        let published = self.backplane.log.publish(&message.room, outgoing).await;
        self.metrics
            .publish_latency
            .observe(started.elapsed().as_secs_f64());
        match published? {
            Published::New(position) => {
                self.metrics.messages_published.inc();
                message.seq = position.seq;
                self.mark_attached(&message).await;
                self.message_event(&message).await?;
                if noticed {
                    self.notice_message(&message).await;
                }
                Ok(Accepted {
                    id,
                    ts,
                    seq: position.seq,
                    duplicate: false,
                })
            }
            Published::Duplicate { seq, reply, .. } => {
                self.metrics.duplicate_sends.inc();
                let (id, ts) = original_acceptance(&reply).unwrap_or((id, ts));
                // The first try may have stored it and failed to queue its
                // event: queue it again, under the same id.
                (message.id, message.ts, message.seq) = (id, ts, seq);
                self.mark_attached(&message).await;
                self.message_event(&message).await?;
                Ok(Accepted {
                    id,
                    ts,
                    seq,
                    duplicate: true,
                })
            }
        }
    }

    /// A stored message's files are no longer swept as unused (a retried
    /// send marks them again: the first try may have stopped before).
    async fn mark_attached(&self, message: &ChatMessage) {
        if let (false, Some(files)) = (message.attachments.is_empty(), self.attachments.get()) {
            let ids: Vec<Uuid> = message.attachments.iter().map(|a| a.id).collect();
            files.attached(&ids).await;
        }
    }

    /// After a stored message: a direct one is noticed to both users'
    /// connections outside the room, and each mentioned user gets a `mention`
    /// (their nodes deliver it only where their token may read the room).
    async fn notice_message(&self, message: &ChatMessage) {
        let node = self.config.node_id.as_str();
        let pubsub = self.backplane.pubsub.as_ref();
        let about = (&message.room, &message.from);
        let direct = message.room.direct_members();
        if let Some((a, b)) = direct {
            for user in [a, b] {
                let kind = NoticeKind::Message(message.clone());
                notices::send(pubsub, node, user, about, kind).await;
            }
        }
        let mentions = message
            .mentions
            .iter()
            .filter(|user| **user != message.from.id)
            .filter(|user| direct.is_none_or(|(a, b)| *user != a && *user != b))
            .map(|user| {
                let kind = NoticeKind::Mention(message.clone());
                notices::send(pubsub, node, user, about, kind)
            });
        futures_util::future::join_all(mentions).await;
    }
}

/// Parses the stored acceptance of an idempotent send: `<id>:<ts>`.
fn original_acceptance(reply: &[u8]) -> Option<(Uuid, u64)> {
    let (id, ts) = std::str::from_utf8(reply).ok()?.split_once(':')?;
    Some((Uuid::parse_str(id).ok()?, ts.parse().ok()?))
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    chorus_protocol::unix_micros() / 1000
}

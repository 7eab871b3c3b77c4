//! Reading room history for clients: what a join (or resume) gets, and pages
//! for `history` over WebSocket and `GET /api/rooms/{room}/messages`, within
//! the node's bounds (page sizes, and half a client's outbox at once).

use chorus_backplane::{BackplaneError, Overlay, Page, Position, Read, Reader, RoomLog};
use chorus_protocol::{
    Before, ChatMessage, Envelope, EnvelopeBody, MessageChange, Reaction, Resume, RoomName,
    ServerEvent,
};

use crate::{config::HistoryConfig, metrics::Metrics};

/// Estimated encoded size of a message beyond its body (ids, names, keys).
const MESSAGE_OVERHEAD: usize = 256;

/// What a joining client gets before the room's live messages.
pub struct Catchup {
    /// The room's position at the read: `joined` announces it.
    pub position: Position,
    /// Messages (and, on a resume, changes) to send, oldest first.
    pub items: Vec<Item>,
    /// For a resume: whether `items` are exactly the missed ones.
    pub recovered: Option<bool>,
    /// The joining user's read marker and unread count.
    pub reader: Reader,
}

/// One entry of a room's history as a client gets it.
pub enum Item {
    /// A message, as it is now (edited text, tombstone, reactions).
    Message(ChatMessage),
    /// A change to an earlier message, at its own sequence number.
    Change(u64, MessageChange),
}

impl Item {
    /// The event that carries this entry to a client.
    pub fn event(&self) -> ServerEvent<'_> {
        match self {
            Self::Message(message) => ServerEvent::Message(message),
            Self::Change(seq, change) => change.event(*seq),
        }
    }
}

/// The node's history reader.
pub struct History<'a> {
    /// Where history is kept.
    pub log: &'a dyn RoomLog,
    /// Page sizes and resume bounds.
    pub config: &'a HistoryConfig,
    /// Bytes of history one client may be sent at once: half its outbound queue.
    pub budget: usize,
    /// Where resumes are counted.
    pub metrics: &'a Metrics,
}

impl History<'_> {
    /// Reads the messages a join should deliver: the missed ones for a resume when
    /// they are all still in history (and fit); for a resume from an epoch the
    /// backplane has since lost, the whole new epoch when it is all still there
    /// (and fits); the latest ones otherwise.
    pub async fn for_join(
        &self,
        room: &RoomName,
        user: &str,
        resume: Option<Resume>,
        wanted: Option<u32>,
    ) -> Result<Catchup, BackplaneError> {
        let history = self.config;
        let budget = self.budget;
        if let Some(resume) = resume {
            let read = Read::After {
                seq: resume.after,
                limit: history.resume_max,
            };
            let page = self.log.read_as(room, read, user).await?;
            let head = page.position;
            let continuous = match page.entries.first() {
                Some(first) => first.seq == resume.after + 1,
                None => resume.after == head.seq,
            };
            let recovered = head.epoch == resume.epoch
                && resume.after <= head.seq
                && continuous
                && !page.more
                && estimated_bytes(&page) <= budget;
            self.metrics.resumed(recovered);
            if recovered {
                return Ok(Catchup {
                    position: head,
                    reader: page.reader.unwrap_or(NO_READER),
                    items: decode_items(room, page.entries),
                    recovered: Some(true),
                });
            }
            if head.epoch > resume.epoch {
                // The backplane lost the room's history since the client left: what
                // it missed before is gone, but none of the new epoch need be.
                let read = Read::After {
                    seq: 0,
                    limit: history.resume_max,
                };
                let page = self.log.read_as(room, read, user).await?;
                let whole = match page.entries.first() {
                    Some(first) => first.seq == 1,
                    None => page.position.seq == 0,
                };
                if whole && !page.more && estimated_bytes(&page) <= budget {
                    return Ok(Catchup {
                        position: page.position,
                        reader: page.reader.unwrap_or(NO_READER),
                        items: decode_items(room, page.entries),
                        recovered: Some(false),
                    });
                }
            }
        }
        let limit = wanted
            .map_or(history.on_join, |n| n as usize)
            .min(history.page_max);
        let read = Read::Latest { limit };
        let mut page = self.log.read_as(room, read, user).await?;
        fit(&mut page, budget);
        Ok(Catchup {
            position: page.position,
            reader: page.reader.unwrap_or(NO_READER),
            items: decode_items(room, page.entries),
            recovered: resume.map(|_| false),
        })
    }

    /// A page of history older than `before` (the newest when absent), oldest first.
    pub async fn page(
        &self,
        room: &RoomName,
        before: Option<Before>,
        limit: Option<u32>,
    ) -> Result<(Position, Vec<ChatMessage>, bool), BackplaneError> {
        let page_max = self.config.page_max;
        let limit = limit.map_or(page_max, |n| (n as usize).clamp(1, page_max));
        let read = match before {
            None => Read::Latest { limit },
            Some(Before::Seq(seq)) => Read::Before { seq, limit },
            Some(Before::Id(id)) => Read::BeforeId {
                id: id.to_string(),
                limit,
            },
        };
        let mut page = self.log.read(room, read).await?;
        fit(&mut page, self.budget);
        Ok((page.position, decode(room, page.entries), page.more))
    }
}

fn estimated_bytes(page: &Page) -> usize {
    page.entries
        .iter()
        .map(|e| e.payload.len() + MESSAGE_OVERHEAD)
        .sum()
}

/// Drops the oldest messages of a page until it fits the budget (more then remain).
fn fit(page: &mut Page, budget: usize) {
    let mut total = estimated_bytes(page);
    let mut drop = 0;
    while total > budget && drop < page.entries.len() {
        total -= page.entries[drop].payload.len() + MESSAGE_OVERHEAD;
        drop += 1;
    }
    if drop > 0 {
        page.entries.drain(..drop);
        page.more = true;
    }
}

/// A reader with no marker in a room with nothing to read (when the backplane
/// answered without one, which a read made for a user never does).
const NO_READER: Reader = Reader {
    marker: None,
    unread: 0,
};

/// Decodes stored envelopes into messages (as they are now) and changes.
pub fn decode_items(room: &RoomName, entries: Vec<chorus_backplane::Stored>) -> Vec<Item> {
    entries
        .into_iter()
        .filter_map(|entry| match Envelope::decode(&entry.payload) {
            Ok(Envelope {
                body: EnvelopeBody::Message(mut message),
                ..
            }) => {
                message.seq = entry.seq;
                if let Some(overlay) = entry.overlay {
                    apply(&mut message, overlay);
                }
                Some(Item::Message(message))
            }
            Ok(Envelope {
                body: EnvelopeBody::Change(change),
                ..
            }) => Some(Item::Change(entry.seq, change)),
            // Signals are never stored; one in history would be a bug elsewhere.
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%room, seq = entry.seq, %error, "skipping undecodable history entry");
                None
            }
        })
        .collect()
}

/// Decodes stored envelopes into messages as they are now (a backwards page
/// holds no changes).
pub fn decode(room: &RoomName, entries: Vec<chorus_backplane::Stored>) -> Vec<ChatMessage> {
    decode_items(room, entries)
        .into_iter()
        .filter_map(|item| match item {
            Item::Message(message) => Some(message),
            Item::Change(..) => None,
        })
        .collect()
}

/// Gives a message its current state: edited text, tombstone, reactions.
fn apply(message: &mut ChatMessage, overlay: Overlay) {
    if overlay.deleted.is_some() {
        message.body.clear();
        message.mentions.clear();
        message.attachments.clear();
        message.deleted = true;
        return;
    }
    if let Some(body) = overlay.body {
        message.body = body;
        message.edited = overlay.edited;
    }
    message.reactions = overlay
        .reactions
        .into_iter()
        .map(|(emoji, users)| Reaction {
            emoji,
            count: users.len(),
            users,
        })
        .collect();
}

//! Reading room history for clients: what a join (or resume) gets, and pages
//! for `history` over WebSocket and `GET /api/rooms/{room}/messages`, within
//! the node's bounds (page sizes, and half a client's outbox at once).

use chorus_archive::{Archive, ArchiveError};
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
    /// Where recent history is kept.
    pub log: &'a dyn RoomLog,
    /// Where all of it is kept, when the node has an archive.
    pub archive: Option<&'a Archive>,
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

    /// A page of history older than `before` (the newest when absent), oldest
    /// first, each message with its epoch: from Redis, and past what Redis
    /// holds from the archive (when the node has one), without gap or overlap.
    pub async fn page(
        &self,
        room: &RoomName,
        before: Option<Before>,
        limit: Option<u32>,
    ) -> Result<(Position, Vec<ChatMessage>, bool), PageError> {
        let page_max = self.config.page_max;
        let limit = limit.map_or(page_max, |n| (n as usize).clamp(1, page_max));
        let read = match before {
            None => Read::Latest { limit },
            Some(Before::Seq { seq, .. }) => Read::Before { seq, limit },
            Some(Before::Id(id)) => Read::BeforeId {
                id: id.to_string(),
                limit,
            },
        };
        let page = match self.log.read(room, read).await {
            Err(BackplaneError::UnknownMessage) => {
                let Some(Before::Id(id)) = before else {
                    return Err(BackplaneError::UnknownMessage.into());
                };
                // Not in Redis any more: perhaps in the archive.
                let position = self.position(room).await?;
                let archive = self.archive.ok_or(PageError::UnknownMessage)?;
                let at = archive
                    .locate(room.as_str(), id)
                    .await
                    .inspect_err(|_| archive.metrics().errors.with_label_values(&["page"]).inc())?;
                let at = at.ok_or(PageError::UnknownMessage)?;
                let (messages, more) = self.archived(room, at, limit, self.budget).await?;
                return Ok((position, messages, more));
            }
            read => read?,
        };
        let position = page.position;
        if let Some(Before::Seq {
            seq,
            epoch: Some(epoch),
        }) = before
            && epoch != position.epoch
        {
            // A cursor in an earlier epoch: that is all in the archive.
            let (messages, more) = self
                .archived(room, (epoch, seq), limit, self.budget)
                .await?;
            return Ok((position, messages, more));
        }
        let mut page = page;
        let exhausted = !page.more;
        fit(&mut page, self.budget);
        // Where Redis's history starts, when this page reached it.
        let oldest = page.entries.first().map(|entry| entry.seq);
        let mut messages = decode(room, page.entries);
        for message in &mut messages {
            message.epoch = Some(position.epoch);
        }
        let (Some(_), true) = (self.archive, exhausted && !page.more) else {
            return Ok((position, messages, page.more));
        };
        let start = match (oldest, before) {
            (Some(seq), _) => seq,
            (None, None) => position.seq + 1,
            (None, Some(Before::Seq { seq, .. })) => seq,
            (None, Some(Before::Id(_))) => self.first_seq(room, position).await?,
        };
        let left = self.budget.saturating_sub(estimated_messages(&messages));
        // A full page still asks the archive (for none) whether older ones remain.
        let (mut older, more) = match self
            .archived(room, (position.epoch, start), limit - messages.len(), left)
            .await
        {
            Ok(older) => older,
            // What Redis had is still a page; the rest is asked for again.
            Err(PageError::ArchiveUnavailable) if !messages.is_empty() => {
                return Ok((position, messages, true));
            }
            Err(error) => return Err(error),
        };
        older.append(&mut messages);
        Ok((position, older, more))
    }

    /// Up to `limit` archived messages before `(epoch, seq)`, within `budget` bytes.
    async fn archived(
        &self,
        room: &RoomName,
        before: (u64, u64),
        limit: usize,
        budget: usize,
    ) -> Result<(Vec<ChatMessage>, bool), PageError> {
        let archive = self.archive.ok_or(PageError::ArchiveUnavailable)?;
        let (mut messages, mut more) = archive
            .page(room.as_str(), Some(before), limit)
            .await
            .inspect_err(|_| archive.metrics().errors.with_label_values(&["page"]).inc())?;
        let mut total = estimated_messages(&messages);
        let mut drop = 0;
        while total > budget && drop < messages.len() {
            total -= estimated_message(&messages[drop]);
            drop += 1;
        }
        if drop > 0 {
            messages.drain(..drop);
            more = true;
        }
        Ok((messages, more))
    }

    /// The room's position now.
    async fn position(&self, room: &RoomName) -> Result<Position, BackplaneError> {
        let positions = self.log.positions(std::slice::from_ref(room)).await?;
        positions
            .into_iter()
            .next()
            .ok_or(BackplaneError::BadReply {
                op: "positions",
                what: "no position for the room".into(),
            })
    }

    /// The sequence number of the oldest entry Redis holds of the room
    /// (`position.seq + 1` when it holds none).
    async fn first_seq(&self, room: &RoomName, position: Position) -> Result<u64, BackplaneError> {
        let read = Read::After { seq: 0, limit: 1 };
        let page = self.log.read(room, read).await?;
        Ok(page
            .entries
            .first()
            .map_or(position.seq + 1, |entry| entry.seq))
    }
}

/// Why a page of history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Redis did not answer (or answered something unreadable).
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
    /// `before_id` names no message of the room, in Redis or the archive.
    #[error("no message with that id in the room's history")]
    UnknownMessage,
    /// The page reaches past Redis, and the archive did not answer or the
    /// node keeps none.
    #[error("the archive did not answer")]
    ArchiveUnavailable,
}

impl From<ArchiveError> for PageError {
    fn from(error: ArchiveError) -> Self {
        tracing::warn!(%error, "history could not be read from the archive");
        Self::ArchiveUnavailable
    }
}

fn estimated_message(message: &ChatMessage) -> usize {
    serde_json::to_vec(message).map_or(0, |bytes| bytes.len()) + MESSAGE_OVERHEAD
}

fn estimated_messages(messages: &[ChatMessage]) -> usize {
    messages.iter().map(estimated_message).sum()
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

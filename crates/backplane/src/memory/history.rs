//! Reading a room's history on the in-process bus, and changing its messages:
//! the same rules as `read.lua` and `change.lua`.

use std::time::Instant;

use crate::{BackplaneError, Change, ChangeRefusal, Changed, Page, Position, Read, Reader, Stored};

use super::rooms::{Entry, RoomState};

impl RoomState {
    /// A page of history (messages only backwards, every entry forwards), with
    /// overlays, and `reader`'s place when given.
    pub(super) fn page(&self, read: &Read, reader: Option<&str>) -> Result<Page, BackplaneError> {
        let limit = read.limit();
        // Messages older than index `end`, the newest `limit` of them, oldest first.
        let older_than = |end: usize| {
            let mut picked: Vec<&Entry> = self
                .log
                .range(..end)
                .rev()
                .filter(|e| !e.change)
                .take(limit + 1)
                .collect();
            let more = picked.len() > limit;
            picked.truncate(limit);
            picked.reverse();
            (picked, more)
        };
        let (entries, more) = match read {
            Read::Latest { .. } => older_than(self.log.len()),
            Read::Before { seq, .. } => older_than(self.log.partition_point(|e| e.seq < *seq)),
            Read::BeforeId { id, .. } => {
                let at = self
                    .log
                    .iter()
                    .rposition(|e| e.id == *id)
                    .ok_or(BackplaneError::UnknownMessage)?;
                older_than(at)
            }
            Read::After { seq, .. } => {
                let start = self.log.partition_point(|e| e.seq <= *seq);
                let end = (start + limit).min(self.log.len());
                (self.log.range(start..end).collect(), end < self.log.len())
            }
        };
        Ok(Page {
            position: self.position(),
            entries: entries
                .into_iter()
                .map(|e| Stored {
                    seq: e.seq,
                    payload: e.payload.clone(),
                    overlay: self.overlays.get(&e.seq).cloned(),
                })
                .collect(),
            more,
            reader: reader.map(|user| self.reader(user)),
        })
    }

    /// `user`'s marker and the messages (not changes) after it.
    fn reader(&self, user: &str) -> Reader {
        let marker = self.reads.get(user).copied();
        let read = marker.unwrap_or(0).min(self.seq);
        let changes = self.log.iter().filter(|e| e.change && e.seq > read).count() as u64;
        Reader {
            marker: marker.map(|seq| Position {
                epoch: self.epoch,
                seq,
            }),
            unread: (self.seq - read).saturating_sub(changes),
        }
    }

    /// Checks and applies `change`; stores it as the next entry when it changed
    /// something (the caller relays it).
    pub(super) fn apply(&mut self, change: &Change, now: Instant) -> Changed {
        let refused = Changed::Refused;
        let Ok(at) = self.log.binary_search_by_key(&change.target, |e| e.seq) else {
            return refused(ChangeRefusal::UnknownMessage);
        };
        let target = &self.log[at];
        if target.change {
            return refused(ChangeRefusal::NotAMessage);
        }
        if change.target_id.as_ref().is_some_and(|id| *id != target.id) {
            return refused(ChangeRefusal::UnknownMessage);
        }
        let mut overlay = self
            .overlays
            .get(&change.target)
            .cloned()
            .unwrap_or_default();
        let mine = target.sender == change.by;
        let rewrites = matches!(
            change.op,
            crate::ChangeOp::Edit(_) | crate::ChangeOp::Delete
        );
        if overlay.deleted.is_none() && rewrites && !mine && !change.moderator {
            return refused(ChangeRefusal::NotYours);
        }
        match overlay.apply(&change.by, &change.op, change.ts) {
            Err(why) => return refused(why),
            Ok(false) => return Changed::Unchanged,
            Ok(true) => {}
        }
        if overlay == crate::Overlay::default() {
            self.overlays.remove(&change.target);
        } else {
            self.overlays.insert(change.target, overlay);
        }
        self.seq += 1;
        self.touched = now;
        self.log.push_back(Entry {
            seq: self.seq,
            ts: change.ts,
            id: change.id.clone(),
            sender: change.by.clone(),
            change: true,
            payload: change.payload.clone(),
        });
        Changed::Applied(self.position())
    }
}

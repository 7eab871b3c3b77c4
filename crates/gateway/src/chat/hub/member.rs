//! A room's local members, and how each kind of event reaches them: numbered
//! messages past the member's floor, state events (receipts, statuses,
//! presence) like messages, ephemeral ones (typing) only while the member
//! keeps up. A member that is catching up after its join keeps live frames
//! aside until its history is queued.

use std::sync::Arc;

use bytes::Bytes;
use chorus_backplane::Position;
use chorus_protocol::{Encoding, ServerEvent};
use indexmap::IndexMap;

use super::ConnId;
use crate::chat::{
    frames::Frames,
    outbox::{Outbox, Pushed},
};

/// Most live frames kept aside for a member whose history is being read; past
/// it the member is dropped as a slow consumer (it reconnects and resumes).
const CATCH_UP_MAX: usize = 2048;

/// A local member of a room.
pub struct Member {
    /// Where the member's frames go.
    outbox: Arc<Outbox>,
    /// How the member wants events encoded.
    encoding: Encoding,
    /// Messages up to this sequence number reached the member with its history.
    floor: u64,
    /// Live frames kept aside while the member's history is read (`None` seq:
    /// always pass), with their publication time.
    catching_up: Option<Vec<(Option<u64>, Bytes, u64)>>,
}

impl Member {
    /// A member in catch-up mode.
    pub fn joining(outbox: Arc<Outbox>, encoding: Encoding) -> Self {
        Self {
            outbox,
            encoding,
            floor: 0,
            catching_up: Some(Vec::new()),
        }
    }

    /// Queues a frame (published at `published_us`), or keeps it aside while catching up.
    fn push(&mut self, seq: Option<u64>, frame: Bytes, published_us: u64) -> Pushed {
        match &mut self.catching_up {
            None => self.outbox.push_live(frame, published_us),
            Some(kept) if kept.len() < CATCH_UP_MAX => {
                kept.push((seq, frame, published_us));
                Pushed::Queued
            }
            Some(_) => {
                self.outbox.overflow();
                Pushed::Dropped
            }
        }
    }

    /// Ends catch-up: queues `frames` (the join's reply and history, read at
    /// `position`), then the kept live frames newer than the history.
    fn finish_join(&mut self, position: Position, frames: Vec<Bytes>) {
        for frame in frames {
            self.outbox.push(frame);
        }
        let mut floor = position.seq;
        for (seq, frame, published_us) in self.catching_up.take().unwrap_or_default() {
            match seq {
                Some(seq) if seq <= floor => {}
                _ => {
                    self.outbox.push_live(frame, published_us);
                    floor = floor.max(seq.unwrap_or(0));
                }
            }
        }
        self.floor = floor;
    }
}

/// The local members of one room, by connection.
#[derive(Default)]
pub struct Members(IndexMap<ConnId, Member>);

/// What a fan-out reached.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// Members the frame was meant for.
    pub recipients: u64,
    /// Of those, members whose queue had overflowed (they are being closed).
    pub dropped: u64,
}

impl Members {
    pub(super) fn insert(&mut self, conn: ConnId, member: Member) {
        self.0.insert(conn, member);
    }

    pub(super) fn remove(&mut self, conn: ConnId) {
        self.0.swap_remove(&conn);
    }

    pub(super) fn contains(&self, conn: ConnId) -> bool {
        self.0.contains_key(&conn)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// See [`Member::finish_join`]; nothing when the member left meanwhile.
    pub(super) fn finish_join(&mut self, conn: ConnId, position: Position, frames: Vec<Bytes>) {
        if let Some(member) = self.0.get_mut(&conn) {
            member.finish_join(position, frames);
        }
    }

    /// Queues numbered entry `seq` (published at `published_us`) for every
    /// member that does not have it yet.
    pub(super) fn fan_out(
        &mut self,
        seq: u64,
        event: &ServerEvent<'_>,
        published_us: u64,
    ) -> Reached {
        let mut frames = Frames::new(event);
        let mut reached = Reached::default();
        for member in self.0.values_mut() {
            if seq <= member.floor {
                continue;
            }
            reached.recipients += 1;
            let frame = frames.get(member.encoding);
            if member.push(Some(seq), frame, published_us) == Pushed::Dropped {
                reached.dropped += 1;
            }
        }
        reached
    }

    /// Tells every member that the room's numbering broke (`event` is the
    /// `reset`): whatever comes next is new to all of them.
    pub(super) fn reset(&mut self, event: &ServerEvent<'_>) {
        for member in self.0.values_mut() {
            member.floor = 0;
        }
        self.push_state(event);
    }

    /// Queues a state event (a receipt, a status, presence) for every member,
    /// like a message: kept aside for a member catching up, never dropped first.
    pub fn push_state(&mut self, event: &ServerEvent<'_>) {
        let mut frames = Frames::new(event);
        for member in self.0.values_mut() {
            let frame = frames.get(member.encoding);
            member.push(None, frame, 0);
        }
    }

    /// Offers an ephemeral event (typing) to the members that keep up: not to
    /// a member catching up, and dropped for one whose queue is filling
    /// ([`Outbox::push_signal`]). Returns how many did not get it.
    pub fn push_ephemeral(&self, event: &ServerEvent<'_>) -> u64 {
        let mut frames = Frames::new(event);
        let mut dropped = 0;
        for member in self.0.values() {
            if member.catching_up.is_some() {
                dropped += 1;
                continue;
            }
            if member.outbox.push_signal(frames.get(member.encoding)) == Pushed::Dropped {
                dropped += 1;
            }
        }
        dropped
    }
}

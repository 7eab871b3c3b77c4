//! What the chaos clients saw, and the check that nothing acknowledged was
//! lost, repeated or reordered.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

/// What one member saw in one room.
#[derive(Debug, Default, Clone)]
pub struct RoomView {
    /// Epoch followed.
    pub(super) epoch: u64,
    /// Last sequence number seen in it.
    pub(super) last: u64,
    /// Whether the room was joined at least once.
    pub(super) joined_once: bool,
    /// After an announced break: the next message starts the sequence again
    /// (the latest messages, or a lost epoch's successor from its start).
    pub(super) restarted: bool,
    /// Bodies in arrival order, with epoch and sequence number.
    pub(super) messages: Vec<(u64, u64, String)>,
    /// Continuity breaks the server announced (reset events, unrecovered resumes).
    pub(super) breaks: u64,
    /// Sequence numbers that skipped ahead without an announced break.
    pub(super) gaps: u64,
    /// Sequence numbers that went backwards without an announced break.
    pub(super) reorders: u64,
}

/// One member's views, by room.
pub(super) type Views = Arc<Mutex<HashMap<String, RoomView>>>;

/// Acknowledged messages and everything members saw.
#[derive(Default)]
pub struct Ledger {
    /// Room -> acknowledged bodies, with the phase they were acknowledged in.
    pub(super) acked: Mutex<HashMap<String, Vec<(String, u32)>>>,
    /// Sends attempted (first attempts).
    pub sent: AtomicU64,
    /// Sends repeated after a failure or a lost connection.
    pub resent: AtomicU64,
    /// Retries the server recognised as duplicates.
    pub duplicate_acks: AtomicU64,
    /// The current phase: acknowledgements are tagged with it (see the no-persistence test).
    pub phase: AtomicU32,
    /// Each member's views, by room.
    pub(super) views: Mutex<Vec<Views>>,
    /// Reconnections of members.
    pub member_reconnects: AtomicU64,
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    /// Messages first sent.
    pub sent: u64,
    /// Messages acknowledged.
    pub acknowledged: u64,
    /// Messages delivered to members (all rooms, all members).
    pub delivered: u64,
    /// Deliveries of a message a member already had.
    pub duplicates: u64,
    /// Unannounced skips in a room's sequence.
    pub gaps: u64,
    /// Unannounced backward steps.
    pub reorders: u64,
    /// Acknowledged messages (of the phases checked) a member lacks.
    pub missing: u64,
    /// Announced continuity breaks.
    pub breaks: u64,
    /// Member-rooms that saw no break.
    pub rooms_without_break: u64,
    /// Member reconnections.
    pub reconnects: u64,
}

impl Ledger {
    pub(super) fn ack(&self, room: &str, body: String) {
        let phase = self.phase.load(Ordering::SeqCst);
        self.acked
            .lock()
            .unwrap()
            .entry(room.to_owned())
            .or_default()
            .push((body, phase));
    }

    /// Acknowledged messages so far.
    pub fn acknowledged(&self) -> u64 {
        self.acked
            .lock()
            .unwrap()
            .values()
            .map(|v| v.len() as u64)
            .sum()
    }

    /// Every acknowledged message so far, as (room, body).
    pub fn acknowledged_messages(&self) -> Vec<(String, String)> {
        let acked = self.acked.lock().unwrap();
        acked
            .iter()
            .flat_map(|(room, bodies)| bodies.iter().map(|(body, _)| (room.clone(), body.clone())))
            .collect()
    }

    /// Whether every member has every acknowledged message (of phase >= `from_phase`) of its rooms.
    pub fn complete(&self, from_phase: u32) -> bool {
        self.report(from_phase).missing == 0
    }

    /// Compares what members saw with what was acknowledged in phase `from_phase` or later.
    pub fn report(&self, from_phase: u32) -> Report {
        let acked = self.acked.lock().unwrap();
        let mut report = Report {
            sent: self.sent.load(Ordering::SeqCst),
            acknowledged: acked.values().map(|v| v.len() as u64).sum(),
            reconnects: self.member_reconnects.load(Ordering::SeqCst),
            ..Report::default()
        };
        for member in self.views.lock().unwrap().iter() {
            for (room, view) in member.lock().unwrap().iter() {
                report.delivered += view.messages.len() as u64;
                report.gaps += view.gaps;
                report.reorders += view.reorders;
                report.breaks += view.breaks;
                if view.breaks == 0 {
                    report.rooms_without_break += 1;
                }
                // A send retried across a lost epoch may rightly arrive once in each.
                let mut seen = HashSet::new();
                for (epoch, _, body) in &view.messages {
                    if !seen.insert((*epoch, body.as_str())) {
                        report.duplicates += 1;
                    }
                }
                let bodies: HashSet<&str> = seen.iter().map(|(_, body)| *body).collect();
                for (body, phase) in acked.get(room).map(Vec::as_slice).unwrap_or_default() {
                    if *phase >= from_phase && !bodies.contains(body.as_str()) {
                        report.missing += 1;
                    }
                }
            }
        }
        report
    }
}

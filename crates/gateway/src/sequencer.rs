//! One room's order on one node: deliver each sequence number once, in order,
//! and notice when one is missing.
//!
//! The backplane relays messages at most once; history has them all. The
//! sequencer passes on a relayed message only when it is the next one; a later
//! one waits (bounded) while the missing ones are fetched from history; an
//! earlier one is a duplicate. A newer epoch means the backplane lost the
//! room's history: the sequencer starts over and says so. It does no I/O: it
//! tells its caller what to do through [`Step`]s.

use std::collections::BTreeMap;

use bytes::Bytes;
use chorus_backplane::{Page, Position};

/// Most out-of-order messages held per room while a gap is repaired; later ones
/// are fetched from history too.
const PENDING_MAX: usize = 4096;

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Deliver this message to the room's members (in the order of the steps).
    Deliver {
        /// Its sequence number.
        seq: u64,
        /// Its envelope.
        payload: Bytes,
        /// Whether it came from history rather than the relay.
        repaired: bool,
    },
    /// Tell the members that messages up to `seq` of `epoch` may be missing.
    Reset {
        /// The epoch followed from now on.
        epoch: u64,
        /// The last sequence number treated as delivered.
        seq: u64,
        /// Why (`epoch_changed`, `history_trimmed`, `history_rewound`).
        reason: &'static str,
    },
    /// Fetch messages `(after, upto]` of `epoch` and hand them to [`Sequencer::repaired`] with `token`.
    Repair {
        /// Identifies the request; answers to older requests are ignored.
        token: u64,
        /// Epoch the messages belong to.
        epoch: u64,
        /// Last sequence number delivered.
        after: u64,
        /// Highest sequence number known to exist.
        upto: u64,
    },
    /// A relayed message was dropped as a duplicate or stale.
    Dropped,
}

/// The ordering state of one room with local members.
#[derive(Debug, Default)]
pub struct Sequencer {
    /// Epoch followed; `None` until the first join's history read sets the start.
    epoch: Option<u64>,
    /// Last sequence number delivered in that epoch.
    delivered: u64,
    /// Highest sequence number known to exist in that epoch.
    highest: u64,
    /// Messages received ahead of a gap (or before the start was known), by sequence number.
    pending: BTreeMap<u64, Bytes>,
    /// Epoch of the pending messages while the start is unknown.
    pending_epoch: u64,
    /// The repair request in flight, if any.
    in_flight: Option<u64>,
    /// Source of repair tokens.
    next_token: u64,
    /// Head seen by the previous position check while we were behind it.
    suspect: Option<u64>,
}

impl Sequencer {
    /// The epoch and last delivered sequence number, once known.
    pub fn position(&self) -> Option<Position> {
        self.epoch.map(|epoch| Position {
            epoch,
            seq: self.delivered,
        })
    }

    /// Handles a relayed message.
    pub fn accept(&mut self, epoch: u64, seq: u64, payload: Bytes, out: &mut impl FnMut(Step)) {
        let Some(current) = self.epoch else {
            // Start unknown: hold it until a join's read says where the room stands.
            if epoch > self.pending_epoch {
                self.pending.clear();
                self.pending_epoch = epoch;
            }
            if epoch == self.pending_epoch && self.pending.len() < PENDING_MAX {
                self.pending.insert(seq, payload);
            }
            return;
        };
        if epoch < current {
            return out(Step::Dropped);
        }
        if epoch > current {
            self.restart(epoch, "epoch_changed", out);
        }
        if seq <= self.delivered {
            return out(Step::Dropped);
        }
        self.highest = self.highest.max(seq);
        if seq == self.delivered + 1 {
            self.delivered = seq;
            out(Step::Deliver {
                seq,
                payload,
                repaired: false,
            });
        } else if self.pending.len() < PENDING_MAX {
            self.pending.insert(seq, payload);
        }
        self.drain(out);
    }

    /// Sets the start from a join's history read (the read's position), or
    /// restarts if the read shows a newer epoch. Returns `false` when the read is
    /// older than what this sequencer already follows: read again.
    pub fn start(&mut self, position: Position, out: &mut impl FnMut(Step)) -> bool {
        match self.epoch {
            Some(current) if current > position.epoch => false,
            Some(current) if current < position.epoch => {
                self.restart(position.epoch, "epoch_changed", out);
                self.highest = position.seq;
                self.drain(out);
                true
            }
            Some(_) => true,
            None => {
                self.epoch = Some(position.epoch);
                self.delivered = position.seq;
                self.highest = position.seq;
                let held = std::mem::take(&mut self.pending);
                let held_epoch = self.pending_epoch;
                for (seq, payload) in held {
                    self.accept(held_epoch, seq, payload, out);
                }
                self.drain(out);
                true
            }
        }
    }

    /// Handles the answer to a [`Step::Repair`]; `Err` leaves the gap to the next position check.
    pub fn repaired(&mut self, token: u64, page: Option<Page>, out: &mut impl FnMut(Step)) {
        if self.in_flight != Some(token) {
            return;
        }
        self.in_flight = None;
        let (Some(page), Some(current)) = (page, self.epoch) else {
            return;
        };
        if page.position.epoch > current {
            self.restart(page.position.epoch, "epoch_changed", out);
            self.highest = page.position.seq;
            return self.drain(out);
        }
        if page.position.epoch < current {
            return;
        }
        self.highest = self.highest.max(page.position.seq);
        // History starts past what we need: the rest was trimmed and cannot be delivered.
        let first_available = page
            .entries
            .first()
            .map(|e| e.seq)
            .or_else(|| self.pending.keys().next().copied())
            .unwrap_or(self.highest + 1);
        if first_available > self.delivered + 1 && self.highest > self.delivered {
            self.delivered = first_available - 1;
            out(Step::Reset {
                epoch: current,
                seq: self.delivered,
                reason: "history_trimmed",
            });
        }
        for entry in page.entries {
            if entry.seq == self.delivered + 1 {
                self.delivered = entry.seq;
                self.pending.remove(&entry.seq);
                out(Step::Deliver {
                    seq: entry.seq,
                    payload: entry.payload,
                    repaired: true,
                });
            }
        }
        self.drain(out);
    }

    /// Compares with the room's position read from the backplane; `delivered_before`
    /// is [`position`](Self::position) taken before that read.
    pub fn check(
        &mut self,
        position: Position,
        delivered_before: Position,
        out: &mut impl FnMut(Step),
    ) {
        let Some(current) = self.epoch else {
            return;
        };
        if position.epoch > current {
            self.restart(position.epoch, "epoch_changed", out);
            self.highest = position.seq;
            return self.drain(out);
        }
        if position.epoch < current {
            return;
        }
        // (Only within the epoch followed before the read: one that began during
        // the read starts again from 1, which is no going back.)
        if delivered_before.epoch == current && position.seq < delivered_before.seq {
            // The backplane went back in time (it lost acknowledged writes): numbers repeat.
            self.delivered = position.seq;
            self.highest = position.seq;
            self.pending.clear();
            self.in_flight = None;
            return out(Step::Reset {
                epoch: current,
                seq: position.seq,
                reason: "history_rewound",
            });
        }
        if position.seq <= self.delivered {
            self.suspect = None;
            return;
        }
        // Behind the head: a message may still be on its way. Behind the head seen
        // last time too: the relay lost it, fetch it.
        match self.suspect {
            Some(seen) if self.delivered < seen => {
                self.suspect = None;
                self.highest = self.highest.max(position.seq);
                self.request_repair(out);
            }
            _ => self.suspect = Some(position.seq),
        }
    }

    /// Follows a new epoch from its beginning.
    fn restart(&mut self, epoch: u64, reason: &'static str, out: &mut impl FnMut(Step)) {
        self.epoch = Some(epoch);
        self.delivered = 0;
        self.highest = 0;
        self.pending.clear();
        self.in_flight = None;
        self.suspect = None;
        out(Step::Reset {
            epoch,
            seq: 0,
            reason,
        });
    }

    /// Delivers held messages that are next in line, then asks for what is still missing.
    fn drain(&mut self, out: &mut impl FnMut(Step)) {
        while let Some(entry) = self.pending.first_entry() {
            let seq = *entry.key();
            if seq <= self.delivered {
                entry.remove();
            } else if seq == self.delivered + 1 {
                self.delivered = seq;
                out(Step::Deliver {
                    seq,
                    payload: entry.remove(),
                    repaired: false,
                });
            } else {
                break;
            }
        }
        self.request_repair(out);
    }

    fn request_repair(&mut self, out: &mut impl FnMut(Step)) {
        if self.in_flight.is_some() || self.highest <= self.delivered {
            return;
        }
        let Some(epoch) = self.epoch else {
            return;
        };
        self.next_token += 1;
        self.in_flight = Some(self.next_token);
        out(Step::Repair {
            token: self.next_token,
            epoch,
            after: self.delivered,
            upto: self.highest,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_backplane::Stored;
    use proptest::prelude::*;

    fn at(epoch: u64, seq: u64) -> Position {
        Position { epoch, seq }
    }

    fn payload(seq: u64) -> Bytes {
        Bytes::from(seq.to_string())
    }

    /// Runs steps, recording deliveries and resets, answering repairs from a full history.
    struct Harness {
        sequencer: Sequencer,
        delivered: Vec<u64>,
        resets: Vec<(u64, &'static str)>,
        repairs: Vec<(u64, u64, u64)>,
        head: Position,
    }

    impl Harness {
        fn started(epoch: u64, at: u64) -> Self {
            let mut h = Self {
                sequencer: Sequencer::default(),
                delivered: vec![],
                resets: vec![],
                repairs: vec![],
                head: Position { epoch, seq: at },
            };
            let mut steps = vec![];
            assert!(h.sequencer.start(h.head, &mut |s| steps.push(s)));
            h.apply(steps);
            h
        }

        fn apply(&mut self, steps: Vec<Step>) {
            for step in steps {
                match step {
                    Step::Deliver { seq, .. } => self.delivered.push(seq),
                    Step::Reset { seq, reason, .. } => self.resets.push((seq, reason)),
                    Step::Repair {
                        token, after, upto, ..
                    } => self.repairs.push((token, after, upto)),
                    Step::Dropped => {}
                }
            }
        }

        fn relay(&mut self, epoch: u64, seq: u64) {
            let mut steps = vec![];
            self.sequencer
                .accept(epoch, seq, payload(seq), &mut |s| steps.push(s));
            self.apply(steps);
        }

        /// Answers the oldest repair request from a history holding `first..=head`.
        fn answer(&mut self, first: u64) {
            let (token, after, upto) = self.repairs.remove(0);
            let entries = (after + 1..=upto)
                .filter(|s| *s >= first)
                .map(|seq| Stored {
                    seq,
                    payload: payload(seq),
                    overlay: None,
                })
                .collect();
            let page = Page {
                position: self.head,
                entries,
                more: false,
                reader: None,
            };
            let mut steps = vec![];
            self.sequencer
                .repaired(token, Some(page), &mut |s| steps.push(s));
            self.apply(steps);
        }
    }

    #[test]
    fn in_order_relays_pass_and_duplicates_drop() {
        let mut h = Harness::started(1, 10);
        for seq in [11, 12, 12, 9, 13] {
            h.relay(1, seq);
        }
        assert_eq!(h.delivered, [11, 12, 13]);
        assert!(h.repairs.is_empty());
    }

    #[test]
    fn a_gap_is_repaired_from_history_in_order() {
        let mut h = Harness::started(1, 0);
        h.relay(1, 1);
        h.relay(1, 4);
        h.relay(1, 5);
        assert_eq!(h.delivered, [1]);
        assert_eq!(h.repairs, [(1, 1, 4)]);
        h.head.seq = 5;
        h.answer(1);
        assert_eq!(h.delivered, [1, 2, 3, 4, 5]);
        assert!(h.resets.is_empty());
    }

    #[test]
    fn a_trimmed_gap_is_reported_not_skipped_silently() {
        let mut h = Harness::started(1, 0);
        h.relay(1, 1);
        h.relay(1, 9);
        h.head.seq = 9;
        h.answer(5);
        assert_eq!(h.resets, [(4, "history_trimmed")]);
        assert_eq!(h.delivered, [1, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn a_newer_epoch_restarts_and_says_so() {
        let mut h = Harness::started(1, 7);
        h.relay(2, 2);
        assert_eq!(h.resets, [(0, "epoch_changed")]);
        assert_eq!(h.repairs.len(), 1);
        h.head = Position { epoch: 2, seq: 2 };
        h.answer(1);
        assert_eq!(h.delivered, [1, 2]);
        h.relay(1, 8);
        assert_eq!(h.delivered, [1, 2], "an older epoch's message is stale");
    }

    #[test]
    fn messages_before_the_start_are_held_then_filtered() {
        let mut s = Sequencer::default();
        let mut steps = vec![];
        for seq in [5, 6, 7] {
            s.accept(3, seq, payload(seq), &mut |st| steps.push(st));
        }
        assert!(steps.is_empty());
        assert!(s.start(Position { epoch: 3, seq: 5 }, &mut |st| steps.push(st)));
        let delivered: Vec<u64> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Deliver { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(delivered, [6, 7]);
        assert!(!s.start(Position { epoch: 2, seq: 9 }, &mut |_| {}));
    }

    #[test]
    fn the_position_check_catches_a_lost_tail_on_the_second_look() {
        let mut h = Harness::started(1, 3);
        let mut steps = vec![];
        let head = Position { epoch: 1, seq: 4 };
        h.sequencer.check(head, at(1, 3), &mut |s| steps.push(s));
        assert!(steps.is_empty(), "the message may still be on its way");
        h.sequencer.check(head, at(1, 3), &mut |s| steps.push(s));
        h.apply(steps);
        assert_eq!(h.repairs, [(1, 3, 4)]);
        h.head = head;
        h.answer(1);
        assert_eq!(h.delivered, [4]);
    }

    #[test]
    fn a_rewound_backplane_is_reported() {
        let mut h = Harness::started(1, 10);
        let mut steps = vec![];
        h.sequencer
            .check(at(1, 6), at(1, 10), &mut |s| steps.push(s));
        h.apply(steps);
        assert_eq!(h.resets, [(6, "history_rewound")]);
        h.relay(1, 7);
        assert_eq!(h.delivered, [7]);
    }

    #[test]
    fn a_new_epoch_begun_during_the_check_is_not_a_rewind() {
        let mut h = Harness::started(1, 10);
        let before = h.sequencer.position().unwrap();
        for seq in 1..=3 {
            h.relay(2, seq);
        }
        let mut steps = vec![];
        h.sequencer.check(at(2, 3), before, &mut |s| steps.push(s));
        h.apply(steps);
        assert_eq!(h.resets, [(0, "epoch_changed")]);
        h.relay(2, 4);
        assert_eq!(h.delivered, [1, 2, 3, 4]);
    }

    proptest! {
        /// Whatever the relay loses, repeats or reorders, repairs deliver every
        /// message exactly once and in order.
        #[test]
        fn delivers_everything_once_in_order(
            relayed in proptest::collection::vec((1u64..60, any::<bool>()), 0..120),
            total in 1u64..60,
        ) {
            let mut h = Harness::started(1, 0);
            h.head.seq = total;
            for (seq, lost) in relayed {
                if !lost && seq <= total {
                    h.relay(1, seq);
                }
                if !h.repairs.is_empty() && seq % 3 == 0 {
                    h.answer(1);
                }
            }
            // The tail check finds whatever is still missing.
            for _ in 0..4 {
                let mut steps = vec![];
                let before = h.sequencer.position().unwrap();
                h.sequencer.check(h.head, before, &mut |s| steps.push(s));
                h.apply(steps);
                while !h.repairs.is_empty() {
                    h.answer(1);
                }
            }
            prop_assert_eq!(h.delivered, (1..=total).collect::<Vec<_>>());
            prop_assert!(h.resets.is_empty());
        }
    }
}

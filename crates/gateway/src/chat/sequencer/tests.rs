//! The sequencer's rules, by example and by property.

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

/// Held messages the first start's read already has are still delivered:
/// members joining alongside that read earlier (the soak's two lost messages:
/// a node restarted, its clients resumed at once, one's read came before a
/// message was stored and another's after) have them only from here. Every
/// member is catching up then and keeps only what is past its own read.
#[test]
fn messages_before_the_start_are_held_then_all_released() {
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
    assert_eq!(delivered, [5, 6, 7]);
    assert_eq!(s.position(), Some(Position { epoch: 3, seq: 7 }));
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

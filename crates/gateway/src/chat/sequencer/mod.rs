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
                    if held_epoch == position.epoch && seq <= position.seq {
                        // In this read's history, but not in that of a member
                        // joining alongside whose read came before the message
                        // was stored: it has the message only from here. No
                        // member is live before the first start, and each one
                        // catching up keeps only what is past its own read.
                        out(Step::Deliver {
                            seq,
                            payload,
                            repaired: false,
                        });
                    } else {
                        self.accept(held_epoch, seq, payload, out);
                    }
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
mod tests;

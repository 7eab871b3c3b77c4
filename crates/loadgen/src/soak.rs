//! What a soak client does besides sending on its schedule, the way people
//! chat: every `chatter` one action in turn (typing, a read marker, a
//! presence query, an edit of its own last message, joining or leaving a side
//! room, a status change), and, every `churn`, a reconnect of its own.
//!
//! Its sends carry a `client_msg_id` and count only once acknowledged (`sent`,
//! matched by `ref`); whatever was not acknowledged when a connection ended is
//! sent again, with the same id, after the client is back, so the run's
//! "expected" is exactly what the server accepted, and a message stored twice
//! or lost shows as a duplicate or as missing.

use std::collections::BTreeMap;

use crate::wire::number_after;

/// Side rooms the clients join and leave (shared, so joins meet members).
const SIDE_ROOMS: usize = 20;

/// One soak client's state besides its connection.
#[derive(Debug)]
pub struct Soak {
    /// Its home room.
    room: String,
    /// The side room it joins and leaves.
    side: String,
    /// Whether it is in the side room now.
    in_side: bool,
    /// Whether its status is `away` now.
    away: bool,
    /// The action due next, in turn.
    next: usize,
    /// The newest sequence number delivered in its room (for read markers).
    last_delivered: u64,
    /// Its own newest acknowledged message (for edits).
    last_own: Option<u64>,
    /// Sends not acknowledged yet, by number: their frames.
    pending: BTreeMap<u64, String>,
}

/// What a reply to one of the client's sends said.
#[derive(Debug, PartialEq, Eq)]
pub enum Ack {
    /// Send `n` was stored (or had been: `duplicate`).
    Sent { n: u64 },
    /// Send `n` was refused: it is not expected anywhere.
    Refused { n: u64 },
    /// Not a reply to a send.
    Other,
}

impl Soak {
    /// Client `index` of `room`.
    pub fn new(index: usize, room: String) -> Self {
        Self {
            room,
            side: format!("side-{}", index % SIDE_ROOMS),
            in_side: false,
            away: false,
            next: index,
            last_delivered: 0,
            last_own: None,
            pending: BTreeMap::new(),
        }
    }

    /// The frame of send `n` with `body`, remembered until acknowledged.
    pub fn send(&mut self, n: u64, body: &str) -> String {
        let frame = format!(
            r#"{{"type":"send","room":"{}","body":"{body}","client_msg_id":"c{n}","ref":"s{n}"}}"#,
            self.room
        );
        self.pending.insert(n, frame.clone());
        frame
    }

    /// Every send not acknowledged yet, in order: to send again after a reconnect.
    pub fn unacknowledged(&self) -> Vec<String> {
        self.pending.values().cloned().collect()
    }

    /// Reads a text frame for a reply to one of the client's sends.
    pub fn reply(&mut self, text: &str) -> Ack {
        let Some(n) = number_after(text, r#""ref":"s"#) else {
            return Ack::Other;
        };
        if self.pending.remove(&n).is_none() {
            // A second answer to a send already answered (sent again before
            // the first answer came back): it counts once.
            return Ack::Other;
        }
        if text.contains(r#""type":"sent""#) {
            self.last_own = number_after(text, r#""seq":"#).or(self.last_own);
            Ack::Sent { n }
        } else {
            Ack::Refused { n }
        }
    }

    /// A message with `seq` arrived in the client's room.
    pub fn delivered(&mut self, seq: u64) {
        self.last_delivered = self.last_delivered.max(seq);
    }

    /// The frames of the next action besides sending.
    pub fn action(&mut self) -> Vec<String> {
        let room = &self.room;
        self.next += 1;
        match self.next % 6 {
            0 => vec![format!(r#"{{"type":"typing","room":"{room}"}}"#)],
            1 if self.last_delivered > 0 => vec![format!(
                r#"{{"type":"read","room":"{room}","seq":{}}}"#,
                self.last_delivered
            )],
            2 => vec![format!(r#"{{"type":"presence","room":"{room}"}}"#)],
            3 => match self.last_own {
                Some(seq) => vec![format!(
                    r#"{{"type":"edit","room":"{room}","seq":{seq},"body":"edited by its sender"}}"#
                )],
                None => Vec::new(),
            },
            4 => {
                self.in_side = !self.in_side;
                let side = &self.side;
                vec![if self.in_side {
                    format!(r#"{{"type":"join","room":"{side}","history":0}}"#)
                } else {
                    format!(r#"{{"type":"leave","room":"{side}"}}"#)
                }]
            }
            5 => {
                self.away = !self.away;
                let status = if self.away { "away" } else { "online" };
                vec![format!(r#"{{"type":"status","status":"{status}"}}"#)]
            }
            _ => Vec::new(),
        }
    }

    /// After a reconnect the side room is left (the new connection is not in it).
    pub fn reconnected(&mut self) {
        self.in_side = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_counts_once_when_acknowledged_and_is_resent_until_then() {
        let mut soak = Soak::new(3, "soak-0".into());
        let frame = soak.send(7, "hello");
        assert!(
            frame.contains(r#""client_msg_id":"c7","ref":"s7""#),
            "{frame}"
        );
        soak.send(8, "again");
        assert_eq!(soak.unacknowledged().len(), 2);
        let sent = r#"{"type":"sent","room":"soak-0","id":"x","ts":1,"seq":41,"duplicate":false,"ref":"s7"}"#;
        assert_eq!(soak.reply(sent), Ack::Sent { n: 7 });
        assert_eq!(soak.reply(sent), Ack::Other, "a second answer counts once");
        let refused = r#"{"type":"error","code":"rate_limited","ref":"s8"}"#;
        assert_eq!(soak.reply(refused), Ack::Refused { n: 8 });
        assert!(soak.unacknowledged().is_empty());
        assert_eq!(soak.reply(r#"{"type":"marked","seq":4}"#), Ack::Other);
        // Its own acknowledged message is what it edits.
        let edit = (0..6)
            .flat_map(|_| soak.action())
            .find(|f| f.contains("edit"));
        assert!(edit.unwrap().contains(r#""seq":41"#));
    }
}

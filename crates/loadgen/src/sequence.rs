//! Following a room's sequence numbers on one connection of a client: each
//! number once, repeats and jumps counted, the first few jumps described with
//! the connection they happened on.

use std::sync::atomic::Ordering;

use crate::{
    client::{Recorder, Spec},
    stats::{GAPS_KEPT, Gap},
    wire::Position,
};

/// Which connection of a client a session is (to describe a gap).
#[derive(Clone, Copy)]
pub struct Link {
    /// The URL it is connected to.
    pub url_index: usize,
    /// Connections the client had before this one.
    pub reconnects: u64,
}

/// Follows the room sequence numbers on one connection: counts repeats and
/// jumps, and describes the first few jumps.
pub struct Stream<'a> {
    /// Where counts and jumps go.
    pub recorder: &'a Recorder,
    /// The client (its index and URLs).
    pub spec: &'a Spec,
    /// Which of its connections this is.
    pub link: Link,
    /// Its room.
    pub room: &'a str,
    /// Sequence numbers seen on this connection so far.
    pub into_connection: u64,
}

impl Stream<'_> {
    /// Moves `at` to `seq` if it is new (`false`, counted, if it was seen).
    pub fn next(&mut self, at: &mut Position, seq: u64) -> bool {
        if seq <= at.seq {
            self.recorder.duplicates.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if seq > at.seq + 1 {
            self.recorder
                .skipped
                .fetch_add(seq - at.seq - 1, Ordering::Relaxed);
            let mut gaps = self.recorder.gaps.lock().unwrap();
            if gaps.len() < GAPS_KEPT {
                gaps.push(Gap {
                    client: self.spec.index,
                    room: self.room.to_owned(),
                    from: at.seq,
                    to: seq,
                    into_connection: self.into_connection,
                    reconnects: self.link.reconnects,
                    url: self.spec.urls[self.link.url_index].clone(),
                });
            }
        }
        self.into_connection += 1;
        at.seq = seq;
        true
    }
}

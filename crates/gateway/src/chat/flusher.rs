//! The node's writer of live frames: the fan-out queues a message's frame in
//! every member's outbox and marks the outbox here; a flusher's task then
//! writes each marked outbox's frames with one non-blocking vectored write,
//! straight from the shared frames, instead of waking every member's task.
//! The node runs one flusher per core, each with its share of the connections.
//!
//! The busier the node, the more each write carries: while the task writes a
//! round, the fan-out keeps queueing, and the next round takes everything
//! queued meanwhile (like the floor peer's loop turn). An outbox whose socket
//! is full is handed to its connection's task, which waits for the client
//! under the write timeout; nothing here ever waits for a client.

use std::sync::Arc;

use chorus_protocol::unix_micros;
use parking_lot::Mutex;
use prometheus::{Histogram, IntCounter, local::LocalHistogram};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Most outboxes a round keeps room for between rounds; a larger round's
/// list is released after it (a burst in a big room must not stay allocated).
const ROUND_KEEP: usize = 4096;

/// Outboxes written between two yields to the other tasks of the worker.
const YIELD_EVERY: usize = 64;

/// What a flusher writes: a connection's outbox
/// ([`crate::chat::outbox::Outbox`]).
pub trait Flush: Send + Sync {
    /// Writes what is queued without waiting, counting it in `tally`.
    fn flush(&self, tally: &mut Tally);
}

/// Outboxes with live frames to write, and the task that writes them.
#[derive(Default)]
pub struct Flusher {
    /// Outboxes marked since the last round (each at most once).
    marked: Mutex<Vec<Arc<dyn Flush>>>,
    /// Wakes the task when the first outbox of a round is marked.
    wake: Notify,
}

impl Flusher {
    /// Starts the writing task, which runs until `stopped`, counting what
    /// it writes in `bytes_sent` and `latency` after each round.
    pub fn start(
        (bytes_sent, latency): (IntCounter, Histogram),
        stopped: CancellationToken,
    ) -> Arc<Self> {
        let flusher = Arc::new(Self::default());
        let writer = flusher.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = writer.run(bytes_sent, &latency) => {}
                () = stopped.cancelled() => {}
            }
        });
        flusher
    }

    /// Marks `outbox` for the next round (its caller marks it once until flushed).
    pub fn mark(&self, outbox: Arc<dyn Flush>) {
        let mut marked = self.marked.lock();
        marked.push(outbox);
        let first = marked.len() == 1;
        drop(marked);
        if first {
            self.wake.notify_one();
        }
    }

    async fn run(&self, bytes_sent: IntCounter, latency: &Histogram) {
        let mut round = Vec::new();
        let mut tally = Tally {
            bytes: 0,
            latency: latency.local(),
            now_us: 0,
        };
        loop {
            self.wake.notified().await;
            std::mem::swap(&mut *self.marked.lock(), &mut round);
            for (done, outbox) in round.drain(..).enumerate() {
                if done % YIELD_EVERY == YIELD_EVERY - 1 {
                    // Let the reader queue what arrived meanwhile (it goes out
                    // in this round to the outboxes not written yet).
                    tokio::task::yield_now().await;
                }
                // Read the clock at most once per outbox, and only for live messages.
                tally.now_us = 0;
                outbox.flush(&mut tally);
            }
            bytes_sent.inc_by(std::mem::take(&mut tally.bytes));
            tally.latency.flush();
            if round.capacity() > ROUND_KEEP {
                round = Vec::new();
            }
        }
    }
}

/// What one round wrote, counted locally and added to the node's metrics
/// once per round (no shared counter touched per delivery).
pub struct Tally {
    /// Bytes written.
    pub bytes: u64,
    /// Delivery latency of the live messages written.
    latency: LocalHistogram,
    /// The time of the current outbox's write (µs since the Unix epoch), once read.
    now_us: u64,
}

impl Tally {
    /// Counts a live message published at `published_us` as delivered now.
    pub fn delivered(&mut self, published_us: u64) {
        if self.now_us == 0 {
            self.now_us = unix_micros();
        }
        let micros = self.now_us.saturating_sub(published_us);
        self.latency.observe(micros as f64 / 1e6);
    }
}

//! A connection's bounded outbound queue.
//!
//! Producers (the fan-out, the connection's own replies) push without waiting;
//! the connection's task drains everything queued and writes it with one flush.
//! When a client falls more than the byte bound behind, the queue is dropped and
//! marked overflowed: the connection then closes with `slow_consumer` at once,
//! even in the middle of a write the client is not reading. Nobody else ever
//! waits for a slow client.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Fixed per-frame cost added to the payload length, so floods of tiny frames are bounded too.
const FRAME_OVERHEAD: usize = 64;

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for writing.
    Queued,
    /// Not queued: the client is (now) too slow and is being disconnected.
    Dropped,
}

/// A frame waiting to be written.
pub struct Queued {
    /// The complete WebSocket frame (shared with every other recipient of the same message).
    pub frame: Bytes,
    /// When its message was published (µs since the Unix epoch), for the delivery
    /// latency; 0 for replies and history, which are not live deliveries.
    pub published_us: u64,
}

/// The outbox was overflowed: the client must be disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflowed;

/// A bounded queue of frames for one client.
pub struct Outbox {
    /// Queued frames and their accounting; held only for pushes and swaps, never across an await.
    state: Mutex<State>,
    /// Wakes the connection task when the queue becomes non-empty or overflows.
    wake: Notify,
    /// Wakes a connection task busy writing when the queue overflows.
    overflow: Notify,
    /// Bound on queued bytes (payload plus per-frame overhead).
    max_bytes: usize,
}

#[derive(Default)]
struct State {
    /// Frames waiting to be written.
    frames: VecDeque<Queued>,
    /// Their cost in bytes.
    bytes: usize,
    /// Set once the bound was exceeded; the queue stays empty from then on.
    overflowed: bool,
}

impl Outbox {
    /// An empty outbox holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            overflow: Notify::new(),
            max_bytes,
        }
    }

    /// Queues a reply or history frame without waiting.
    pub fn push(&self, frame: Bytes) -> Pushed {
        self.push_live(frame, 0)
    }

    /// Queues a live message published at `published_us`, without waiting.
    pub fn push_live(&self, frame: Bytes, published_us: u64) -> Pushed {
        let cost = frame.len() + FRAME_OVERHEAD;
        let state = self.state.lock();
        if state.overflowed {
            return Pushed::Dropped;
        }
        if state.bytes + cost > self.max_bytes {
            drop(state);
            self.overflow();
            return Pushed::Dropped;
        }
        self.enqueue(state, frame, published_us, cost)
    }

    /// Queues an ephemeral frame (a typing indicator) only while the client keeps
    /// up: once a quarter of the bound is queued such frames are dropped first,
    /// and they never make the client a slow consumer.
    pub fn push_signal(&self, frame: Bytes) -> Pushed {
        let cost = frame.len() + FRAME_OVERHEAD;
        let state = self.state.lock();
        if state.overflowed || state.bytes + cost > self.max_bytes / 4 {
            return Pushed::Dropped;
        }
        self.enqueue(state, frame, 0, cost)
    }

    fn enqueue(
        &self,
        mut state: parking_lot::MutexGuard<'_, State>,
        frame: Bytes,
        published_us: u64,
        cost: usize,
    ) -> Pushed {
        state.frames.push_back(Queued {
            frame,
            published_us,
        });
        state.bytes += cost;
        let first = state.frames.len() == 1;
        drop(state);
        if first {
            self.wake.notify_one();
        }
        Pushed::Queued
    }

    /// Marks the outbox overflowed: the client is disconnected as a slow consumer.
    pub fn overflow(&self) {
        let mut state = self.state.lock();
        state.overflowed = true;
        state.frames = VecDeque::new();
        state.bytes = 0;
        drop(state);
        self.wake.notify_one();
        self.overflow.notify_waiters();
    }

    /// Resolves once the outbox has overflowed (at once if it has). Cancel-safe.
    pub async fn overflowed(&self) {
        loop {
            let notified = self.overflow.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.lock().overflowed {
                return;
            }
            notified.await;
        }
    }

    /// Waits until frames are queued or the outbox overflowed. Cancel-safe.
    pub async fn ready(&self) {
        self.wake.notified().await;
    }

    /// Moves every queued frame into `batch` (which must be empty), keeping both buffers' capacity.
    pub fn take(&self, batch: &mut VecDeque<Queued>) -> Result<(), Overflowed> {
        debug_assert!(batch.is_empty());
        let mut state = self.state.lock();
        if state.overflowed {
            return Err(Overflowed);
        }
        std::mem::swap(&mut state.frames, batch);
        state.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Bytes {
        Bytes::from("x".repeat(n))
    }

    #[test]
    fn queues_until_the_bound_then_overflows_for_good() {
        let outbox = Outbox::new(1000);
        assert_eq!(outbox.push(text(500)), Pushed::Queued);
        assert_eq!(outbox.push(text(500)), Pushed::Dropped);
        assert_eq!(outbox.push(text(1)), Pushed::Dropped);
        assert_eq!(outbox.take(&mut VecDeque::new()), Err(Overflowed));
    }

    #[test]
    fn take_empties_the_queue_and_frees_the_budget() {
        let outbox = Outbox::new(1000);
        for _ in 0..2 {
            assert_eq!(outbox.push(text(400)), Pushed::Queued);
            let mut batch = VecDeque::new();
            outbox.take(&mut batch).unwrap();
            assert_eq!(batch.len(), 1);
        }
    }

    #[test]
    fn signals_are_dropped_first_and_never_overflow() {
        let outbox = Outbox::new(1000);
        assert_eq!(outbox.push_signal(text(100)), Pushed::Queued);
        assert_eq!(outbox.push(text(300)), Pushed::Queued);
        // Past a quarter of the bound: the signal goes, the client stays.
        assert_eq!(outbox.push_signal(text(10)), Pushed::Dropped);
        assert_eq!(outbox.push(text(300)), Pushed::Queued);
        let mut batch = VecDeque::new();
        outbox.take(&mut batch).unwrap();
        assert_eq!(batch.len(), 3);
    }

    #[tokio::test]
    async fn an_overflow_wakes_a_writer_waiting_for_it() {
        let outbox = std::sync::Arc::new(Outbox::new(1000));
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.overflowed().await }
        });
        assert_eq!(outbox.push(text(500)), Pushed::Queued);
        assert_eq!(outbox.push(text(600)), Pushed::Dropped);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        // And it stays overflowed: a later wait ends at once.
        outbox.overflowed().await;
    }

    #[tokio::test]
    async fn wakes_the_reader_on_first_frame() {
        let outbox = std::sync::Arc::new(Outbox::new(1000));
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.ready().await }
        });
        outbox.push(text(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}

//! A connection's bounded outbound queue, and the way into its TCP stream.
//!
//! Producers (the fan-out, the connection's own replies) push without waiting.
//! Live frames ([`Outbox::push_live`]) mark the outbox in the node's
//! [`Flusher`], whose task writes them with one non-blocking vectored write
//! ([`Outbox::flush`]): a room's fan-out wakes no member's task. Replies, and
//! whatever the flusher cannot write at once (the client's socket is full),
//! are written by the connection's task, which waits for the client under the
//! write timeout. One of them writes at a time, in queue order. When a
//! client falls more than the byte bound behind, the queue is dropped and
//! marked overflowed: the connection then closes with `slow_consumer` at once,
//! even in the middle of a write the client is not reading. Nobody else ever
//! waits for a slow client.

use std::{
    collections::VecDeque,
    future::poll_fn,
    io::IoSlice,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::Poll,
};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::net::TcpStream;

use super::flusher::{Flush, Flusher, Tally};

/// Fixed per-frame cost added to the payload length, so floods of tiny frames are bounded too.
const FRAME_OVERHEAD: usize = 64;

/// Frames handed to one vectored write (Linux takes up to 1024 slices).
const MAX_SLICES: usize = 64;

/// Capacity (frames) an emptied queue keeps for the next message; a burst's
/// larger buffer is released, so idle connections stay small.
const QUEUE_KEEP: usize = 8;

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

/// The outbox was overflowed, or closed from outside: the client must be
/// disconnected, with this close code (`None`: as a slow consumer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflowed(pub Option<u16>);

/// The client's stream, for the flusher's writes.
pub struct Direct {
    /// The connection's TCP stream (shared with its task, which reads it).
    pub stream: Arc<TcpStream>,
    /// The writer of this connection's live frames.
    pub flusher: Arc<Flusher>,
}

/// A bounded queue of frames for one client.
pub struct Outbox {
    /// Queued frames and their accounting; held only for pushes, swaps and
    /// non-blocking writes, never across an await.
    state: Mutex<State>,
    /// Wakes the connection task (the only one that waits on the outbox)
    /// when the queue becomes non-empty or overflows (a waker, not a
    /// `Notify`: the task's wait on it takes 8 bytes, not 80, and the outbox
    /// 16 bytes, not 32).
    wake: AtomicWaker,
    /// Set for the task by [`Self::notify`], cleared by [`Self::ready`].
    woken: AtomicBool,
    /// Bound on queued bytes (payload plus per-frame overhead).
    max_bytes: usize,
    /// How the flusher writes live frames; `None`: the task writes everything.
    direct: Option<Direct>,
}

#[derive(Default)]
struct State {
    /// Frames waiting to be written.
    frames: VecDeque<Queued>,
    /// Their cost in bytes.
    bytes: usize,
    /// Set once the bound was exceeded; the queue stays empty from then on.
    overflowed: bool,
    /// The connection's task holds frames it took (or is closing): only it writes.
    writing: bool,
    /// Bytes of the first queued frame the flusher already sent.
    head_written: usize,
    /// Marked in the flusher, not flushed yet.
    marked: bool,
    /// Set with `overflowed` when the connection is closed from outside (the
    /// server API's disconnect): the close code to send instead of a slow
    /// consumer's.
    close_code: Option<u16>,
}

impl Outbox {
    /// An empty outbox holding at most `max_bytes`, writing live frames
    /// through `direct` when it can.
    pub fn new(max_bytes: usize, direct: Option<Direct>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: AtomicWaker::new(),
            woken: AtomicBool::new(false),
            max_bytes,
            direct,
        }
    }

    /// Queues a reply or history frame without waiting (replies come in
    /// groups: the task writes them together).
    pub fn push(&self, frame: Bytes) -> Pushed {
        let cost = frame.len() + FRAME_OVERHEAD;
        match self.admit(cost) {
            Some(state) => self.enqueue(state, frame, 0, cost),
            None => Pushed::Dropped,
        }
    }

    /// The locked queue, when `cost` more bytes fit; past the bound the
    /// outbox overflows (the client is too slow), and `None`.
    fn admit(&self, cost: usize) -> Option<parking_lot::MutexGuard<'_, State>> {
        let state = self.state.lock();
        if state.overflowed {
            return None;
        }
        if state.bytes + cost > self.max_bytes {
            drop(state);
            self.overflow();
            return None;
        }
        Some(state)
    }

    /// Queues a live message published at `published_us`, without waiting,
    /// for the flusher (or, without one, the task) to write.
    pub fn push_live(self: &Arc<Self>, frame: Bytes, published_us: u64) -> Pushed {
        let cost = frame.len() + FRAME_OVERHEAD;
        match self.admit(cost) {
            Some(state) => self.enqueue_live(state, frame, published_us, cost),
            None => Pushed::Dropped,
        }
    }

    /// Queues an ephemeral frame (a typing indicator) only while the client keeps
    /// up: once a quarter of the bound is queued such frames are dropped first,
    /// and they never make the client a slow consumer.
    pub fn push_signal(self: &Arc<Self>, frame: Bytes) -> Pushed {
        let cost = frame.len() + FRAME_OVERHEAD;
        let state = self.state.lock();
        if state.overflowed || state.bytes + cost > self.max_bytes / 4 {
            return Pushed::Dropped;
        }
        self.enqueue_live(state, frame, 0, cost)
    }

    /// Queues a live frame and marks the outbox in the flusher, once per round.
    fn enqueue_live(
        self: &Arc<Self>,
        mut state: parking_lot::MutexGuard<'_, State>,
        frame: Bytes,
        published_us: u64,
        cost: usize,
    ) -> Pushed {
        let Some(direct) = &self.direct else {
            return self.enqueue(state, frame, published_us, cost);
        };
        state.frames.push_back(Queued {
            frame,
            published_us,
        });
        state.bytes += cost;
        let mark = !std::mem::replace(&mut state.marked, true);
        drop(state);
        if mark {
            direct.flusher.mark(self.clone());
        }
        Pushed::Queued
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
            self.notify();
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
        // Also wakes the task out of a write the client is not reading.
        self.notify();
    }

    /// Ends the connection with close `code` (the server API's disconnect):
    /// queued frames are dropped, and the task closes at its next wake-up.
    pub fn close_with(&self, code: u16) {
        let mut state = self.state.lock();
        if !state.overflowed {
            state.close_code = Some(code);
        }
        drop(state);
        self.overflow();
    }

    /// The close code [`Self::close_with`] set, if it was called.
    pub fn close_code(&self) -> Option<u16> {
        self.state.lock().close_code
    }

    /// Resolves once the outbox has overflowed (at once if it has). For the
    /// connection's task, the only one that waits on the outbox. Cancel-safe.
    pub fn overflowed(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| {
            self.wake.register(cx.waker());
            if self.state.lock().overflowed {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Waits until frames are queued or the outbox overflowed (at once if
    /// that happened since the last wait). Cancel-safe.
    pub fn ready(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| {
            self.wake.register(cx.waker());
            if self.woken.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Tells the task there is something for it.
    fn notify(&self) {
        self.woken.store(true, Ordering::Release);
        self.wake.wake();
    }

    /// Moves every queued frame into `batch` (which must be empty; its
    /// buffer becomes the queue's), and holds the socket for the task until
    /// [`Outbox::wrote`]. Returns how many bytes of the first frame are
    /// already written.
    pub fn take(&self, batch: &mut VecDeque<Queued>) -> Result<usize, Overflowed> {
        debug_assert!(batch.is_empty());
        let mut state = self.state.lock();
        state.writing = true;
        if state.overflowed {
            return Err(Overflowed(state.close_code));
        }
        std::mem::swap(&mut state.frames, batch);
        state.bytes = 0;
        Ok(std::mem::take(&mut state.head_written))
    }

    /// The task wrote what it took: live frames may go at once again.
    pub fn wrote(&self) {
        self.state.lock().writing = false;
    }

    /// Keeps everyone else off the socket for good (the connection is
    /// closing). False when a frame is half written: no other frame may follow.
    pub fn seal(&self) -> bool {
        let mut state = self.state.lock();
        state.writing = true;
        state.head_written == 0
    }
}

impl Flush for Outbox {
    /// Writes the queued frames with one non-blocking vectored write (the
    /// flusher's round), counting them in `tally`. What does not go at once
    /// is left to the task.
    fn flush(&self, tally: &mut Tally) {
        let Some(direct) = &self.direct else {
            return;
        };
        let mut state = self.state.lock();
        state.marked = false;
        if state.overflowed || state.frames.is_empty() {
            return;
        }
        if state.writing {
            // The task is writing: it takes these next.
            drop(state);
            self.notify();
            return;
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        for (slice, queued) in slices.iter_mut().zip(state.frames.iter()) {
            let from = if count == 0 { state.head_written } else { 0 };
            *slice = IoSlice::new(&queued.frame[from..]);
            count += 1;
        }
        // Full, or broken: the task's own write waits, or finds the error.
        let mut sent = direct
            .stream
            .try_write_vectored(&slices[..count])
            .unwrap_or(0);
        tally.bytes += sent as u64;
        while let Some((len, published_us)) = state
            .frames
            .front()
            .map(|first| (first.frame.len(), first.published_us))
        {
            let left = len - state.head_written;
            if sent < left {
                state.head_written += sent;
                break;
            }
            sent -= left;
            state.head_written = 0;
            state.bytes -= len + FRAME_OVERHEAD;
            state.frames.pop_front();
            if published_us != 0 {
                tally.delivered(published_us);
            }
        }
        let rest = !state.frames.is_empty();
        if !rest && state.frames.capacity() > QUEUE_KEEP {
            state.frames = VecDeque::new();
        }
        drop(state);
        if rest {
            self.notify();
        }
    }
}

#[cfg(test)]
mod tests;

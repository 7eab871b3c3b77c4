//! Reference-counted room subscriptions on the backplane.
//!
//! One task owns the table. A room is subscribed while it has local members,
//! plus a linger delay after the last one leaves, so join/leave churn does not
//! thrash Redis. At most one backplane operation per room is in flight; when it
//! finishes the owner compares what is wanted with what is held and issues the
//! next one, so concurrent joins and leaves always settle on the right state.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chorus_backplane::{BackplaneError, PubSub};
use chorus_protocol::RoomName;
use futures_util::StreamExt;
use tokio::{
    sync::{mpsc, oneshot},
    task::{JoinHandle, JoinSet},
};
use tokio_util::time::{DelayQueue, delay_queue};

use crate::metrics::Metrics;

/// Delay before retrying an unsubscribe that failed (the backplane was down).
const UNSUBSCRIBE_RETRY: Duration = Duration::from_secs(1);

type Reply = oneshot::Sender<Result<(), BackplaneError>>;

enum Request {
    Acquire { room: RoomName, reply: Reply },
    Release { room: RoomName },
}

/// Handle to the subscription owner.
#[derive(Clone)]
pub struct Subscriptions {
    /// Requests to the owner task. Unbounded, but each connection has at most one
    /// acquire outstanding and releases only what it acquired.
    requests: mpsc::UnboundedSender<Request>,
}

impl Subscriptions {
    /// Starts the owner task; it ends when every handle is dropped.
    pub fn start(
        pubsub: Arc<dyn PubSub>,
        linger: Duration,
        metrics: Metrics,
    ) -> (Self, JoinHandle<()>) {
        let (requests, rx) = mpsc::unbounded_channel();
        let owner = Owner {
            pubsub,
            linger,
            metrics,
            rooms: HashMap::new(),
            expiries: DelayQueue::new(),
            operations: JoinSet::new(),
        };
        (Self { requests }, tokio::spawn(owner.run(rx)))
    }

    /// Takes a reference on `room`, subscribing first if needed. On `Ok` the
    /// subscription is active and the caller must [`release`](Self::release) it
    /// later; on `Err` the caller holds nothing.
    pub async fn acquire(&self, room: &RoomName) -> Result<(), BackplaneError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Acquire {
                room: room.clone(),
                reply,
            })
            .map_err(|_| BackplaneError::ShutDown)?;
        answer.await.map_err(|_| BackplaneError::ShutDown)?
    }

    /// Gives back a reference taken by a successful [`acquire`](Self::acquire).
    pub fn release(&self, room: &RoomName) {
        let _ = self.requests.send(Request::Release { room: room.clone() });
    }
}

#[derive(Default)]
struct Entry {
    /// References held (members, plus acquirers waiting for the subscription).
    refs: usize,
    /// Whether the backplane subscription is active.
    subscribed: bool,
    /// Whether a subscribe or unsubscribe is in flight.
    busy: bool,
    /// Acquirers waiting for the subscription; while unsubscribed, `refs == waiters.len()`.
    waiters: Vec<Reply>,
    /// Pending linger or retry timer.
    expiry: Option<delay_queue::Key>,
}

#[derive(Clone, Copy)]
enum Operation {
    Subscribe,
    Unsubscribe,
}

struct Owner {
    /// Where subscriptions are made.
    pubsub: Arc<dyn PubSub>,
    /// How long a room stays subscribed after its last member leaves.
    linger: Duration,
    /// Subscription gauge.
    metrics: Metrics,
    /// Every room with references, a subscription, or an operation in flight.
    rooms: HashMap<RoomName, Entry>,
    /// Linger and retry timers.
    expiries: DelayQueue<RoomName>,
    /// Backplane operations in flight, at most one per room.
    operations: JoinSet<(RoomName, Operation, Result<(), BackplaneError>)>,
}

impl Owner {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(Request::Acquire { room, reply }) => self.acquire(room, reply),
                    Some(Request::Release { room }) => self.release(room),
                    None => break,
                },
                Some(expired) = self.expiries.next() => {
                    let room = expired.into_inner();
                    if let Some(entry) = self.rooms.get_mut(&room) {
                        entry.expiry = None;
                    }
                    self.reconcile(&room);
                }
                Some(done) = self.operations.join_next() => {
                    if let Ok((room, operation, result)) = done {
                        self.finished(room, operation, result);
                    }
                }
            }
        }
    }

    fn acquire(&mut self, room: RoomName, reply: Reply) {
        let entry = self.rooms.entry(room.clone()).or_default();
        entry.refs += 1;
        if let Some(key) = entry.expiry.take() {
            self.expiries.remove(&key);
        }
        if entry.subscribed && !entry.busy {
            if reply.send(Ok(())).is_err() {
                entry.refs -= 1;
                self.release_last(&room);
            }
            return;
        }
        entry.waiters.push(reply);
        self.reconcile(&room);
    }

    fn release(&mut self, room: RoomName) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        entry.refs = entry.refs.saturating_sub(1);
        self.release_last(&room);
    }

    /// Starts the linger when the last reference is gone.
    fn release_last(&mut self, room: &RoomName) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        if entry.refs > 0 {
            return;
        }
        if entry.subscribed && !self.linger.is_zero() && entry.expiry.is_none() {
            entry.expiry = Some(self.expiries.insert(room.clone(), self.linger));
        }
        self.reconcile(room);
    }

    fn finished(
        &mut self,
        room: RoomName,
        operation: Operation,
        result: Result<(), BackplaneError>,
    ) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        entry.busy = false;
        match (operation, result) {
            (Operation::Subscribe, Ok(())) => {
                entry.subscribed = true;
                self.metrics.subscriptions.inc();
                for waiter in entry.waiters.drain(..) {
                    if waiter.send(Ok(())).is_err() {
                        entry.refs -= 1;
                    }
                }
            }
            (Operation::Subscribe, Err(error)) => {
                tracing::warn!(%room, %error, "subscribe failed");
                for waiter in entry.waiters.drain(..) {
                    let _ = waiter.send(Err(error.clone()));
                    entry.refs -= 1;
                }
            }
            (Operation::Unsubscribe, Ok(())) => {
                entry.subscribed = false;
                self.metrics.subscriptions.dec();
            }
            (Operation::Unsubscribe, Err(error)) => {
                tracing::warn!(%room, %error, "unsubscribe failed; retrying");
                if entry.refs == 0 && entry.expiry.is_none() {
                    entry.expiry = Some(self.expiries.insert(room.clone(), UNSUBSCRIBE_RETRY));
                }
            }
        }
        self.reconcile(&room);
    }

    /// Issues the operation that moves `room` toward the wanted state, or forgets it.
    fn reconcile(&mut self, room: &RoomName) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        if entry.busy {
            return;
        }
        let wanted = entry.refs > 0 || entry.expiry.is_some();
        let operation = match (wanted, entry.subscribed) {
            (true, false) => Operation::Subscribe,
            (false, true) => Operation::Unsubscribe,
            (true, true) => return,
            (false, false) => {
                self.rooms.remove(room);
                return;
            }
        };
        entry.busy = true;
        let pubsub = self.pubsub.clone();
        let room = room.clone();
        self.operations.spawn(async move {
            let result = match operation {
                Operation::Subscribe => pubsub.subscribe(&room).await,
                Operation::Unsubscribe => pubsub.unsubscribe(&room).await,
            };
            (room, operation, result)
        });
    }
}

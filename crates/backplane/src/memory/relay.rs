//! A node's link to the bus: the queue the bus relays into, and the task
//! that hands what was relayed to the node's [`Inbound`], in order.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use bytes::Bytes;
use chorus_protocol::RoomName;
use parking_lot::Mutex;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{BackplaneError, Delivery, Inbound};

/// Messages and signals one node may have queued before the bus drops them
/// for it (as Redis's subscriber buffer does).
const RELAY_QUEUE: usize = 8 * 1024;
/// Relayed items handed to the node per wake-up of its relay task.
const RELAY_BATCH: usize = 64;

/// What the bus queues for a node.
pub(super) struct Relayed {
    /// The room it was published in.
    pub(super) room: RoomName,
    /// A numbered message, or an unstored signal.
    pub(super) item: Item,
}

/// A relayed message or signal.
#[derive(Clone)]
pub(super) enum Item {
    /// A stored, numbered entry.
    Message(Delivery),
    /// An unstored signal.
    Signal(Bytes),
}

/// One node's link to the bus, shared by its parts.
pub(super) struct NodeLink {
    /// The node's key on the bus (for unsubscribing).
    pub(super) node: u64,
    /// The queue the node's relay task reads.
    pub(super) queue: mpsc::Sender<Relayed>,
    /// Set by shutdown; later calls fail as a closed Redis client would.
    closed: AtomicBool,
    /// The relay task, stopped at shutdown.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl NodeLink {
    /// Links node `node`, relaying into `inbound` from a task of its own.
    pub(super) fn start(node: u64, inbound: Arc<dyn Inbound>) -> Arc<Self> {
        let (queue, relayed) = mpsc::channel(RELAY_QUEUE);
        Arc::new(Self {
            node,
            queue,
            closed: AtomicBool::new(false),
            task: Mutex::new(Some(tokio::spawn(relay(relayed, inbound)))),
        })
    }

    /// Fails once the node shut down.
    pub(super) fn check_open(&self) -> Result<(), BackplaneError> {
        if self.is_open() {
            Ok(())
        } else {
            Err(BackplaneError::ShutDown)
        }
    }

    /// Whether the node has not shut down.
    pub(super) fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// Shuts the link: later calls fail, nothing more is handed to the node.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

/// A node's relay task: hands what the bus queued to the node, in order.
async fn relay(mut queued: mpsc::Receiver<Relayed>, inbound: Arc<dyn Inbound>) {
    let mut batch = Vec::with_capacity(RELAY_BATCH);
    while queued.recv_many(&mut batch, RELAY_BATCH).await > 0 {
        for Relayed { room, item } in batch.drain(..) {
            match item {
                Item::Message(delivery) => inbound.deliver(&room, delivery),
                Item::Signal(payload) => inbound.signal(&room, payload),
            }
        }
    }
}

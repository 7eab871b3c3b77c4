//! What every case shares: the stores, a node's ear, and small helpers.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use chorus_backplane::{
    Backplane, Change, ChangeOp, Dedup, Delivery, HistorySettings, Inbound, MemoryBus, Outgoing,
    Published,
};
use chorus_protocol::RoomName;
use chorus_testkit::{RedisServer, eventually, redis_settings};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Where a case runs.
#[derive(Clone, Copy, Debug)]
pub enum Store {
    /// The in-process bus.
    Memory,
    /// A real Redis.
    Redis,
}
/// What a node heard, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A numbered entry.
    Message {
        room: String,
        epoch: u64,
        seq: u64,
        payload: Bytes,
    },
    /// A signal.
    Signal { room: String, payload: Bytes },
}

/// An [`Inbound`] that records everything, with a way to wait for it.
#[derive(Default)]
pub struct Ear {
    /// Everything heard so far.
    pub heard: Mutex<Vec<Heard>>,
    /// Woken on each arrival.
    arrived: Notify,
}

impl Inbound for Ear {
    fn deliver(&self, room: &RoomName, delivery: Delivery) {
        self.heard.lock().push(Heard::Message {
            room: room.to_string(),
            epoch: delivery.epoch,
            seq: delivery.seq,
            payload: delivery.payload,
        });
        self.arrived.notify_waiters();
    }

    fn signal(&self, room: &RoomName, payload: Bytes) {
        self.heard.lock().push(Heard::Signal {
            room: room.to_string(),
            payload,
        });
        self.arrived.notify_waiters();
    }
}

impl Ear {
    /// Waits until at least `n` things were heard; returns all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Heard> {
        tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                let arrived = self.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                {
                    let heard = self.heard.lock();
                    if heard.len() >= n {
                        return heard.clone();
                    }
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("heard {:?}, waited for {n}", self.heard.lock()))
    }

    /// The sequence numbers of the messages heard.
    pub fn seqs(&self) -> Vec<u64> {
        self.heard
            .lock()
            .iter()
            .filter_map(|h| match h {
                Heard::Message { seq, .. } => Some(*seq),
                Heard::Signal { .. } => None,
            })
            .collect()
    }
}

/// A shared store and the nodes attached to it.
pub struct Cluster {
    /// Each node's backplane and what it heard.
    pub nodes: Vec<(Backplane, Arc<Ear>)>,
    /// The Redis server, for [`Store::Redis`].
    _redis: Option<RedisServer>,
}

impl Cluster {
    /// `n` nodes sharing one store with these history bounds.
    pub async fn start(store: Store, n: usize, history: HistorySettings) -> Self {
        let mut nodes = Vec::new();
        let redis = match store {
            Store::Memory => {
                let bus = MemoryBus::with_history(history);
                for _ in 0..n {
                    let ear = Arc::new(Ear::default());
                    nodes.push((bus.attach(ear.clone()), ear));
                }
                None
            }
            Store::Redis => {
                let redis = RedisServer::start().await;
                let settings = redis_settings(&redis.url());
                for _ in 0..n {
                    let ear = Arc::new(Ear::default());
                    let registry = prometheus::Registry::new();
                    let backplane = settings
                        .connect(history, ear.clone(), &registry)
                        .await
                        .expect("connects to Redis");
                    eventually("the backplane to be ready", || {
                        let ready = backplane.pubsub.is_ready();
                        async move { ready.then_some(()) }
                    })
                    .await;
                    nodes.push((backplane, ear));
                }
                Some(redis)
            }
        };
        Self {
            nodes,
            _redis: redis,
        }
    }

    /// One node with the default bounds.
    pub async fn one(store: Store) -> (Self, Backplane, Arc<Ear>) {
        Self::one_with(store, HistorySettings::default()).await
    }

    /// One node with these bounds.
    pub async fn one_with(store: Store, history: HistorySettings) -> (Self, Backplane, Arc<Ear>) {
        let cluster = Self::start(store, 1, history).await;
        let (backplane, ear) = cluster.nodes[0].clone();
        (cluster, backplane, ear)
    }
}

pub fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A message `text` from `sender` accepted at `ts`, with an optional dedup key.
pub fn message(text: &str, sender: &str, ts: u64, dedup: Option<&str>) -> Outgoing {
    Outgoing {
        payload: Bytes::from(text.to_owned()),
        id: format!("id-{text}"),
        ts,
        sender: sender.into(),
        dedup: dedup.map(|key| Dedup {
            key: key.into(),
            reply: Bytes::from(format!("reply-{text}")),
        }),
    }
}

pub async fn publish(backplane: &Backplane, room: &RoomName, text: &str) -> u64 {
    match backplane
        .log
        .publish(room, message(text, "ann", now_ms(), None))
        .await
        .unwrap()
    {
        Published::New(position) => position.seq,
        other => panic!("expected a new message, got {other:?}"),
    }
}

pub fn payloads(page: &chorus_backplane::Page) -> Vec<String> {
    page.entries
        .iter()
        .map(|e| String::from_utf8(e.payload.to_vec()).unwrap())
        .collect()
}

pub fn seqs(page: &chorus_backplane::Page) -> Vec<u64> {
    page.entries.iter().map(|e| e.seq).collect()
}

/// A change by `by` of message `target`.
pub fn change(target: u64, by: &str, moderator: bool, op: ChangeOp) -> Change {
    Change {
        target,
        target_id: None,
        by: by.into(),
        moderator,
        op,
        payload: Bytes::from_static(b"change"),
        id: uuid_like(by, target),
        ts: now_ms(),
    }
}

pub fn uuid_like(by: &str, target: u64) -> String {
    format!("change-{by}-{target}-{}", now_ms())
}

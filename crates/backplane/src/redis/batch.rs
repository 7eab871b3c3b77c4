//! Publishes gathered into batches: the sends that arrive while earlier script
//! calls are out go together into the next call, which stores and relays each
//! of them as its room's next entry (`publish.lua`). A lone send is called at
//! once, so batching adds no wait; under load a batch grows, and Redis runs one
//! script (and the node one command) for many messages.
//!
//! Every message keeps its own outcome: its position, the original acceptance
//! of a repeated dedup key, or its own error. Order within a room is the order
//! Redis runs the calls in; a connection has one send outstanding at a time,
//! so each sender's messages keep theirs.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use chorus_protocol::RoomName;
use fred::{
    clients::Client,
    interfaces::ClientLike,
    prelude::Value,
    types::{ClusterHash, CustomCommand},
};
use prometheus::Histogram;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{
    reply::{OpScript, Reply, bytes_of, decimal, failed, number, text_of},
    sharding::{Sharding, slot_of},
};
use crate::{BackplaneError, ChannelNames, Outage, Outgoing, Position, Published};

/// Most messages in one script call: bounds how long one call keeps Redis busy.
const MAX_BATCH: usize = 64;
/// Script calls out at once. While all are out, sends gather for the next.
const IN_FLIGHT: usize = 2;
/// Sends waiting for a call. Each connection has one send outstanding, so
/// this only pushes back when more than this many connections send at once.
const QUEUE: usize = 4096;

/// The outcome of one publish.
type Outcome = Result<Published, BackplaneError>;

/// A send waiting for its batch.
struct Pending {
    /// The room it goes to.
    room: RoomName,
    /// The message.
    message: Outgoing,
    /// Where its outcome goes.
    done: oneshot::Sender<Outcome>,
}

/// The sending side: every publish of this node goes through it.
pub(super) struct Batcher {
    /// Sends on their way to the gathering task.
    queue: mpsc::Sender<Pending>,
    /// Bound on one send's whole wait, queue included: a send waiting behind
    /// calls that hang fails like a command that timed out.
    timeout: Duration,
}

/// What a batch call needs, shared by the calls in flight.
pub(super) struct PublishCall {
    /// The connection the calls are pipelined on.
    pub(super) client: Client,
    /// `publish.lua`.
    pub(super) script: OpScript,
    /// Key and channel naming.
    pub(super) names: ChannelNames,
    /// Max length, max age, state TTL and dedup window, as script arguments.
    pub(super) bounds: [Value; 4],
    /// Messages per call.
    pub(super) sizes: Histogram,
    /// Replicas a call's messages must reach before they are acknowledged.
    pub(super) wait: Option<Replication>,
    /// One Redis or a cluster: in a cluster a call holds rooms of one shard
    /// (the script may touch several slots of a shard).
    pub(super) sharding: Sharding,
}

/// `WAIT` after each call: its messages are acknowledged only once this
/// many replicas hold them.
pub(super) struct Replication {
    /// Replicas that must hold the call's writes.
    replicas: i64,
    /// How long Redis waits for them (ms): within the send's own bound, so
    /// a missing replica fails the send rather than timing it out.
    timeout_ms: i64,
}

impl Replication {
    /// `None` for 0 replicas: acknowledged once the primary stored it.
    pub(super) fn new(replicas: u32, send_timeout: Duration) -> Option<Self> {
        (replicas > 0).then(|| Self {
            replicas: i64::from(replicas),
            timeout_ms: (send_timeout.as_millis() * 3 / 4).max(1) as i64,
        })
    }

    /// Waits until the replicas hold everything `client` wrote so far (in a
    /// cluster: on the shard of `slot`, where the call ran).
    async fn wait(&self, client: &Client, slot: u16) -> Result<(), BackplaneError> {
        let command = CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false);
        let args = vec![
            Value::Integer(self.replicas),
            Value::Integer(self.timeout_ms),
        ];
        let got: i64 = client
            .custom(command, args)
            .await
            .map_err(failed("publish"))?;
        if got < self.replicas {
            let outage = Outage::NotReplicated {
                wanted: self.replicas,
                got,
            };
            return Err(BackplaneError::unavailable("publish", outage));
        }
        Ok(())
    }
}

impl Batcher {
    /// Starts the task that gathers sends into calls of `call`; each send
    /// waits at most `timeout` in all.
    pub(super) fn start(call: PublishCall, timeout: Duration) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(gather(pending, Arc::new(call)));
        Self { queue, timeout }
    }

    /// Stores and relays `message` as `room`'s next entry, in the next batch.
    /// A send that gives up (timed out, or its caller went away) before its
    /// batch is taken is left out of it: nothing is stored.
    pub(super) async fn publish(&self, room: &RoomName, message: Outgoing) -> Outcome {
        let (done, outcome) = oneshot::channel();
        let pending = Pending {
            room: room.clone(),
            message,
            done,
        };
        let wait = async {
            self.queue
                .send(pending)
                .await
                .map_err(|_| BackplaneError::ShutDown)?;
            outcome.await.map_err(|_| BackplaneError::ShutDown)?
        };
        tokio::time::timeout(self.timeout, wait)
            .await
            .map_err(|_| BackplaneError::unavailable("publish", Outage::Timeout))?
    }
}

/// Takes whatever waits, up to [`MAX_BATCH`], whenever a call may go out.
async fn gather(mut queue: mpsc::Receiver<Pending>, call: Arc<PublishCall>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        batch.retain(|pending| !pending.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        let call = call.clone();
        tokio::spawn(async move {
            call.run(batch).await;
            drop(slot);
        });
    }
}

impl PublishCall {
    /// Runs `batch`: one call, or in a cluster one call per shard (at once;
    /// a room's sends stay in one call, in order).
    async fn run(&self, batch: Vec<Pending>) {
        if self.sharding == Sharding::Single {
            return self.run_one(batch).await;
        }
        let channels: Vec<String> = batch
            .iter()
            .map(|pending| self.names.room_channel(&pending.room))
            .collect();
        let groups = self
            .sharding
            .shard_groups(&self.client, &channels, String::as_str, MAX_BATCH);
        if groups.len() == 1 {
            return self.run_one(batch).await;
        }
        let mut batch: Vec<Option<Pending>> = batch.into_iter().map(Some).collect();
        let calls = groups.iter().map(|group| {
            let part = group.iter().filter_map(|&i| batch[i].take()).collect();
            self.run_one(part)
        });
        futures_util::future::join_all(calls).await;
    }

    /// Runs one call for `batch` and hands each send its outcome.
    async fn run_one(&self, batch: Vec<Pending>) {
        self.sizes.observe(batch.len() as f64);
        // Where a `WAIT` goes: the slot of the call's first room.
        let slot = self
            .wait
            .as_ref()
            .map(|_| slot_of(&self.names.room_channel(&batch[0].room)));
        let (keys, args, waiting) = self.arguments(batch);
        let (keys, args) = self.sharding.shard_wide_call(keys, args);
        match self.script.call_reply(&self.client, keys, args).await {
            Ok(mut reply) => {
                let replicated = match &self.wait {
                    Some(wait) => wait.wait(&self.client, slot.unwrap_or_default()).await,
                    None => Ok(()),
                };
                for done in waiting {
                    let outcome = outcome(&mut reply);
                    let _ = done.send(replicated.clone().and(outcome));
                }
            }
            Err(error) => {
                for done in waiting {
                    let _ = done.send(Err(error.clone()));
                }
            }
        }
    }

    /// The script's keys and arguments for `batch` (see `publish.lua`), and
    /// where each message's outcome goes, in order.
    fn arguments(
        &self,
        batch: Vec<Pending>,
    ) -> (Vec<String>, Vec<Value>, Vec<oneshot::Sender<Outcome>>) {
        let mut rooms: HashMap<&RoomName, usize> = HashMap::with_capacity(batch.len());
        let mut order: Vec<&RoomName> = Vec::with_capacity(batch.len());
        for pending in &batch {
            rooms.entry(&pending.room).or_insert_with(|| {
                order.push(&pending.room);
                order.len()
            });
        }
        let mut keys = Vec::with_capacity(order.len() * 4 + batch.len());
        let mut args = Vec::with_capacity(5 + order.len() + batch.len() * 7);
        args.extend(self.bounds.iter().cloned());
        args.push(Value::Integer(order.len() as i64));
        for room in &order {
            for suffix in ["state", "log", "overlays", "changes"] {
                keys.push(self.names.room_key(room, suffix));
            }
            args.push(self.names.room_channel(room).into());
        }
        let numbers: Vec<usize> = batch.iter().map(|pending| rooms[&pending.room]).collect();
        drop((rooms, order));
        let mut waiting = Vec::with_capacity(batch.len());
        for (pending, number) in batch.into_iter().zip(numbers) {
            let Outgoing {
                payload,
                id,
                ts,
                sender,
                dedup,
            } = pending.message;
            let (reply, dedup_index) = match dedup {
                Some(dedup) => {
                    let key = format!("dedup:{}", dedup.key);
                    keys.push(self.names.room_key(&pending.room, &key));
                    (dedup.reply, keys.len())
                }
                None => (Bytes::new(), 0),
            };
            args.extend([
                Value::Integer(number as i64),
                Value::Integer(dedup_index as i64),
                Value::Bytes(payload),
                ts.to_string().into(),
                id.into(),
                Value::Bytes(reply),
                sender.into(),
            ]);
            waiting.push(pending.done);
        }
        (keys, args, waiting)
    }
}

/// Reads the next message's three fields of the script's answer.
fn outcome(reply: &mut Reply) -> Outcome {
    let (kind, first, second) = (
        reply.value("kind")?,
        reply.value("epoch")?,
        reply.value("seq")?,
    );
    match text_of(&kind) {
        Some(b"new") => Ok(Published::New(Position {
            epoch: number(&first).ok_or_else(|| reply.bad("epoch"))?,
            seq: number(&second).ok_or_else(|| reply.bad("seq"))?,
        })),
        Some(b"dup") => {
            let epoch = number(&first).ok_or_else(|| reply.bad("epoch"))?;
            // The stored original: "<seq>:<reply>".
            let stored = bytes_of(second).ok_or_else(|| reply.bad("dup"))?;
            let colon = stored.iter().position(|b| *b == b':');
            match colon.and_then(|colon| Some((colon, decimal(&stored[..colon])?))) {
                Some((colon, seq)) => Ok(Published::Duplicate {
                    epoch,
                    seq,
                    reply: stored.slice(colon + 1..),
                }),
                None => Err(reply.bad("dup")),
            }
        }
        Some(b"err") => {
            let text = text_of(&first).ok_or_else(|| reply.bad("err"))?;
            let text = String::from_utf8_lossy(text).into_owned();
            Err(BackplaneError::unavailable(
                "publish",
                Outage::Refused(text),
            ))
        }
        _ => Err(reply.bad("kind")),
    }
}

//! Local room membership and fan-out.
//!
//! The hub is what the backplane delivers into. For each message it decodes the
//! envelope once, encodes the client event at most once per encoding, and pushes
//! the same frame (a shared buffer: cloning it allocates nothing) into every
//! local member's outbox. Pushing never waits, so a slow client cannot slow the
//! reader or anyone else.

use std::{collections::HashMap, sync::Arc};

use axum::extract::ws::Message;
use bytes::Bytes;
use chorus_backplane::Inbound;
use chorus_protocol::{Encoding, Envelope, EnvelopeBody, Frame, RoomName, ServerEvent};
use indexmap::IndexMap;
use parking_lot::Mutex;

use crate::{
    metrics::Metrics,
    outbox::{Outbox, Pushed},
};

/// Shards of the room table: fan-out in one room never blocks joins in most others.
const SHARDS: usize = 32;

/// Identifies a connection within this node.
pub type ConnId = u64;

/// Rooms of one shard and their local members.
type RoomTable = HashMap<RoomName, IndexMap<ConnId, Member>>;

/// A local member of a room.
#[derive(Clone)]
pub struct Member {
    /// Where the member's frames go.
    pub outbox: Arc<Outbox>,
    /// How the member wants events encoded.
    pub encoding: Encoding,
}

/// Rooms with local members, and the fan-out into them.
pub struct Hub {
    /// Room -> local members, sharded by room hash. Locks are held only for map
    /// updates and one fan-out loop, never across an await.
    shards: Box<[Mutex<RoomTable>]>,
    /// Where fan-out is counted.
    metrics: Metrics,
}

impl Hub {
    /// An empty hub.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            metrics,
        }
    }

    fn shard(&self, room: &str) -> &Mutex<RoomTable> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room);
        &self.shards[(hash as usize) % SHARDS]
    }

    /// Adds a member; messages delivered from now on reach it.
    pub fn add(&self, room: &RoomName, conn: ConnId, member: Member) {
        let mut shard = self.shard(room.as_str()).lock();
        let members = shard.entry(room.clone()).or_insert_with(|| {
            self.metrics.rooms_local.inc();
            IndexMap::new()
        });
        members.insert(conn, member);
    }

    /// Removes a member; no message delivered after this returns reaches it.
    pub fn remove(&self, room: &RoomName, conn: ConnId) {
        let mut shard = self.shard(room.as_str()).lock();
        if let Some(members) = shard.get_mut(room) {
            members.swap_remove(&conn);
            if members.is_empty() {
                shard.remove(room);
                self.metrics.rooms_local.dec();
            }
        }
    }

    /// Pushes `event` to every local member of `room`, encoding once per encoding.
    fn fan_out(&self, room: &str, event: &ServerEvent<'_>) {
        let shard = self.shard(room).lock();
        let Some(members) = shard.get(room) else {
            self.metrics.fanout.observe(0.0);
            return;
        };
        let mut frames: [Option<Message>; Encoding::ALL.len()] = Default::default();
        let mut dropped = 0u64;
        for member in members.values() {
            let frame = frames[member.encoding.index()]
                .get_or_insert_with(|| ws_message(member.encoding.encode(event)));
            if member.outbox.push(frame.clone()) == Pushed::Dropped {
                dropped += 1;
            }
        }
        let recipients = members.len() as u64;
        drop(shard);
        self.metrics.fanout.observe(recipients as f64);
        self.metrics.frames_delivered.inc_by(recipients - dropped);
        self.metrics.outbox_drops.inc_by(dropped);
    }
}

impl Inbound for Hub {
    fn deliver(&self, room: &str, payload: Bytes) {
        self.metrics.backplane_received.inc();
        let envelope = match Envelope::decode(&payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                self.metrics.backplane_undecodable.inc();
                tracing::warn!(%error, room, "dropping undecodable backplane message");
                return;
            }
        };
        match &envelope.body {
            EnvelopeBody::Message(message) => self.fan_out(room, &ServerEvent::Message(message)),
        }
    }
}

/// Turns an encoded event into a WebSocket message.
pub fn ws_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.into()),
        Frame::Binary(bytes) => Message::Binary(bytes.into()),
    }
}

//! The room parts of the in-process bus: log, read markers and pub/sub, all
//! state of the room table (`rooms.rs`).

use std::{sync::Arc, time::Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;

use super::{
    relay::{Item, NodeLink},
    rooms::{Entry, Rooms, Subscriber},
};
use crate::{
    BackplaneError, Change, Changed, Delivery, MARKERS_MAX, Marked, Outgoing, Page, Position,
    PubSub, Published, Read, ReadMarkers, RoomLog,
};

/// One node's room parts.
pub(super) struct MemoryRooms {
    /// The node's link to the bus.
    node: Arc<NodeLink>,
    /// The bus's rooms.
    rooms: Arc<Rooms>,
}

impl MemoryRooms {
    pub(super) fn new(node: Arc<NodeLink>, rooms: Arc<Rooms>) -> Self {
        Self { node, rooms }
    }

    fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    fn read_page(
        &self,
        room: &RoomName,
        read: Read,
        reader: Option<&str>,
    ) -> Result<Page, BackplaneError> {
        self.node.check_open()?;
        self.rooms()
            .with_room(room, |state| state.page(&read, reader))
    }
}

#[async_trait]
impl RoomLog for MemoryRooms {
    async fn publish(
        &self,
        room: &RoomName,
        message: Outgoing,
    ) -> Result<Published, BackplaneError> {
        self.node.check_open()?;
        let window = self.rooms().settings.dedup_window;
        let max_len = self.rooms().settings.max_len;
        // Storing and queueing under the shard lock gives every node the same order per room.
        Ok(self.rooms().with_room(room, |state| {
            if let Some((seq, reply)) = message
                .dedup
                .as_ref()
                .and_then(|dedup| state.dedup.get(&dedup.key))
            {
                return Published::Duplicate {
                    epoch: state.epoch,
                    seq: *seq,
                    reply: reply.clone(),
                };
            }
            let now = Instant::now();
            state.seq += 1;
            state.touched = now;
            let seq = state.seq;
            if let Some(dedup) = message.dedup {
                state
                    .dedup_order
                    .push_back((now + window, dedup.key.clone()));
                state.dedup.insert(dedup.key, (seq, dedup.reply));
            }
            state.log.push_back(Entry {
                seq,
                ts: message.ts,
                id: message.id,
                sender: message.sender,
                change: false,
                payload: message.payload.clone(),
            });
            if state.log.len() as u64 > max_len {
                state.log.pop_front();
            }
            let delivery = Delivery {
                epoch: state.epoch,
                seq,
                payload: message.payload,
            };
            state.relay(room, Item::Message(delivery));
            Published::New(state.position())
        }))
    }

    async fn change(&self, room: &RoomName, change: Change) -> Result<Changed, BackplaneError> {
        self.node.check_open()?;
        Ok(self.rooms().with_room(room, |state| {
            let changed = state.apply(&change, Instant::now());
            if let Changed::Applied(position) = changed {
                let delivery = Delivery {
                    epoch: position.epoch,
                    seq: position.seq,
                    payload: change.payload.clone(),
                };
                state.relay(room, Item::Message(delivery));
            }
            changed
        }))
    }

    async fn read(&self, room: &RoomName, read: Read) -> Result<Page, BackplaneError> {
        self.read_page(room, read, None)
    }

    async fn read_as(
        &self,
        room: &RoomName,
        read: Read,
        user: &str,
    ) -> Result<Page, BackplaneError> {
        self.read_page(room, read, Some(user))
    }

    async fn positions(&self, rooms: &[RoomName]) -> Result<Vec<Position>, BackplaneError> {
        self.node.check_open()?;
        Ok(rooms
            .iter()
            .map(|room| self.rooms().with_room(room, |state| state.position()))
            .collect())
    }
}

#[async_trait]
impl ReadMarkers for MemoryRooms {
    async fn mark(
        &self,
        room: &RoomName,
        user: &str,
        mark: Position,
        signal: Bytes,
    ) -> Result<Marked, BackplaneError> {
        self.node.check_open()?;
        Ok(self.rooms().with_room(room, |state| {
            let head = state.position();
            if mark.epoch != head.epoch {
                return Marked::OtherEpoch(head);
            }
            if mark.seq > head.seq {
                return Marked::BeyondHead(head);
            }
            let current = state.reads.get(user).copied().unwrap_or(0);
            if mark.seq <= current {
                return Marked::Unchanged(current);
            }
            state.reads.insert(user.to_owned(), mark.seq);
            state.relay(room, Item::Signal(signal));
            Marked::Moved(mark.seq)
        }))
    }

    async fn marker(
        &self,
        room: &RoomName,
        user: &str,
    ) -> Result<Option<Position>, BackplaneError> {
        self.node.check_open()?;
        Ok(self.rooms().with_room(room, |state| {
            state.reads.get(user).map(|&seq| Position {
                epoch: state.epoch,
                seq,
            })
        }))
    }

    async fn markers(&self, room: &RoomName) -> Result<Vec<(String, Position)>, BackplaneError> {
        self.node.check_open()?;
        Ok(self.rooms().with_room(room, |state| {
            let epoch = state.epoch;
            let mut markers: Vec<(String, Position)> = state
                .reads
                .iter()
                .map(|(user, &seq)| (user.clone(), Position { epoch, seq }))
                .collect();
            markers.sort_by(|a, b| b.1.seq.cmp(&a.1.seq).then_with(|| a.0.cmp(&b.0)));
            markers.truncate(MARKERS_MAX);
            markers
        }))
    }
}

#[async_trait]
impl PubSub for MemoryRooms {
    async fn subscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        self.node.check_open()?;
        let node = &self.node;
        self.rooms().with_room(room, |state| {
            if !state.subscribers.iter().any(|s| s.node == node.node) {
                state.subscribers.push(Subscriber {
                    node: node.node,
                    queue: node.queue.clone(),
                });
            }
        });
        Ok(())
    }

    async fn unsubscribe(&self, room: &RoomName) -> Result<(), BackplaneError> {
        let node = self.node.node;
        self.rooms().with_existing(room, |state| {
            state.subscribers.retain(|s| s.node != node);
        });
        Ok(())
    }

    async fn signal(&self, room: &RoomName, payload: Bytes) -> Result<(), BackplaneError> {
        self.node.check_open()?;
        self.rooms()
            .with_room(room, |state| state.relay(room, Item::Signal(payload)));
        Ok(())
    }

    fn is_ready(&self) -> bool {
        self.node.is_open()
    }

    async fn shutdown(&self) {
        self.node.close();
        let node = self.node.node;
        self.rooms()
            .for_each(|state| state.subscribers.retain(|s| s.node != node));
    }
}

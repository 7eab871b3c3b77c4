//! Who is in which room, across nodes.
//!
//! The node counts its own connections per room and user. A user's first local
//! connection in a room adds the node's entry for them on the backplane (the
//! backplane relays `join` when it is the user's first entry anywhere); the
//! last one removes it (`leave` when it was the last anywhere). A task
//! refreshes every local entry every third of `--presence-ttl`; entries of a
//! node that died stop being refreshed and the next refresh of any surviving
//! node in the room ends them, relaying their `leave`.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use chorus_backplane::PresenceEntry;
use chorus_protocol::{Envelope, PresenceSignal, RoomName, Sender, StatusSignal};
use parking_lot::Mutex;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{hub::StatusChange, node::Node};

/// Status changes waiting to be relayed; past it they are dropped (counted
/// as dropped signals): a status is best effort, like typing.
pub const STATUS_QUEUE: usize = 1024;

/// The local users of one room: user id -> (their connections in it, who they are).
type LocalUsers = HashMap<Arc<str>, (usize, Sender)>;

/// Local connections per room and user.
#[derive(Default)]
pub struct Presence {
    /// Room -> its local users.
    rooms: Mutex<HashMap<RoomName, LocalUsers>>,
}

impl Presence {
    /// Counts a connection of `user` into `room`; `true` for the first local one.
    pub fn enter(&self, room: &RoomName, user: &Sender) -> bool {
        let mut rooms = self.rooms.lock();
        let users = rooms.entry(room.clone()).or_default();
        match users.get_mut(user.id.as_str()) {
            Some((count, _)) => {
                *count += 1;
                false
            }
            None => {
                users.insert(Arc::from(user.id.as_str()), (1, user.clone()));
                true
            }
        }
    }

    /// Counts a connection of `user` out of `room`; `true` for the last local one.
    pub fn exit(&self, room: &RoomName, user: &str) -> bool {
        let mut rooms = self.rooms.lock();
        let Some(users) = rooms.get_mut(room) else {
            return false;
        };
        let Some((count, _)) = users.get_mut(user) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        users.remove(user);
        if users.is_empty() {
            rooms.remove(room);
        }
        true
    }

    /// Rooms where `user` has a local connection.
    fn rooms_of(&self, user: &str) -> Vec<RoomName> {
        let rooms = self.rooms.lock();
        rooms
            .iter()
            .filter(|(_, users)| users.contains_key(user))
            .map(|(room, _)| room.clone())
            .collect()
    }

    /// Every local (room, users) pair, for a refresh.
    fn snapshot(&self) -> Vec<(RoomName, Vec<Sender>)> {
        let rooms = self.rooms.lock();
        rooms
            .iter()
            .map(|(room, users)| {
                (
                    room.clone(),
                    users.values().map(|(_, u)| u.clone()).collect(),
                )
            })
            .collect()
    }
}

/// The backplane entry of `user` in `room`, with its join and leave signals.
pub fn entry(node_id: &str, room: &RoomName, user: &Sender) -> PresenceEntry {
    let signal = |online| -> Bytes {
        let signal = PresenceSignal {
            room: room.clone(),
            user: user.clone(),
            online,
        };
        Envelope::presence(node_id, signal).encode()
    };
    PresenceEntry {
        user: user.id.clone(),
        join: signal(true),
        leave: signal(false),
    }
}

/// Refreshes this node's entries until the node stops.
pub fn start(node: Arc<Node>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let ttl = node.config.ops.presence_ttl;
        let stopped = node.drain.stopped();
        let mut ticks = tokio::time::interval(ttl / 3);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = ticks.tick() => refresh(&node, ttl).await,
            }
        }
    })
}

/// Sends the hub's gathered presence changes every [`crate::hub::PRESENCE_FLUSH`]
/// (a task of its own: a slow refresh never delays them).
pub fn flush(node: Arc<Node>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stopped = node.drain.stopped();
        let mut flushes = tokio::time::interval(crate::hub::PRESENCE_FLUSH);
        flushes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = flushes.tick() => node.hub.flush_presence(),
            }
        }
    })
}

/// Relays each local user's status change to the rooms the user is in on
/// this node (every node with the user does the same for its rooms, so a room
/// where the user is on two nodes hears it twice: a state, applied idempotently).
pub fn relay_statuses(
    node: Arc<Node>,
    mut changes: mpsc::Receiver<StatusChange>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stopped = node.drain.stopped();
        loop {
            let change = tokio::select! {
                () = stopped.cancelled() => break,
                change = changes.recv() => match change {
                    Some(change) => change,
                    None => break,
                },
            };
            let node_id = node.config.node_id.as_str();
            for room in node.presence.rooms_of(&change.user.id) {
                let signal = StatusSignal {
                    room: room.clone(),
                    user: change.user.clone(),
                    status: change.status.clone(),
                };
                let payload = Envelope::status(node_id, signal).encode();
                if let Err(error) = node.backplane.signal(&room, payload).await {
                    tracing::debug!(%error, %room, "status not relayed");
                }
            }
        }
    })
}

async fn refresh(node: &Node, ttl: Duration) {
    let node_id = node.config.node_id.as_str();
    for (room, users) in node.presence.snapshot() {
        let entries = users.iter().map(|u| entry(node_id, &room, u)).collect();
        if let Err(error) = node
            .backplane
            .presence_up(&room, node_id, entries, ttl)
            .await
        {
            tracing::debug!(%error, %room, "presence not refreshed");
        }
    }
}

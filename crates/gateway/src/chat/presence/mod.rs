//! Who is in which room, across nodes.
//!
//! The node counts its own connections per room and user ([`LocalPresence`]).
//! A user's first local connection in a room adds the node's entry for them
//! on the backplane (the backplane relays `join` when it is the user's first
//! entry anywhere); the last one removes it (`leave` when it was the last
//! anywhere). A task refreshes every local entry every third of
//! `--presence-ttl`; entries of a node that died stop being refreshed and the
//! next call of any surviving node in the room ends them, relaying their
//! `leave`. Joins and leaves reach members in batches ([`batch`]).

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use chorus_backplane::PresenceEntry;
use chorus_protocol::{Envelope, PresenceSignal, RoomName, Sender};
use parking_lot::Mutex;

mod batch;
pub mod tasks;

pub use batch::{PRESENCE_FLUSH, PresenceBatches};

/// The local users of one room: user id -> (their connections in it, who they are).
type LocalUsers = HashMap<Arc<str>, (usize, Sender)>;

/// Local connections per room and user.
#[derive(Default)]
pub struct LocalPresence {
    /// Room -> its local users.
    rooms: Mutex<HashMap<RoomName, LocalUsers>>,
}

impl LocalPresence {
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
    pub fn rooms_of(&self, user: &str) -> Vec<RoomName> {
        let rooms = self.rooms.lock();
        rooms
            .iter()
            .filter(|(_, users)| users.contains_key(user))
            .map(|(room, _)| room.clone())
            .collect()
    }

    /// Every local (room, users) pair, for a refresh.
    pub fn snapshot(&self) -> Vec<(RoomName, Vec<Sender>)> {
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

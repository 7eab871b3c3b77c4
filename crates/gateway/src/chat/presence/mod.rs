//! Who is in which room, across nodes.
//!
//! The node counts its own connections per room and user ([`LocalPresence`]).
//! A user's first local connection in a room adds the node's entry for them
//! on the backplane (the backplane relays `join` when it is the user's first
//! entry anywhere); the last one removes it (`leave` when it was the last
//! anywhere). Departures are gathered and ended by one task, a call per room
//! for everyone who left it meanwhile, so a thousand clients leaving at once
//! do not cost a task each. A task refreshes every local entry every third of
//! `--presence-ttl`; entries of a node that died stop being refreshed and the
//! next call of any surviving node in the room ends them, relaying their
//! `leave`. Joins and leaves reach members in batches ([`batch`]).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use bytes::Bytes;
use chorus_backplane::PresenceEntry;
use chorus_protocol::{Envelope, PresenceSignal, RoomName, Sender};
use parking_lot::Mutex;
use tokio::sync::Notify;

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
    /// Room -> users whose last local connection in it ended, waiting for the
    /// departures task to end their entries (bounded by the entries there were).
    departed: Mutex<HashMap<RoomName, HashSet<Arc<str>>>>,
    /// Wakes the departures task.
    departures: Notify,
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

    /// Counts a connection of `user` out of `room`; after the last local
    /// one the user departs: the departures task ends their entry.
    pub fn exit(&self, room: &RoomName, user: &str) {
        let mut rooms = self.rooms.lock();
        let Some(users) = rooms.get_mut(room) else {
            return;
        };
        let Some((count, _)) = users.get_mut(user) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        let Some((user, _)) = users.remove_entry(user) else {
            return;
        };
        if users.is_empty() {
            rooms.remove(room);
        }
        // Taken after `rooms`; `take_departed` never holds both.
        self.departed
            .lock()
            .entry(room.clone())
            .or_default()
            .insert(user);
        self.departures.notify_one();
    }

    /// Resolves when users departed since the last [`Self::take_departed`].
    pub async fn departed(&self) {
        self.departures.notified().await;
    }

    /// The departures gathered so far, by room, without the users that came
    /// back meanwhile (their entry stays).
    pub fn take_departed(&self) -> Vec<(RoomName, Vec<String>)> {
        let departed = std::mem::take(&mut *self.departed.lock());
        let rooms = self.rooms.lock();
        departed
            .into_iter()
            .filter_map(|(room, users)| {
                let back = rooms.get(&room);
                let users: Vec<String> = users
                    .into_iter()
                    .filter(|user| back.is_none_or(|back| !back.contains_key(user)))
                    .map(|user| user.to_string())
                    .collect();
                (!users.is_empty()).then_some((room, users))
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> Sender {
        Sender {
            id: id.into(),
            name: None,
            avatar: None,
        }
    }

    #[test]
    fn departures_are_gathered_by_room_without_those_who_came_back() {
        let local = LocalPresence::default();
        let (lobby, games) = (
            RoomName::parse("lobby").unwrap(),
            RoomName::parse("games").unwrap(),
        );
        for (room, id) in [(&lobby, "ann"), (&lobby, "ann"), (&lobby, "bob")] {
            local.enter(room, &user(id));
        }
        local.enter(&games, &user("cy"));
        local.enter(&games, &user("dee"));
        // Ann still has a connection in the lobby: not departed.
        local.exit(&lobby, "ann");
        local.exit(&lobby, "bob");
        local.exit(&games, "cy");
        local.exit(&games, "dee");
        // Dee comes back before the departures task runs: her entry stays.
        local.enter(&games, &user("dee"));
        let mut departed = local.take_departed();
        departed.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let names: Vec<(&str, Vec<String>)> = departed
            .iter()
            .map(|(room, users)| (room.as_str(), users.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("games", vec!["cy".to_owned()]),
                ("lobby", vec!["bob".to_owned()])
            ]
        );
        assert!(local.take_departed().is_empty(), "taken once");
    }
}

//! Who is in which room, across nodes.
//!
//! The node counts its own connections per room and user ([`LocalPresence`]).
//! A user's first local connection in a room adds the node's entry for them
//! on the backplane (the backplane relays `join` when it is the user's first
//! entry anywhere); the last one removes it (`leave` when it was the last
//! anywhere). Arrivals and departures are gathered and written by one task,
//! a call per room for everyone who came or left meanwhile, so a join never
//! waits for it and a thousand clients coming or leaving at once cost a call
//! per room, not a task or a round trip each. A task refreshes every local entry every third of
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

/// A room's presence changes waiting for the presence task.
#[derive(Default)]
struct Changes {
    /// Users whose first local connection came: their entry is to be added.
    arrived: HashSet<Arc<str>>,
    /// Users whose last local connection went: their entry is to be ended.
    departed: HashSet<Arc<str>>,
}

/// Local connections per room and user.
#[derive(Default)]
pub struct LocalPresence {
    /// Room -> its local users.
    rooms: Mutex<HashMap<RoomName, LocalUsers>>,
    /// Room -> arrivals and departures waiting for the presence task (bounded
    /// by the local users there are and were).
    changes: Mutex<HashMap<RoomName, Changes>>,
    /// Wakes the presence task.
    changed: Notify,
}

/// What the presence task writes in one round.
#[derive(Debug, Default)]
pub struct Taken {
    /// Per room, the departed users still gone: end their entries.
    pub departed: Vec<(RoomName, Vec<String>)>,
    /// Per room, the arrived users still here: add their entries.
    pub arrived: Vec<(RoomName, Vec<Sender>)>,
}

impl LocalPresence {
    /// Counts a connection of `user` into `room`; the first local one is an
    /// arrival, which the presence task writes.
    pub fn enter(&self, room: &RoomName, user: &Sender) {
        let mut rooms = self.rooms.lock();
        let users = rooms.entry(room.clone()).or_default();
        match users.get_mut(user.id.as_str()) {
            Some((count, _)) => *count += 1,
            None => {
                let id: Arc<str> = Arc::from(user.id.as_str());
                users.insert(id.clone(), (1, user.clone()));
                // Taken after `rooms`; `take_changes` never holds both.
                let mut changes = self.changes.lock();
                changes.entry(room.clone()).or_default().arrived.insert(id);
                self.changed.notify_one();
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
        // Taken after `rooms`; `take_changes` never holds both.
        let mut changes = self.changes.lock();
        let room_changes = changes.entry(room.clone()).or_default();
        // An arrival not written yet was never announced: it just goes.
        if !room_changes.arrived.remove(&user) {
            room_changes.departed.insert(user);
            self.changed.notify_one();
        }
    }

    /// Resolves when users arrived or departed since the last
    /// [`Self::take_changes`].
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The arrivals and departures gathered so far, by room: departures
    /// without the users that came back meanwhile (their entry stays),
    /// arrivals without those that left again.
    pub fn take_changes(&self) -> Taken {
        let changes = std::mem::take(&mut *self.changes.lock());
        let rooms = self.rooms.lock();
        let mut taken = Taken::default();
        for (room, changes) in changes {
            let here = rooms.get(&room);
            let departed: Vec<String> = changes
                .departed
                .into_iter()
                .filter(|user| here.is_none_or(|here| !here.contains_key(user)))
                .map(|user| user.to_string())
                .collect();
            let arrived: Vec<Sender> = changes
                .arrived
                .into_iter()
                .filter_map(|user| Some(here?.get(&user)?.1.clone()))
                .collect();
            if !departed.is_empty() {
                taken.departed.push((room.clone(), departed));
            }
            if !arrived.is_empty() {
                taken.arrived.push((room, arrived));
            }
        }
        taken
    }

    /// The local users of `room`.
    pub fn users_in(&self, room: &RoomName) -> Vec<Sender> {
        let rooms = self.rooms.lock();
        rooms
            .get(room)
            .map(|users| users.values().map(|(_, user)| user.clone()).collect())
            .unwrap_or_default()
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

    /// The first `limit` rooms with local users named after `after`, in
    /// name order.
    pub fn rooms_after(&self, after: Option<&str>, limit: usize) -> Vec<RoomName> {
        let rooms = self.rooms.lock();
        let mut names: Vec<RoomName> = rooms
            .keys()
            .filter(|room| after.is_none_or(|after| room.as_str() > after))
            .cloned()
            .collect();
        drop(rooms);
        if names.len() > limit {
            names.select_nth_unstable(limit);
            names.truncate(limit);
        }
        names.sort_unstable();
        names
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
            kind: None,
        }
    }

    /// Room names with user ids, sorted.
    type Named = Vec<(String, Vec<String>)>;

    /// Room names and user ids of what was taken (departed, arrived), sorted.
    fn names(taken: &Taken) -> (Named, Named) {
        let sorted = |mut rooms: Named| {
            rooms.iter_mut().for_each(|(_, users)| users.sort());
            rooms.sort();
            rooms
        };
        let departed = taken
            .departed
            .iter()
            .map(|(room, users)| (room.to_string(), users.clone()));
        let arrived = taken.arrived.iter().map(|(room, users)| {
            (
                room.to_string(),
                users.iter().map(|u| u.id.clone()).collect(),
            )
        });
        (sorted(departed.collect()), sorted(arrived.collect()))
    }

    fn owned(rooms: &[(&str, &[&str])]) -> Named {
        rooms
            .iter()
            .map(|(room, users)| {
                (
                    room.to_string(),
                    users.iter().map(|u| u.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn changes_are_gathered_by_room_without_those_who_changed_back() {
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
        // Eve comes and goes before the task runs: never announced, never ended.
        local.enter(&games, &user("eve"));
        local.exit(&games, "eve");
        let (departed, arrived) = names(&local.take_changes());
        assert!(departed.is_empty());
        assert_eq!(
            arrived,
            owned(&[("games", &["cy", "dee"]), ("lobby", &["ann", "bob"])])
        );

        // Ann still has a connection in the lobby: not departed.
        local.exit(&lobby, "ann");
        local.exit(&lobby, "bob");
        local.exit(&games, "cy");
        local.exit(&games, "dee");
        // Dee comes back before the task runs: her entry stays (and is
        // written again).
        local.enter(&games, &user("dee"));
        let (departed, arrived) = names(&local.take_changes());
        assert_eq!(departed, owned(&[("games", &["cy"]), ("lobby", &["bob"])]));
        assert_eq!(arrived, owned(&[("games", &["dee"])]));
        let (departed, arrived) = names(&local.take_changes());
        assert!(departed.is_empty() && arrived.is_empty(), "taken once");
    }
}

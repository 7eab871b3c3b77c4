//! Presence on the in-process bus, with the rules of `presence.lua`: entries
//! per (node, user) that expire unless refreshed, every call first ending the
//! room's expired ones (several nodes may share one bus, and one may stop
//! without leaving).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;
use parking_lot::Mutex;

use super::{
    relay::{Item, NodeLink},
    rooms::Rooms,
};
use crate::{BackplaneError, PresenceEntry, PresenceStore};

/// Who is in each room.
#[derive(Default)]
pub(super) struct Present(Mutex<HashMap<RoomName, RoomPresence>>);

/// One room's present users: user id -> their entries.
type RoomPresence = HashMap<String, PresentUser>;

/// One user present in a room.
struct PresentUser {
    /// The nodes with an entry for the user, and when each expires.
    nodes: Vec<(String, Instant)>,
    /// Relayed when the last entry goes.
    leave: Bytes,
}

/// One node's view of [`Present`].
pub(super) struct MemoryPresence {
    /// The node's link to the bus.
    node: Arc<NodeLink>,
    /// The bus's presence.
    present: Arc<Present>,
    /// The bus's rooms, whose subscribers hear presence signals.
    rooms: Arc<Rooms>,
}

impl MemoryPresence {
    pub(super) fn new(node: Arc<NodeLink>, present: Arc<Present>, rooms: Arc<Rooms>) -> Self {
        Self {
            node,
            present,
            rooms,
        }
    }

    /// Runs `f` on `room`'s presence after ending its expired entries, then
    /// relays the leaves of the expired and the signals `f` adds, in order,
    /// still under the lock (so two calls' signals cannot cross).
    fn with_room<R>(
        &self,
        room: &RoomName,
        f: impl FnOnce(&mut RoomPresence, &mut Vec<Bytes>) -> R,
    ) -> Result<R, BackplaneError> {
        self.node.check_open()?;
        let mut signals = Vec::new();
        let mut all = self.present.0.lock();
        let users = all.entry(room.clone()).or_default();
        let now = Instant::now();
        users.retain(|_, user| {
            user.nodes.retain(|(_, expiry)| *expiry > now);
            let present = !user.nodes.is_empty();
            if !present {
                signals.push(user.leave.clone());
            }
            present
        });
        let result = f(users, &mut signals);
        if users.is_empty() {
            all.remove(room);
        }
        if !signals.is_empty() {
            self.rooms.with_existing(room, |state| {
                for signal in signals {
                    state.relay(room, Item::Signal(signal));
                }
            });
        }
        Ok(result)
    }
}

#[async_trait]
impl PresenceStore for MemoryPresence {
    async fn up(
        &self,
        room: &RoomName,
        node: &str,
        entries: Vec<PresenceEntry>,
        ttl: Duration,
    ) -> Result<Vec<Bytes>, BackplaneError> {
        let expiry = Instant::now() + ttl;
        self.with_room(room, |users, signals| {
            for entry in entries {
                let user = users.entry(entry.user).or_insert_with(|| PresentUser {
                    nodes: Vec::new(),
                    leave: entry.leave.clone(),
                });
                match user.nodes.iter_mut().find(|(n, _)| n == node) {
                    // A refresh extends the entry.
                    Some((_, until)) => *until = expiry,
                    None => {
                        user.nodes.push((node.to_owned(), expiry));
                        user.leave = entry.leave;
                        if user.nodes.len() == 1 {
                            signals.push(entry.join);
                        }
                    }
                }
            }
            signals.clone()
        })
    }

    async fn down(
        &self,
        room: &RoomName,
        node: &str,
        users: Vec<String>,
    ) -> Result<Vec<Bytes>, BackplaneError> {
        self.with_room(room, |present, signals| {
            for id in users {
                if let Some(user) = present.get_mut(&id) {
                    user.nodes.retain(|(n, _)| n != node);
                    if user.nodes.is_empty() {
                        signals.push(user.leave.clone());
                        present.remove(&id);
                    }
                }
            }
            signals.clone()
        })
    }

    async fn list(&self, room: &RoomName, max: usize) -> Result<(u64, Vec<Bytes>), BackplaneError> {
        self.with_room(room, |users, _| {
            let leaves = users.values().take(max).map(|user| user.leave.clone());
            (users.len() as u64, leaves.collect())
        })
    }
}

//! Presence on the in-process bus: one process, so nodes end only by leaving
//! and nothing needs to expire. Returns the signals to relay; the caller
//! relays them outside the lock.

use std::collections::HashMap;

use bytes::Bytes;
use chorus_protocol::RoomName;

use super::MemoryBus;
use crate::PresenceEntry;

/// Who is in one room: user -> (nodes with the user present, leave signal).
pub(super) type RoomPresence = HashMap<String, (Vec<String>, Bytes)>;

impl MemoryBus {
    /// Adds `node`'s entries; the join signals of users new to the room.
    pub(super) fn presence_up(
        &self,
        room: &RoomName,
        node: &str,
        entries: Vec<PresenceEntry>,
    ) -> Vec<Bytes> {
        let mut joined = Vec::new();
        let mut presence = self.inner.presence.lock();
        let users = presence.entry(room.clone()).or_default();
        for entry in entries {
            let (nodes, leave) = users
                .entry(entry.user)
                .or_insert_with(|| (Vec::new(), entry.leave.clone()));
            if !nodes.iter().any(|n| n == node) {
                nodes.push(node.to_owned());
                *leave = entry.leave;
                if nodes.len() == 1 {
                    joined.push(entry.join);
                }
            }
        }
        joined
    }

    /// Removes `node`'s entries of `users`; the leave signals of users now gone.
    pub(super) fn presence_down(
        &self,
        room: &RoomName,
        node: &str,
        users: Vec<String>,
    ) -> Vec<Bytes> {
        let mut left = Vec::new();
        let mut presence = self.inner.presence.lock();
        if let Some(present) = presence.get_mut(room) {
            for user in users {
                if let Some((nodes, leave)) = present.get_mut(&user) {
                    nodes.retain(|n| n != node);
                    if nodes.is_empty() {
                        left.push(leave.clone());
                        present.remove(&user);
                    }
                }
            }
            if present.is_empty() {
                presence.remove(room);
            }
        }
        left
    }

    /// How many users are present in `room`, and the leave signals of at most `max`.
    pub(super) fn presence_list(&self, room: &RoomName, max: usize) -> (u64, Vec<Bytes>) {
        let presence = self.inner.presence.lock();
        presence.get(room).map_or((0, Vec::new()), |users| {
            let leaves = users.values().take(max).map(|(_, leave)| leave.clone());
            (users.len() as u64, leaves.collect())
        })
    }
}

//! Presence changes are batched per room: each node gathers a room's joins
//! and leaves and sends its members one `presence` event per flush (every
//! [`PRESENCE_FLUSH`], at most 100 users per event). A room filling up with n
//! users then costs each member n/100 events, not n: without batching, 2,000
//! users joining one room made 2,000,000 frames and connecting four times
//! slower (docs/benchmarks.md).

use std::{collections::HashSet, sync::Arc, time::Duration};

use chorus_protocol::{PresenceSignal, RoomName, Sender, ServerEvent};
use indexmap::IndexMap;
use parking_lot::Mutex;

use super::{Hub, push_state};

/// How often gathered presence changes go out.
pub const PRESENCE_FLUSH: Duration = Duration::from_millis(250);
/// Most users one event lists (a few KiB): a larger batch goes out as several
/// events, since every connection's write buffer keeps the size of the largest
/// frame it ever sent.
const USERS_PER_EVENT: usize = 100;

/// A room's presence changes since the last flush: user id -> (who, present),
/// the latest state of each user only.
pub(super) type PendingPresence = IndexMap<Arc<str>, (Sender, bool)>;

/// Rooms with changes waiting for the next flush.
#[derive(Default)]
pub(super) struct DueRooms(Mutex<HashSet<RoomName>>);

impl Hub {
    /// Keeps a presence change for the room's next flush (the shard is locked
    /// by the caller).
    pub(super) fn gather_presence(&self, pending: &mut PendingPresence, signal: PresenceSignal) {
        if pending.is_empty() {
            self.presence_due.0.lock().insert(signal.room.clone());
        }
        pending.insert(
            Arc::from(signal.user.id.as_str()),
            (signal.user, signal.online),
        );
    }

    /// Sends every room's gathered changes to its members: one event per room
    /// and [`USERS_PER_EVENT`] users.
    pub fn flush_presence(&self) {
        let due = std::mem::take(&mut *self.presence_due.0.lock());
        for room in due {
            let mut shard = self.shard(room.as_str()).lock();
            let Some(entry) = shard.get_mut(&room) else {
                continue;
            };
            let pending = std::mem::take(&mut entry.presence);
            let (mut joins, mut leaves) = (Vec::new(), Vec::new());
            for (_, (user, present)) in pending {
                if present {
                    joins.push(user);
                } else {
                    leaves.push(user);
                }
            }
            let parts = joins.len().max(leaves.len()).div_ceil(USERS_PER_EVENT);
            for part in 0..parts {
                let slice = |users: &[Sender]| -> std::ops::Range<usize> {
                    let start = (part * USERS_PER_EVENT).min(users.len());
                    start..(start + USERS_PER_EVENT).min(users.len())
                };
                let event = ServerEvent::Presence {
                    room: &room,
                    joins: &joins[slice(&joins)],
                    leaves: &leaves[slice(&leaves)],
                };
                push_state(&mut entry.members, &event);
            }
        }
    }
}

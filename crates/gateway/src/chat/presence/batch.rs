//! Presence changes are batched per room: each node gathers a room's joins
//! and leaves and sends its members one `presence` event per flush (every
//! [`PRESENCE_FLUSH`], at most 100 users per event). A room filling up with n
//! users then costs each member n/100 events, not n: without batching, 2,000
//! users joining one room made 2,000,000 frames and connecting four times
//! slower (docs/benchmarks.md).

use std::{collections::HashMap, sync::Arc, time::Duration};

use chorus_protocol::{PresenceSignal, RoomName, Sender, ServerEvent};
use indexmap::IndexMap;
use parking_lot::Mutex;

use crate::chat::hub::Hub;

/// How often gathered presence changes go out.
pub const PRESENCE_FLUSH: Duration = Duration::from_millis(250);
/// Most users one event lists (a few KiB): a larger batch goes out as several
/// events, since every connection's write buffer keeps the size of the largest
/// frame it ever sent.
const USERS_PER_EVENT: usize = 100;

/// A room's presence changes since the last flush: user id -> (who, present),
/// the latest state of each user only.
type Pending = IndexMap<Arc<str>, (Sender, bool)>;

/// The presence changes of every room since the last flush. Bounded by the
/// users of the rooms this node hears within one flush interval.
#[derive(Default)]
pub struct PresenceBatches(Mutex<HashMap<RoomName, Pending>>);

impl PresenceBatches {
    /// Keeps a presence change for the room's next flush.
    pub fn gather(&self, room: &RoomName, signal: PresenceSignal) {
        let mut rooms = self.0.lock();
        let pending = rooms.entry(room.clone()).or_default();
        pending.insert(
            Arc::from(signal.user.id.as_str()),
            (signal.user, signal.online),
        );
    }

    /// Sends every room's gathered changes to its members: one event per room
    /// and [`USERS_PER_EVENT`] users.
    pub fn flush(&self, hub: &Hub) {
        let due = std::mem::take(&mut *self.0.lock());
        for (room, pending) in due {
            let (mut joins, mut leaves) = (Vec::new(), Vec::new());
            for (_, (user, present)) in pending {
                if present {
                    joins.push(user);
                } else {
                    leaves.push(user);
                }
            }
            let parts = joins.len().max(leaves.len()).div_ceil(USERS_PER_EVENT);
            hub.with_members(&room, |members| {
                for part in 0..parts {
                    let slice = |users: &[Sender]| -> std::ops::Range<usize> {
                        let start = (part * USERS_PER_EVENT).min(users.len());
                        start..(start + USERS_PER_EVENT).min(users.len())
                    };
                    members.push_state(&ServerEvent::Presence {
                        room: &room,
                        joins: &joins[slice(&joins)],
                        leaves: &leaves[slice(&leaves)],
                    });
                }
            });
        }
    }
}

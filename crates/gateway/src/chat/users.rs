//! Per-user state on one node: connection count and the user's shared rate buckets.
//!
//! An entry lives exactly as long as the user has a connection here, so the map
//! is bounded by the node's connections.

use std::{collections::HashMap, sync::Arc};

use parking_lot::Mutex;

use crate::auth::{Bucket, RateLimits};

/// The users connected to this node.
pub struct Users {
    /// User id → state; one lock, taken only on authenticate and on close.
    map: Mutex<HashMap<Arc<str>, Arc<UserState>>>,
    /// Most connections one user may hold here.
    max_per_user: usize,
    /// Rates that shape each user's buckets.
    rates: RateLimits,
}

/// What one user's connections on this node share.
pub struct UserState {
    /// Sends across the user's connections.
    pub send: Bucket,
    /// Joins and leaves across the user's connections.
    pub join: Bucket,
    /// Connections the user holds here (guarded by the map's lock).
    connections: Mutex<usize>,
}

/// A connection's claim on its user's entry; released on drop.
pub struct UserLease {
    /// The registry to release into.
    users: Arc<Users>,
    /// The user id.
    id: Arc<str>,
    /// The shared state.
    pub state: Arc<UserState>,
}

impl Users {
    /// An empty registry.
    pub fn new(max_per_user: usize, rates: RateLimits) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(HashMap::new()),
            max_per_user,
            rates,
        })
    }

    /// Registers one more connection of `id`, unless the user is at the limit.
    pub fn acquire(self: &Arc<Self>, id: &str) -> Option<UserLease> {
        let mut map = self.map.lock();
        let state = map.entry(Arc::from(id)).or_insert_with(|| {
            Arc::new(UserState {
                send: Bucket::new(self.rates.user_send),
                join: Bucket::new(self.rates.user_join),
                connections: Mutex::new(0),
            })
        });
        let mut count = state.connections.lock();
        if *count >= self.max_per_user {
            return None;
        }
        *count += 1;
        drop(count);
        let state = state.clone();
        Some(UserLease {
            users: self.clone(),
            id: Arc::from(id),
            state,
        })
    }

    /// Users with at least one connection here.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether no user is connected.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for UserLease {
    fn drop(&mut self) {
        let mut map = self.users.map.lock();
        let mut count = self.state.connections.lock();
        *count -= 1;
        if *count == 0 {
            drop(count);
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_connections_per_user_and_forgets_users_who_left() {
        let users = Users::new(2, RateLimits::default());
        let a1 = users.acquire("a").unwrap();
        let a2 = users.acquire("a").unwrap();
        assert!(users.acquire("a").is_none());
        let b = users.acquire("b").unwrap();
        assert_eq!(users.len(), 2);
        drop(a1);
        let a3 = users.acquire("a").unwrap();
        drop((a2, a3, b));
        assert!(users.is_empty());
    }
}

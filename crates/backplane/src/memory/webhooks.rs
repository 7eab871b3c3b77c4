//! The webhook queue on the in-process bus: one node's (or one test
//! process's) partitions, leases, cursors and dead letters.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::relay::NodeLink;
use crate::{
    BackplaneError,
    webhooks::{
        DEAD_LETTERS_MAX, QueuedEvent, WEBHOOK_PARTITIONS, WEBHOOK_QUEUE_MAX, WebhookQueue,
    },
};

/// The bus's webhook state.
#[derive(Default)]
pub(super) struct Hooks {
    /// Everything, under one lock (webhook traffic is small next to messages).
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Per partition: its events, and the last id given out.
    partitions: HashMap<u32, (VecDeque<QueuedEvent>, u64)>,
    /// Per partition: (node, until).
    leases: HashMap<u32, (String, Instant)>,
    /// `<endpoint>/<partition>` -> last delivered id.
    cursors: HashMap<String, u64>,
    /// Per endpoint: dead letters, oldest first.
    dead: HashMap<String, VecDeque<Bytes>>,
}

/// One node's view of [`Hooks`].
pub(super) struct MemoryHooks {
    /// The node's link to the bus.
    node: Arc<NodeLink>,
    /// The bus's webhook state.
    hooks: Arc<Hooks>,
}

impl MemoryHooks {
    pub(super) fn new(node: Arc<NodeLink>, hooks: Arc<Hooks>) -> Self {
        Self { node, hooks }
    }

    fn state(&self) -> Result<parking_lot::MutexGuard<'_, State>, BackplaneError> {
        self.node.check_open()?;
        Ok(self.hooks.state.lock())
    }
}

fn number(id: &str) -> u64 {
    id.parse().unwrap_or(0)
}

#[async_trait]
impl WebhookQueue for MemoryHooks {
    async fn append(
        &self,
        partition: u32,
        event: Bytes,
        only: Option<&str>,
    ) -> Result<(), BackplaneError> {
        debug_assert!(partition < WEBHOOK_PARTITIONS);
        let mut state = self.state()?;
        let (events, last) = state.partitions.entry(partition).or_default();
        *last += 1;
        events.push_back(QueuedEvent {
            id: last.to_string(),
            event,
            only: only.map(str::to_owned),
        });
        if events.len() > WEBHOOK_QUEUE_MAX {
            events.pop_front();
        }
        Ok(())
    }

    async fn lease(
        &self,
        partition: u32,
        node: &str,
        ttl: Duration,
    ) -> Result<bool, BackplaneError> {
        let mut state = self.state()?;
        let now = Instant::now();
        match state.leases.get(&partition) {
            Some((holder, until)) if holder != node && *until > now => Ok(false),
            _ => {
                state.leases.insert(partition, (node.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn read(
        &self,
        partition: u32,
        after: &str,
        count: usize,
    ) -> Result<Vec<QueuedEvent>, BackplaneError> {
        let state = self.state()?;
        let after = number(after);
        let Some((events, _)) = state.partitions.get(&partition) else {
            return Ok(Vec::new());
        };
        Ok(events
            .iter()
            .filter(|e| number(&e.id) > after)
            .take(count)
            .cloned()
            .collect())
    }

    async fn cursor(&self, partition: u32, endpoint: &str) -> Result<String, BackplaneError> {
        let state = self.state()?;
        let cursor = state.cursors.get(&format!("{endpoint}/{partition}"));
        Ok(cursor.copied().unwrap_or(0).to_string())
    }

    async fn advance(
        &self,
        partition: u32,
        endpoint: &str,
        (node, id): (&str, &str),
    ) -> Result<bool, BackplaneError> {
        let mut state = self.state()?;
        let held = state
            .leases
            .get(&partition)
            .is_some_and(|(holder, until)| holder == node && *until > Instant::now());
        if held {
            state
                .cursors
                .insert(format!("{endpoint}/{partition}"), number(id));
        }
        Ok(held)
    }

    async fn bury(&self, endpoint: &str, event: Bytes) -> Result<(), BackplaneError> {
        let mut state = self.state()?;
        let dead = state.dead.entry(endpoint.to_owned()).or_default();
        dead.push_back(event);
        if dead.len() > DEAD_LETTERS_MAX {
            dead.pop_front();
        }
        Ok(())
    }

    async fn dead_letters(&self, endpoint: &str, max: usize) -> Result<Vec<Bytes>, BackplaneError> {
        let state = self.state()?;
        let dead = state.dead.get(endpoint).into_iter().flatten();
        Ok(dead.take(max).cloned().collect())
    }

    async fn exhume(&self, endpoint: &str, max: usize) -> Result<Vec<Bytes>, BackplaneError> {
        let mut state = self.state()?;
        let Some(dead) = state.dead.get_mut(endpoint) else {
            return Ok(Vec::new());
        };
        let n = max.min(dead.len());
        Ok(dead.drain(..n).collect())
    }

    async fn behind(&self, partition: u32, after: &str) -> Result<u64, BackplaneError> {
        let state = self.state()?;
        let after = number(after);
        let events = state.partitions.get(&partition).map(|(e, _)| e);
        Ok(events.map_or(0, |e| e.iter().filter(|e| number(&e.id) > after).count()) as u64)
    }
}

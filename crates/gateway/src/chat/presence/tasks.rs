//! The node's presence tasks: refreshing its entries, writing arrivals and
//! departures, flushing the gathered changes to members, and relaying its
//! users' status changes to their rooms. Each runs until the node stops.

use std::{sync::Arc, time::Duration};

use chorus_backplane::{PresenceStore, PubSub};
use chorus_protocol::{Envelope, RoomName, Sender, StatusSignal};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{LocalPresence, PRESENCE_FLUSH, PresenceBatches, entry};
use crate::chat::{hub::Hub, notices::StatusChange};

/// Status changes waiting to be relayed; past it they are dropped (counted
/// as dropped signals): a status is best effort, like typing.
pub const STATUS_QUEUE: usize = 1024;

/// Runs `tick` every `interval` until `stopped`.
fn every<F: Future<Output = ()> + Send>(
    interval: Duration,
    stopped: CancellationToken,
    mut tick: impl FnMut() -> F + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = ticks.tick() => tick().await,
            }
        }
    })
}

/// Adds or refreshes the entries of `users` in `room`; a failure is logged
/// (the next refresh tries again).
async fn up(
    store: &dyn PresenceStore,
    (node_id, ttl): (&str, Duration),
    room: &RoomName,
    users: &[Sender],
) {
    let entries = users.iter().map(|u| entry(node_id, room, u)).collect();
    if let Err(error) = store.up(room, node_id, entries, ttl).await {
        tracing::debug!(%error, %room, "presence not recorded");
    }
}

/// Refreshes this node's entries every third of `ttl`.
pub fn refresh(
    local: Arc<LocalPresence>,
    store: Arc<dyn PresenceStore>,
    (node_id, ttl): (String, Duration),
    stopped: CancellationToken,
) -> JoinHandle<()> {
    every(ttl / 3, stopped, move || {
        let (local, store, node_id) = (local.clone(), store.clone(), node_id.clone());
        async move {
            for (room, users) in local.snapshot() {
                up(store.as_ref(), (&node_id, ttl), &room, &users).await;
            }
        }
    })
}

/// Writes arrivals and departures: one call per room for all who left it
/// since the last round (ending their entries), then one per room for all who
/// came (adding theirs), until `stopped` (then once more).
pub fn record(
    local: Arc<LocalPresence>,
    store: Arc<dyn PresenceStore>,
    (node_id, ttl): (String, Duration),
    stopped: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stop = tokio::select! {
                () = stopped.cancelled() => true,
                () = local.changed() => false,
            };
            let taken = local.take_changes();
            for (room, users) in taken.departed {
                if let Err(error) = store.down(&room, &node_id, users).await {
                    // The entries expire by themselves after the presence TTL.
                    tracing::debug!(%error, %room, "presence not ended");
                }
            }
            for (room, users) in taken.arrived {
                up(store.as_ref(), (&node_id, ttl), &room, &users).await;
            }
            if stop {
                break;
            }
        }
    })
}

/// Sends the gathered presence changes every [`PRESENCE_FLUSH`] (a task of its
/// own: a slow refresh never delays them).
pub fn flush(
    batches: Arc<PresenceBatches>,
    hub: Arc<Hub>,
    stopped: CancellationToken,
) -> JoinHandle<()> {
    every(PRESENCE_FLUSH, stopped, move || {
        batches.flush(&hub);
        std::future::ready(())
    })
}

/// Relays each local user's status change to the rooms the user is in on
/// this node (every node with the user does the same for its rooms, so a room
/// where the user is on two nodes hears it twice: a state, applied idempotently).
pub fn relay_statuses(
    local: Arc<LocalPresence>,
    pubsub: Arc<dyn PubSub>,
    node_id: String,
    (mut changes, stopped): (mpsc::Receiver<StatusChange>, CancellationToken),
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                () = stopped.cancelled() => break,
                change = changes.recv() => match change {
                    Some(change) => change,
                    None => break,
                },
            };
            for room in local.rooms_of(&change.user.id) {
                let signal = StatusSignal {
                    room: room.clone(),
                    user: change.user.clone(),
                    status: change.status.clone(),
                };
                let payload = Envelope::status(node_id.as_str(), signal).encode();
                if let Err(error) = pubsub.signal(&room, payload).await {
                    tracing::debug!(%error, %room, "status not relayed");
                }
            }
        }
    })
}

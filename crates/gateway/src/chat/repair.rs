//! Fills gaps in rooms' sequences from history, and checks rooms' positions.
//!
//! One task answers the repair requests of every room's sequencer (at most one
//! in flight per room, a bounded number at once on the node); another reads the
//! positions of every room with local members now and then, so a lost *last*
//! message (no later one to reveal the gap) is found too.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use chorus_backplane::{Read, RoomLog};
use chorus_protocol::RoomName;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::chat::hub::{Hub, RepairRequest};

/// Most messages fetched by one repair read; a longer gap takes several.
const REPAIR_BATCH: u64 = 1000;
/// Most repair reads in flight on one node.
const MAX_IN_FLIGHT: usize = 32;

/// Starts the repair and position-check tasks; they stop at `shutdown`.
pub fn start(
    log: Arc<dyn RoomLog>,
    hub: Arc<Hub>,
    requests: mpsc::UnboundedReceiver<RepairRequest>,
    check_interval: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(repair(log.clone(), hub.clone(), requests, shutdown.clone()));
    tokio::spawn(check(log, hub, check_interval, shutdown));
}

async fn repair(
    log: Arc<dyn RoomLog>,
    hub: Arc<Hub>,
    mut requests: mpsc::UnboundedReceiver<RepairRequest>,
    shutdown: CancellationToken,
) {
    let mut queued = VecDeque::new();
    let mut reads = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            request = requests.recv() => match request {
                Some(request) => queued.push_back(request),
                None => return,
            },
            Some(done) = reads.join_next() => {
                if let Ok((request, page)) = done {
                    let RepairRequest { room, token, .. } = request;
                    hub.repaired(&room, token, page);
                }
            }
        }
        while reads.len() < MAX_IN_FLIGHT {
            let Some(request) = queued.pop_front() else {
                break;
            };
            let log = log.clone();
            reads.spawn(async move {
                let limit = request.upto.saturating_sub(request.after).clamp(1, REPAIR_BATCH);
                let read = Read::After {
                    seq: request.after,
                    limit: limit as usize,
                };
                let page = match log.read(&request.room, read).await {
                    Ok(page) => Some(page),
                    Err(error) => {
                        tracing::warn!(room = %request.room, %error, "gap repair failed; the position check retries");
                        None
                    }
                };
                (request, page)
            });
        }
    }
}

async fn check(
    log: Arc<dyn RoomLog>,
    hub: Arc<Hub>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let rooms = hub.positions();
        if rooms.is_empty() {
            continue;
        }
        let names: Vec<RoomName> = rooms.iter().map(|(room, _)| room.clone()).collect();
        match log.positions(&names).await {
            Ok(positions) => {
                for ((room, before), position) in rooms.iter().zip(positions) {
                    hub.check(room, position, *before);
                }
            }
            Err(error) => tracing::debug!(%error, "position check failed"),
        }
    }
}

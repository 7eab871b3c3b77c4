//! Draining for rolling deploys, in three steps:
//!
//! 1. **draining** (SIGTERM): the node reports not-ready at once, so load
//!    balancers stop sending it new clients, but it keeps serving everyone, new
//!    connections included, for the grace period;
//! 2. **closing** (grace over): the listener closes and every connection closes
//!    with 4000 ("reconnect") at its own moment: connections fall at random into
//!    one of [`BATCHES`] batches spread over the drain window, so the fleet does
//!    not see every client reconnect at once;
//! 3. **stopped**: every connection is closed (or the shutdown timeout passed);
//!    background tasks end and the node leaves the cluster.
//!
//! Clients resume on another node from the last message they saw, so nothing is lost.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{chat::connection::Turn, config::Operations};

/// Batches connections are closed in over the drain window.
pub const BATCHES: u64 = 20;

/// The node's drain state; cheap to clone (shared tokens).
#[derive(Clone, Debug)]
pub struct Drain {
    /// Cancelled at SIGTERM: not ready from then on.
    draining: CancellationToken,
    /// Cancelled when the grace period is over: no new connections; existing ones close.
    closing: CancellationToken,
    /// Cancelled when the node has closed its connections: background tasks stop.
    stopped: CancellationToken,
    /// The connections' closes are spread over this long.
    window: Duration,
}

impl Drain {
    /// A node that is not draining.
    pub fn new(window: Duration) -> Self {
        Self {
            draining: CancellationToken::new(),
            closing: CancellationToken::new(),
            stopped: CancellationToken::new(),
            window,
        }
    }

    /// Runs the drain's first steps once `shutdown` is cancelled: draining at once,
    /// closing after the grace period.
    pub async fn follow(self, shutdown: CancellationToken, ops: Operations) {
        shutdown.cancelled().await;
        self.draining.cancel();
        tracing::info!(
            grace = ?ops.drain_grace,
            window = ?ops.drain_window,
            "draining: not ready; still serving until the grace period ends"
        );
        tokio::time::sleep(ops.drain_grace).await;
        tracing::info!("drain grace over: closing connections in batches");
        self.closing.cancel();
    }

    /// Whether the node is draining (or further): it reports not-ready.
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Whether connections are being closed: new upgrades are refused.
    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Resolves when closing starts (the listener stops accepting).
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Cancelled when the node has stopped serving: background tasks end.
    pub fn stopped(&self) -> CancellationToken {
        self.stopped.clone()
    }

    /// Marks the node stopped.
    pub fn stop(&self) {
        self.draining.cancel();
        self.closing.cancel();
        self.stopped.cancel();
    }

    /// When a connection whose random `seed` this is should close: after
    /// closing starts, at the start of its batch.
    pub fn turn(&self, seed: u64) -> Turn {
        let batch = seed % BATCHES;
        Turn {
            closing: self.closing.clone(),
            delay: self.window.mul_f64(batch as f64 / BATCHES as f64),
        }
    }
}

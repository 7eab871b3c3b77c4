//! The live cluster view: every node announces its status through the backplane
//! with a TTL each heartbeat and reads everyone else's, so `GET /api/cluster`
//! answers from memory and a node learns within the TTL that a peer died.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use axum::{Json, extract::State, response::IntoResponse};
use chorus_protocol::unix_micros;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::node::Node;

/// What a node tells the cluster about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node id.
    pub id: String,
    /// The `chorus` version it runs (mixed during a rolling deploy).
    pub version: String,
    /// When it started (ms since the Unix epoch).
    pub started_at: u64,
    /// When this status was taken (ms since the Unix epoch).
    pub heartbeat_at: u64,
    /// WebSocket connections open on it.
    pub connections: i64,
    /// Rooms with members on it.
    pub rooms: i64,
    /// Whether it reports ready.
    pub ready: bool,
    /// Whether it is draining (shutting down).
    pub draining: bool,
}

/// The last view read from the backplane.
#[derive(Debug, Default)]
pub struct ClusterView {
    /// Peers (this node included), by id, and when they were read.
    latest: RwLock<Snapshot>,
}

#[derive(Debug, Default, Clone)]
struct Snapshot {
    /// The nodes alive at the last read.
    nodes: Vec<NodeStatus>,
    /// When the last successful read happened (ms since the Unix epoch; 0: never).
    read_at: u64,
    /// Whether the last heartbeat reached the backplane.
    fresh: bool,
}

/// The answer of `GET /api/cluster`.
#[derive(Debug, Serialize)]
struct ClusterReply {
    /// The node answering.
    node: String,
    /// When the peers were last read from the backplane (ms since the Unix epoch).
    read_at: u64,
    /// False when the last heartbeat failed: the peers may be out of date.
    fresh: bool,
    /// Nodes alive, by id; the answering node's entry is current.
    nodes: Vec<NodeStatus>,
}

/// Announces this node and reads its peers every heartbeat until the node stops,
/// then withdraws it so peers see it leave at once.
pub fn start(node: Arc<Node>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let ops = node.config.ops;
        let stopped = node.drain.stopped();
        let mut ticks = tokio::time::interval(ops.heartbeat_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = ticks.tick() => heartbeat(&node, ops.node_ttl).await,
            }
        }
        let bound = ops.heartbeat_interval.min(Duration::from_secs(2));
        let withdrawn = node.backplane.withdraw(&node.config.node_id);
        if let Ok(Err(error)) = tokio::time::timeout(bound, withdrawn).await {
            tracing::debug!(%error, "could not withdraw from the cluster view; it expires by TTL");
        }
    })
}

async fn heartbeat(node: &Node, ttl: Duration) {
    let status = node.status();
    let json = serde_json::to_string(&status).expect("a status serializes");
    let announced = node.backplane.announce(&status.id, json, ttl).await;
    let read = match announced {
        Ok(()) => node.backplane.nodes().await,
        Err(error) => Err(error),
    };
    let view = &node.cluster;
    match read {
        Ok(raw) => {
            let mut nodes: Vec<NodeStatus> = raw
                .iter()
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect();
            nodes.sort_by(|a, b| a.id.cmp(&b.id));
            let mut latest = view.latest.write();
            log_changes(&node.config.node_id, &latest.nodes, &nodes);
            node.metrics.cluster_nodes.set(nodes.len() as i64);
            *latest = Snapshot {
                nodes,
                read_at: unix_micros() / 1000,
                fresh: true,
            };
        }
        Err(error) => {
            let mut latest = view.latest.write();
            if latest.fresh {
                tracing::warn!(%error, "cluster heartbeat failed; the cluster view is going stale");
            }
            latest.fresh = false;
        }
    }
}

fn log_changes(me: &str, before: &[NodeStatus], after: &[NodeStatus]) {
    let old: BTreeSet<&str> = before.iter().map(|n| n.id.as_str()).collect();
    let new: BTreeSet<&str> = after.iter().map(|n| n.id.as_str()).collect();
    for joined in new.difference(&old).filter(|id| **id != me) {
        tracing::info!(peer = joined, "node joined the cluster");
    }
    for left in old.difference(&new).filter(|id| **id != me) {
        tracing::info!(
            peer = left,
            "node left the cluster (stopped, or its heartbeat expired)"
        );
    }
}

/// `GET /api/cluster`: the nodes alive, with their load.
pub async fn handler(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let snapshot = node.cluster.latest.read().clone();
    let me = node.status();
    let mut nodes: Vec<NodeStatus> = snapshot
        .nodes
        .into_iter()
        .filter(|n| n.id != me.id)
        .collect();
    nodes.push(me);
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Json(ClusterReply {
        node: node.config.node_id.clone(),
        read_at: snapshot.read_at,
        fresh: snapshot.fresh,
        nodes,
    })
}

//! The live cluster view: every node announces its status through the backplane
//! with a TTL each heartbeat and reads everyone else's, so `GET /api/cluster`
//! answers from memory and a node learns within the TTL that a peer died.
//! (What the statuses and the view hold is in `cluster_view.rs`.)

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use axum::{Json, extract::State, response::IntoResponse};
use chorus_protocol::unix_micros;
use serde::Serialize;
use tokio::task::JoinHandle;

use super::{
    cluster_view::{NodeStatus, Window},
    node::Node,
};

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
        let ops = node.config().ops;
        let stopped = node.drain().stopped();
        let mut ticks = tokio::time::interval(ops.heartbeat_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut window = Window::new(ops.heartbeat_interval);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = ticks.tick() => {
                    node.cluster().set_recent(window.advance(node.metrics()));
                    heartbeat(&node, ops.node_ttl).await;
                }
            }
        }
        let bound = ops.heartbeat_interval.min(Duration::from_secs(2));
        let registry = &node.chat().backplane().registry;
        let withdrawn = registry.withdraw(&node.config().node_id);
        if let Ok(Err(error)) = tokio::time::timeout(bound, withdrawn).await {
            tracing::debug!(%error, "could not withdraw from the cluster view; it expires by TTL");
        }
    })
}

async fn heartbeat(node: &Node, ttl: Duration) {
    let status = node.status();
    let json = serde_json::to_string(&status).expect("a status serializes");
    let registry = &node.chat().backplane().registry;
    let announced = registry.announce(&status.id, json, ttl).await;
    let read = match announced {
        Ok(()) => registry.nodes().await,
        Err(error) => Err(error),
    };
    let view = node.cluster();
    match read {
        Ok(raw) => {
            let mut nodes: Vec<NodeStatus> = raw
                .iter()
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect();
            nodes.sort_by(|a, b| a.id.cmp(&b.id));
            node.metrics().cluster_nodes.set(nodes.len() as i64);
            let after: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
            let before = view.read(nodes, unix_micros() / 1000);
            log_changes(&node.config().node_id, &before, &after);
        }
        Err(error) => {
            if view.stale() {
                tracing::warn!(%error, "cluster heartbeat failed; the cluster view is going stale");
            }
        }
    }
}

fn log_changes(me: &str, before: &[String], after: &[String]) {
    let old: BTreeSet<&str> = before.iter().map(String::as_str).collect();
    let new: BTreeSet<&str> = after.iter().map(String::as_str).collect();
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
    let snapshot = node.cluster().snapshot();
    let me = node.status();
    let mut nodes: Vec<NodeStatus> = snapshot
        .nodes
        .into_iter()
        .filter(|n| n.id != me.id)
        .collect();
    nodes.push(me);
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Json(ClusterReply {
        node: node.config().node_id.clone(),
        read_at: snapshot.read_at,
        fresh: snapshot.fresh,
        nodes,
    })
}

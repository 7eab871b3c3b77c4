//! Chaos: three `chorus` processes and a real Redis under continuous traffic,
//! while nodes are SIGKILLed or restarted one by one (a rolling deploy), Redis
//! restarts or drops its pub/sub connections.
//! Every acknowledged message must reach every member of its room once, in
//! order; when Redis loses its data, members must be told.

use std::{path::Path, sync::Arc, sync::atomic::Ordering, time::Duration};

use chorus_testkit::{
    Client, ProcessNode, RedisServer,
    chaos::{self, Ledger, Member, Publisher, Report, Stops, Urls},
    eventually, metric,
};
use tokio_util::sync::CancellationToken;

const ROOMS: [&str; 4] = ["chaos-a", "chaos-b", "chaos-c", "chaos-d"];
const NODES: usize = 3;
const MEMBERS: usize = 9;
const PUBLISH_EVERY: Duration = Duration::from_millis(20);

fn chorus() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chorus"))
}

struct Run {
    redis: RedisServer,
    nodes: Vec<ProcessNode>,
    urls: Urls,
    ledger: Arc<Ledger>,
    members: Vec<Member>,
    publishers: Vec<Publisher>,
    stop_publishing: CancellationToken,
    give_up: CancellationToken,
    stop_members: CancellationToken,
}

async fn spawn_node(redis: &RedisServer, i: usize) -> ProcessNode {
    let id = format!("chaos-{i}");
    let url = redis.url();
    let mut args = vec![
        "--redis-url",
        &url,
        "--node-id",
        &id,
        "--redis-timeout",
        "1s",
    ];
    args.extend(["--drain-grace", "500ms", "--drain-window", "1s"]);
    args.extend(chaos::NODE_ARGS);
    ProcessNode::spawn(chorus(), &args).await
}

impl Run {
    /// Redis (with `redis_args`), three nodes, nine members in two rooms each,
    /// three publishers (one per node) sending to every room.
    async fn start(redis_args: &[&str]) -> Self {
        let redis = RedisServer::start_with(redis_args).await;
        let mut nodes = Vec::new();
        for i in 0..NODES {
            nodes.push(spawn_node(&redis, i).await);
        }
        let urls = Urls::new(nodes.iter().map(ProcessNode::ws_url).collect());
        let ledger = Arc::new(Ledger::default());
        let stop_members = CancellationToken::new();
        let mut members = Vec::new();
        for i in 0..MEMBERS {
            let rooms = vec![
                ROOMS[i % ROOMS.len()].to_owned(),
                ROOMS[(i + 1) % ROOMS.len()].to_owned(),
            ];
            members.push(
                Member::start(urls.clone(), i, rooms, ledger.clone(), stop_members.clone()).await,
            );
        }
        let stop_publishing = CancellationToken::new();
        let give_up = CancellationToken::new();
        let publishers = (0..NODES)
            .map(|i| {
                Publisher::start(
                    &format!("p{i}"),
                    urls.clone(),
                    i,
                    ROOMS.iter().map(|r| r.to_string()).collect(),
                    PUBLISH_EVERY,
                    ledger.clone(),
                    Stops {
                        stop: stop_publishing.clone(),
                        give_up: give_up.clone(),
                    },
                )
            })
            .collect();
        Self {
            redis,
            nodes,
            urls,
            ledger,
            members,
            publishers,
            stop_publishing,
            give_up,
            stop_members,
        }
    }

    /// Lets traffic flow for `pause` (the scenario's pacing between faults).
    async fn traffic(&self, pause: Duration) {
        tokio::time::sleep(pause).await;
    }

    /// Waits until `n` more messages are acknowledged: traffic flows again after a fault.
    async fn acknowledged_more(&self, n: u64) {
        let target = self.ledger.acknowledged() + n;
        let ledger = self.ledger.clone();
        eventually("traffic to flow", || {
            let ledger = ledger.clone();
            async move { (ledger.acknowledged() >= target).then_some(()) }
        })
        .await;
    }

    async fn restart_node(&mut self, i: usize) {
        self.nodes[i].kill().await;
        self.nodes[i] = spawn_node(&self.redis, i).await;
        self.urls.set(i, self.nodes[i].ws_url());
    }

    /// Stops sending, waits for every send to be acknowledged and delivered, and reports.
    async fn finish(self, from_phase: u32) -> (Report, Vec<ProcessNode>) {
        let stops = Stops {
            stop: self.stop_publishing,
            give_up: self.give_up,
        };
        let report = chaos::settle(
            &self.ledger,
            self.publishers,
            self.members,
            &stops,
            &self.stop_members,
            from_phase,
        )
        .await;
        (report, self.nodes)
    }
}

fn assert_nothing_lost(report: &Report) {
    assert!(report.acknowledged > 100, "too little traffic: {report:?}");
    assert_eq!(
        report.acknowledged, report.sent,
        "every send acknowledged: {report:?}"
    );
    assert_consistent(report);
    assert_eq!(
        report.breaks, 0,
        "nothing was lost, so nothing to announce: {report:?}"
    );
}

/// Every acknowledged message (of the phases checked) arrived, once, in order, with no silent gap.
fn assert_consistent(report: &Report) {
    assert_eq!(report.missing, 0, "missing messages: {report:?}");
    assert_eq!(report.duplicates, 0, "duplicates: {report:?}");
    assert_eq!(report.gaps, 0, "silent gaps: {report:?}");
    assert_eq!(report.reorders, 0, "reorders: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_nodes_lose_nothing_their_clients_were_sent() {
    let mut run = Run::start(&[]).await;
    for round in 0..4 {
        run.traffic(Duration::from_millis(1500)).await;
        run.restart_node(round % NODES).await;
        run.acknowledged_more(20).await;
    }
    let (report, _) = run.finish(0).await;
    assert_nothing_lost(&report);
    assert!(
        report.reconnects >= 4,
        "members of killed nodes moved: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarts_with_aof_always_lose_no_acknowledged_message() {
    let mut run = Run::start(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    for _ in 0..2 {
        run.traffic(Duration::from_millis(2000)).await;
        run.redis.restart().await;
        run.acknowledged_more(20).await;
    }
    run.traffic(Duration::from_millis(1000)).await;
    let (report, _) = run.finish(0).await;
    assert_nothing_lost(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_without_persistence_losing_its_data_is_announced_never_silent() {
    let mut run = Run::start(&[]).await;
    run.traffic(Duration::from_millis(2000)).await;
    run.redis.restart().await;
    // Redis serves again: acknowledgements from now on come from the new data.
    let url = run.urls.clone();
    eventually("a send through the restarted Redis", || {
        let url = url.clone();
        async move {
            let mut probe = Client::connect(&url.get(0)).await;
            let joined = probe
                .request_reply(serde_json::json!({"type": "join", "room": "chaos-probe"}))
                .await;
            let reply = probe.say("chaos-probe", "probe").await;
            (joined["type"] == "joined" && reply["type"] == "sent").then_some(())
        }
    })
    .await;
    run.ledger.phase.store(1, Ordering::SeqCst);
    run.traffic(Duration::from_millis(2000)).await;
    let (report, _) = run.finish(1).await;
    // Everything acknowledged after the restart arrives; nothing silently skipped.
    assert_consistent(&report);
    assert_eq!(
        report.rooms_without_break, 0,
        "every member was told in every room: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_subscriber_connections_are_repaired_without_disconnecting_anyone() {
    let run = Run::start(&[]).await;
    for _ in 0..4 {
        run.traffic(Duration::from_millis(1200)).await;
        assert!(run.redis.kill_pubsub_clients().await >= NODES as u64);
        run.acknowledged_more(20).await;
    }
    let (report, nodes) = run.finish(0).await;
    assert_nothing_lost(&report);
    assert_eq!(
        report.reconnects, 0,
        "no member was disconnected: {report:?}"
    );
    let mut repairs = 0.0;
    for node in &nodes {
        repairs += metric(node.addr, "chorus_repaired_messages_total").await;
    }
    eprintln!("messages repaired from history: {repairs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_node_under_traffic_loses_nothing() {
    let mut run = Run::start(&[]).await;
    for i in 0..NODES {
        run.acknowledged_more(20).await;
        run.nodes[i].terminate();
        assert_eq!(
            run.nodes[i].wait_exit(Duration::from_secs(10)).await,
            Some(0),
            "node {i} drained and exited cleanly"
        );
        run.nodes[i] = spawn_node(&run.redis, i).await;
        run.urls.set(i, run.nodes[i].ws_url());
    }
    run.acknowledged_more(20).await;
    let (report, _) = run.finish(0).await;
    assert_nothing_lost(&report);
    assert!(
        report.reconnects >= MEMBERS as u64,
        "every member was moved at least once: {report:?}"
    );
}

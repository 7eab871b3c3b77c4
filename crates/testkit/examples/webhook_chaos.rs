//! A long webhook chaos run, for the figures in docs/benchmarks.md ("Webhook
//! chaos"): three `chorus` nodes on a real Redis, publishers sending with
//! client message ids (resending until acknowledged), one node SIGKILLed and
//! restarted every `KILL_EVERY`, and the receiving endpoint down (503) for
//! `OUTAGE` from `OUTAGE_AT`. At the end it waits for the deliveries to catch
//! up and prints: events acknowledged, delivered, lost (acknowledged and
//! never delivered), delivered more than once, first deliveries out of room
//! order, kills, and how long the backlog of the outage took to drain.
//!
//! ```text
//! cargo build --release -p chorus-gateway
//! cargo run --release -p chorus-testkit --example webhook_chaos -- \
//!     target/release/chorus 720 40 60 300
//! ```
//! (binary, run seconds, seconds between kills, outage start, outage length).

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use chorus_testkit::{
    ProcessNode, RedisServer, WebhookReceiver,
    chaos::{self, Ledger, Publisher, Stops, Urls},
    webhooks_file,
};
use tokio_util::sync::CancellationToken;

/// Nodes in the cluster.
const NODES: usize = 3;
/// Publishers, each sending every [`SEND_EVERY`] to its rooms in turn.
const PUBLISHERS: usize = 4;
/// Rooms each publisher sends to.
const ROOMS: usize = 4;
/// A publisher's pace: 4 publishers at 50 ms = 80 messages a second.
const SEND_EVERY: Duration = Duration::from_millis(50);
/// Longest wait for the deliveries to catch up at the end.
const CATCH_UP: Duration = Duration::from_secs(300);

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map_or(default, |a| a.parse().expect("a number of seconds"))
}

#[tokio::main]
async fn main() {
    let binary = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/release/chorus".into()),
    );
    let (run, kill_every) = (Duration::from_secs(arg(2, 720)), arg(3, 40));
    let (outage_at, outage) = (Duration::from_secs(arg(4, 60)), arg(5, 300));
    let outage = Duration::from_secs(outage);

    let redis = RedisServer::start().await;
    let receiver = Arc::new(WebhookReceiver::start().await);
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("webhooks.toml");
    let file = webhooks_file(&[("app", &receiver.url(), &["message.created"], &[])]);
    std::fs::write(&hooks, file).unwrap();
    let url = redis.url();
    let hooks = hooks.to_str().unwrap().to_owned();
    let mut args: Vec<&str> = vec!["--redis-url", &url, "--webhooks-file", &hooks];
    args.extend(chaos::NODE_ARGS);
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(ProcessNode::spawn(&binary, &args).await);
    }
    let urls = Urls::new(nodes.iter().map(ProcessNode::ws_url).collect());

    let ledger = Arc::new(Ledger::default());
    let stops = Stops {
        stop: CancellationToken::new(),
        give_up: CancellationToken::new(),
    };
    let publishers: Vec<Publisher> = (0..PUBLISHERS)
        .map(|p| {
            let rooms = (0..ROOMS).map(|r| format!("chaos-{p}-{r}")).collect();
            let name = format!("p{p}");
            Publisher::start(
                &name,
                urls.clone(),
                p,
                rooms,
                SEND_EVERY,
                ledger.clone(),
                stops.clone(),
            )
        })
        .collect();

    let begun = Instant::now();
    let mut kills = 0;
    let mut next_kill = Duration::from_secs(kill_every);
    let mut outage_state = 0; // 0 before, 1 during, 2 after
    let mut backlog_at_outage_end = 0;
    let mut outage_ended: Option<Instant> = None;
    let mut drained_outage = None;
    println!(
        "webhook chaos: {NODES} nodes, {} msg/s, {}s, a kill every {kill_every}s, endpoint down {}s from {}s",
        PUBLISHERS as u64 * 1000 / SEND_EVERY.as_millis() as u64,
        run.as_secs(),
        outage.as_secs(),
        outage_at.as_secs()
    );
    while begun.elapsed() < run {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = begun.elapsed();
        if outage_state == 0 && now >= outage_at {
            receiver.set_up(false);
            outage_state = 1;
            println!("{:>4}s endpoint down", now.as_secs());
        } else if outage_state == 1 && now >= outage_at + outage {
            receiver.set_up(true);
            outage_state = 2;
            backlog_at_outage_end = ledger.acknowledged();
            outage_ended = Some(Instant::now());
            println!(
                "{:>4}s endpoint up; {backlog_at_outage_end} acknowledged so far",
                now.as_secs()
            );
        }
        if let Some(ended) = outage_ended
            && drained_outage.is_none()
            && receiver.count() as u64 >= backlog_at_outage_end
        {
            drained_outage = Some(ended.elapsed());
            println!(
                "{:>4}s the outage's backlog is delivered, {:.1} s after the endpoint came back",
                now.as_secs(),
                ended.elapsed().as_secs_f64()
            );
        }
        if now >= next_kill {
            let victim = kills % NODES;
            nodes[victim].kill().await;
            kills += 1;
            nodes[victim] = ProcessNode::spawn(&binary, &args).await;
            urls.set(victim, nodes[victim].ws_url());
            next_kill = now + Duration::from_secs(kill_every);
            println!(
                "{:>4}s killed and restarted node {victim} ({kills} kills); {} acknowledged, {} delivered",
                now.as_secs(),
                ledger.acknowledged(),
                receiver.count()
            );
        }
    }
    stops.stop.cancel();
    for publisher in publishers {
        let _ = tokio::time::timeout(Duration::from_secs(30), publisher.finish()).await;
    }
    stops.give_up.cancel();

    // Wait for every acknowledged message to be delivered (or the bound).
    let acked: HashSet<(String, String)> = ledger.acknowledged_messages().into_iter().collect();
    let caught_up = Instant::now();
    loop {
        let taken = receiver.taken();
        let delivered: HashSet<(String, String)> =
            taken.iter().filter_map(place_and_body).collect();
        if drained_outage.is_none() && delivered.len() as u64 >= backlog_at_outage_end {
            drained_outage = outage_ended.map(|at| at.elapsed());
        }
        if acked.is_subset(&delivered) || caught_up.elapsed() > CATCH_UP {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let taken = receiver.taken();
    report(&acked, &taken, kills, outage, drained_outage);
}

/// The (room, body) of a `message.created` delivery.
fn place_and_body(received: &chorus_testkit::Received) -> Option<(String, String)> {
    let data = &received.body["data"];
    Some((
        data["room"].as_str()?.to_owned(),
        data["message"]["body"].as_str()?.to_owned(),
    ))
}

fn report(
    acked: &HashSet<(String, String)>,
    taken: &[chorus_testkit::Received],
    kills: usize,
    outage: Duration,
    drained: Option<Duration>,
) {
    let ids: HashSet<&str> = taken.iter().map(|r| r.id.as_str()).collect();
    let delivered: HashSet<(String, String)> = taken.iter().filter_map(place_and_body).collect();
    let lost = acked.difference(&delivered).count();
    // First deliveries per room must come in seq order.
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut seen = HashSet::new();
    let mut out_of_order = 0;
    for received in taken {
        if !seen.insert(received.id.clone()) {
            continue;
        }
        let data = &received.body["data"];
        let (Some(room), Some(seq)) = (data["room"].as_str(), data["message"]["seq"].as_u64())
        else {
            continue;
        };
        let previous = last.insert(room.to_owned(), seq).unwrap_or(0);
        if seq <= previous {
            out_of_order += 1;
        }
    }
    let unsigned = taken.iter().filter(|r| !r.signed).count();
    println!("acknowledged messages: {}", acked.len());
    println!("delivered events (distinct webhook-id): {}", ids.len());
    println!("deliveries: {}", taken.len());
    println!("lost (acknowledged, never delivered): {lost}");
    println!("delivered more than once: {}", taken.len() - ids.len());
    println!("first deliveries out of room order: {out_of_order}");
    println!("unsigned or badly signed: {unsigned}");
    println!("node kills: {kills}");
    println!(
        "endpoint outage: {} s; backlog drained {} after it ended",
        outage.as_secs(),
        drained.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64()))
    );
}

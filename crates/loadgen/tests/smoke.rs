//! A tiny run of the load generator against a real 2-node cluster (Redis,
//! `chorus` processes), so it keeps working. Not a benchmark: it checks
//! counts, never speed.

use std::path::{Path, PathBuf};

use chorus_localcluster::{LocalCluster, Options};

const SECRET: &str = "loadgen-smoke-secret-0123456789abcdef";

fn loadgen() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chorus-loadgen"))
}

/// The `chorus` binary built beside the load generator (the workspace's tests build both).
fn chorus() -> PathBuf {
    let path = loadgen().with_file_name("chorus");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p chorus-gateway)",
        path.display()
    );
    path
}

/// A running cluster of `nodes` nodes and a finished load-generator run against it.
struct Run {
    /// The cluster, still running (minus any node the run killed).
    cluster: LocalCluster,
    /// The run's standard output.
    stdout: String,
    /// The JSON result file.
    result: serde_json::Value,
    /// The chart it drew.
    svg: String,
}

/// A local cluster of `nodes` nodes with rates raised for load, which drain
/// at once when stopped or restarted.
async fn cluster(nodes: usize) -> LocalCluster {
    let mut options = Options::new(chorus(), nodes);
    options.node_env = vec![
        ("CHORUS_JWT_SECRET".into(), SECRET.into()),
        ("RUST_LOG".into(), "warn".into()),
        ("CHORUS_DRAIN_GRACE".into(), "0s".into()),
        ("CHORUS_DRAIN_WINDOW".into(), "500ms".into()),
    ];
    options.node_args = [
        "--send-rate",
        "1000/s:1000",
        "--user-send-rate",
        "1000/s:1000",
    ]
    .map(String::from)
    .to_vec();
    LocalCluster::start(&options)
        .await
        .expect("a local cluster")
}

/// `chorus-loadgen run <scenario>` against `cluster`'s nodes, writing into `dir`.
fn loadgen_run(
    cluster: &LocalCluster,
    scenario: &str,
    sets: &[&str],
    dir: &Path,
) -> tokio::process::Command {
    let urls: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("\"ws://{}/ws\"", n.addr))
        .collect();
    let (out, chart) = (dir.join("run.json"), dir.join("run.svg"));
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../loadtest/scenarios")
        .join(scenario);
    let mut command = tokio::process::Command::new(loadgen());
    command
        .arg("run")
        .arg(&scenario)
        .args(["--set", &format!("urls=[{}]", urls.join(","))])
        .arg("--out")
        .arg(&out)
        .arg("--chart")
        .arg(&chart)
        .env("CHORUS_JWT_SECRET", SECRET)
        .kill_on_drop(true);
    for set in sets {
        command.args(["--set", set]);
    }
    for node in &cluster.nodes {
        command.args(["--pid", &node.pid().unwrap().to_string()]);
    }
    command
}

/// Starts `nodes` nodes and runs `scenario` against them with extra `--set`s
/// (and `--kill-pid` of the first node when `kill_first`).
async fn run(nodes: usize, scenario: &str, sets: &[&str], kill_first: bool) -> Run {
    let cluster = cluster(nodes).await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = loadgen_run(&cluster, scenario, sets, dir.path());
    if kill_first {
        command.args(["--kill-pid", &cluster.nodes[0].pid().unwrap().to_string()]);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
        .await
        .expect("the run ends in time")
        .expect("running chorus-loadgen");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result = read_result(dir.path());
    let svg = std::fs::read_to_string(dir.path().join("run.svg")).unwrap();
    Run {
        cluster,
        stdout,
        result,
        svg,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_big_room_run_delivers_everything_and_reports_it() {
    let Run {
        cluster,
        stdout,
        result,
        svg,
    } = run(2, "smoke.toml", &["duration=2s", "settle=2s"], false).await;
    assert!(stdout.contains("delivered"), "{stdout}");
    let measured = &result["measured"];
    assert_eq!(measured["connected"], 300, "{result:#}");
    assert_eq!(measured["connect_errors"], 0);
    assert_eq!(measured["dropped"], 0);
    let expected = result["expected"].as_u64().unwrap();
    assert!(
        expected >= 300 * 50,
        "messages were sent to 300 members: {expected}"
    );
    assert_eq!(
        measured["delivered"].as_u64().unwrap(),
        expected,
        "nothing missing"
    );
    assert_eq!(result["derived"]["missing"], 0);
    assert!(result["latency_ms"][0].as_f64().unwrap() > 0.0);
    assert_eq!(result["servers"].as_object().unwrap().len(), 2);
    assert!(result["derived"]["cpu_us_per_delivery"].as_f64().unwrap() > 0.0);
    assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_reconnect_storm_brings_every_client_back_with_nothing_lost() {
    let sets = [
        "clients=300",
        "rate=2",
        "kill_after=\"1s\"",
        "duration=\"3s\"",
        "settle=\"2s\"",
        "sources=[\"127.0.0.2\",\"127.0.0.3\"]",
    ];
    let Run {
        cluster, result, ..
    } = run(3, "reconnect-storm.toml", &sets, true).await;
    let measured = &result["measured"];
    assert_eq!(measured["connected"], 300, "{result:#}");
    // The killed node held every third client; each came back and resumed exactly.
    assert_eq!(measured["dropped"], 100, "{result:#}");
    assert_eq!(measured["reconnected"], 100, "{result:#}");
    assert_eq!(measured["recovered"], 100, "{result:#}");
    assert_eq!(measured["duplicates"], 0, "{result:#}");
    let expected = result["expected"].as_u64().unwrap();
    assert!(expected > 0, "{result:#}");
    assert_eq!(
        measured["delivered"].as_u64().unwrap(),
        expected,
        "nothing missing"
    );
    assert!(result["back_ms"][4].as_f64().unwrap() > 0.0, "{result:#}");
    cluster.stop().await.unwrap();
}

fn read_result(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_with_churn_and_a_rolling_restart_loses_and_repeats_nothing() {
    use tokio::io::AsyncBufReadExt;
    let mut cluster = cluster(3).await;
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        "clients=300",
        "rate=0.5",
        "churn=\"4s\"",
        "chatter=\"500ms\"",
        "duration=\"12s\"",
        "settle=\"3s\"",
        "sources=[\"127.0.0.2\",\"127.0.0.3\"]",
    ];
    let mut command = loadgen_run(&cluster, "soak.toml", &sets, dir.path());
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running chorus-loadgen");
    // Once the measured phase starts, node 3 restarts (it drains; its clients
    // come back elsewhere and resume), as in a rolling deploy.
    let mut progress = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let started = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = progress.next_line().await.unwrap() {
            if line.contains("starting the measured phase") {
                return;
            }
        }
        panic!("the load generator ended before its measured phase");
    });
    started.await.expect("the measured phase starts in time");
    cluster.restart_node(2).await.expect("node 3 restarts");
    tokio::spawn(async move { while let Ok(Some(_)) = progress.next_line().await {} });
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("the run ends in time")
    .expect("running chorus-loadgen");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    let result = read_result(dir.path());
    let measured = &result["measured"];
    assert_eq!(measured["connected"], 300, "{result:#}");
    // Clients reconnected by themselves, and the restart dropped some.
    assert!(measured["churned"].as_u64().unwrap() >= 300, "{result:#}");
    assert!(measured["dropped"].as_u64().unwrap() >= 1, "{result:#}");
    // Acknowledged messages reach every member of their room, once: no
    // client's stream jumps over a room sequence number, and every client
    // ends at its room's last one.
    let expected = result["expected"].as_u64().unwrap();
    assert!(expected > 0, "{result:#}");
    assert_eq!(
        measured["delivered"].as_u64().unwrap(),
        expected,
        "{stdout}"
    );
    assert_eq!(measured["skipped"], 0, "{stdout}");
    let ends = measured["ends"].as_object().unwrap();
    assert_eq!(
        ends.len(),
        30,
        "every room's clients report where they ended"
    );
    for (room, ends) in ends {
        let ends: Vec<u64> = ends
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_u64().unwrap())
            .collect();
        assert_eq!(ends.len(), 10, "{room}: {ends:?}");
        assert!(
            ends.iter().all(|e| *e == ends[0] && *e > 0),
            "{room}: {ends:?}"
        );
    }
    assert_eq!(measured["duplicates"], 0, "{result:#}");
    assert_eq!(measured["server_errors"], 0, "{result:#}");
    cluster.stop().await.unwrap();
}

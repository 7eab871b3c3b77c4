//! The result of a run: a summary for people, a JSON file, and an SVG chart of
//! the latency distribution; and the comparison of several runs.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};

use crate::{scenario::Scenario, server::ProcessCost, stats::Measured};

/// Quantiles shown in summaries and charts.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

/// Everything a run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Which target this ran against (a label, e.g. `chorus`, `gorilla`).
    pub target: String,
    /// The scenario as run.
    pub scenario: Scenario,
    /// Seconds of the measured phase (sending), as configured.
    pub duration_seconds: f64,
    /// What the clients measured.
    pub measured: Measured,
    /// Deliveries expected: every message sent, once per member of its room.
    pub expected: u64,
    /// Latency quantiles in ms: p50, p90, p99, p99.9, max.
    pub latency_ms: [f64; 5],
    /// Connect latency quantiles in ms.
    pub connect_ms: [f64; 5],
    /// Reconnect storm: kill-to-back quantiles in ms.
    #[serde(default)]
    pub back_ms: [f64; 5],
    /// Server processes by pid.
    pub servers: BTreeMap<u32, ProcessCost>,
    /// Derived figures.
    pub derived: Derived,
}

/// Ratios readers compare.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Derived {
    /// Deliveries per second over the measured phase.
    pub deliveries_per_second: f64,
    /// Expected deliveries that did not arrive.
    pub missing: u64,
    /// Server CPU microseconds per delivered message.
    pub cpu_us_per_delivery: Option<f64>,
    /// Server RSS growth per connection (peak while connected minus before), bytes.
    pub rss_per_connection: Option<f64>,
    /// Server RSS growth per connection at the end of the measured phase
    /// (minus before), bytes.
    #[serde(default)]
    pub rss_held_per_connection: Option<f64>,
    /// Connections per second while connecting.
    pub connects_per_second: f64,
}

/// Quantiles of a recorded histogram, in ms.
pub fn quantiles_ms(recorded: &crate::stats::Recorded) -> [f64; 5] {
    let mut histogram = crate::stats::histogram();
    recorded.add_to(&mut histogram);
    if histogram.is_empty() {
        return [0.0; 5];
    }
    QUANTILES.map(|q| histogram.value_at_quantile(q) as f64 / 1e3)
}

impl RunResult {
    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let m = &self.measured;
        let d = &self.derived;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} · {} ({:?}) · {} clients over {} url(s), {} worker(s)",
            self.target,
            self.scenario.name,
            self.scenario.kind,
            self.scenario.clients,
            self.scenario.urls.len(),
            self.scenario.workers
        );
        let _ = writeln!(
            out,
            "connected {} (errors {}, dropped {}) at {:.0}/s; connect p50 {:.1} ms p99 {:.1} ms",
            m.connected,
            m.connect_errors,
            m.dropped,
            d.connects_per_second,
            self.connect_ms[0],
            self.connect_ms[2]
        );
        if self.expected > 0 || m.delivered > 0 {
            let _ = writeln!(
                out,
                "delivered {} of {} expected (missing {}), {:.0} deliveries/s",
                m.delivered, self.expected, d.missing, d.deliveries_per_second
            );
            let [p50, p90, p99, p999, max] = self.latency_ms;
            let _ = writeln!(
                out,
                "latency ms: p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} p99.9 {p999:.2} max {max:.2}"
            );
        }
        if m.duplicates > 0 {
            let _ = writeln!(out, "duplicates (same sequence twice): {}", m.duplicates);
        }
        let behind = m.behind();
        if m.skipped > 0 || behind > 0 {
            let _ = writeln!(
                out,
                "missing in the clients' streams: {} sequence numbers jumped over, {} short of the room's last at the end",
                m.skipped, behind
            );
        }
        for gap in &m.gaps {
            let _ = writeln!(
                out,
                "  client {} in {}: {} -> {} after {} deliveries on connection {} ({})",
                gap.client,
                gap.room,
                gap.from,
                gap.to,
                gap.into_connection,
                gap.reconnects,
                gap.url
            );
        }
        if self.scenario.kind == crate::scenario::Kind::ReconnectStorm {
            let [p50, p90, p99, _, max] = self.back_ms;
            let _ = writeln!(
                out,
                "reconnect storm: {} back ({} resumed exactly, {} failed attempts); \
                 back after the kill: p50 {p50:.0} ms p90 {p90:.0} ms p99 {p99:.0} ms, all {max:.0} ms",
                m.reconnected, m.recovered, m.reconnect_errors
            );
        }
        if self.scenario.kind == crate::scenario::Kind::Soak {
            let _ = writeln!(
                out,
                "soak: {} reconnects of the clients' own, {} after a drop ({} resumed exactly, {} failed attempts); {} sends sent again; {} errors",
                m.churned, m.dropped, m.recovered, m.reconnect_errors, m.resent, m.server_errors
            );
        }
        for (pid, cost) in &self.servers {
            let _ = writeln!(
                out,
                "server {pid}: CPU {:.2} s, RSS {:.1} MiB -> peak {:.1} MiB",
                cost.cpu_seconds,
                cost.rss_before as f64 / 1048576.0,
                cost.rss_peak as f64 / 1048576.0
            );
        }
        if let Some(cpu) = d.cpu_us_per_delivery {
            let _ = writeln!(out, "server CPU per delivery: {cpu:.2} µs");
        }
        if let Some(rss) = d.rss_per_connection {
            let _ = writeln!(out, "server RSS per connection: {:.2} KiB", rss / 1024.0);
        }
        if let Some(rss) = d.rss_held_per_connection {
            let _ = writeln!(
                out,
                "server RSS per connection at the end (still connected): {:.2} KiB",
                rss / 1024.0
            );
        }
        out
    }
}

/// An SVG chart of latency quantiles (p50 to max) for one or more runs.
pub fn latency_chart(runs: &[RunResult]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 360.0;
    const LEFT: f64 = 60.0;
    const BOTTOM: f64 = 40.0;
    let labels = ["p50", "p90", "p99", "p99.9", "max"];
    let max = runs
        .iter()
        .flat_map(|r| r.latency_ms)
        .fold(1.0_f64, f64::max);
    let top = 10f64.powf(max.log10().ceil());
    let y = |ms: f64| {
        let ms = ms.max(0.01);
        H - BOTTOM - (ms.log10() + 2.0) / (top.log10() + 2.0) * (H - BOTTOM - 20.0)
    };
    let x = |i: usize| LEFT + 20.0 + i as f64 * (W - LEFT - 60.0) / 4.0;
    let colours = ["#3a5bd9", "#c0392b", "#1f8a4c", "#b7791f", "#7d3c98"];
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="{W}" height="{H}" fill="white"/><text x="{LEFT}" y="14">delivery latency (ms, log scale)</text>"#
    );
    let mut tick = 0.01;
    while tick <= top * 1.001 {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y0}" y2="{y0}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{tick}</text>"##,
            W - 20.0,
            LEFT - 6.0,
            y(tick) + 4.0,
            y0 = y(tick)
        );
        tick *= 10.0;
    }
    for (i, label) in labels.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{label}</text>"#,
            x(i),
            H - BOTTOM + 18.0
        );
    }
    for (n, run) in runs.iter().enumerate() {
        let colour = colours[n % colours.len()];
        let points: Vec<String> = run
            .latency_ms
            .iter()
            .enumerate()
            .map(|(i, ms)| format!("{:.1},{:.1}", x(i), y(*ms)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.join(" ")
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" fill="{colour}">{} · {}</text>"#,
            LEFT + 10.0,
            34.0 + 16.0 * n as f64,
            escape(&run.target),
            escape(&run.scenario.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Markdown table comparing runs, with ratios against the first.
pub fn comparison_table(runs: &[RunResult]) -> String {
    let mut out = String::from(
        "| target | scenario | clients | deliveries/s | missing | p50 ms | p99 ms | CPU µs/delivery | RSS KiB/conn |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt =
        |v: Option<f64>, scale: f64| v.map_or("–".to_owned(), |v| format!("{:.2}", v / scale));
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {:.2} | {:.2} | {} | {} |",
            run.target,
            run.scenario.name,
            run.scenario.clients,
            run.derived.deliveries_per_second,
            run.derived.missing,
            run.latency_ms[0],
            run.latency_ms[2],
            opt(run.derived.cpu_us_per_delivery, 1.0),
            opt(run.derived.rss_per_connection, 1024.0),
        );
    }
    if let Some((first, rest)) = runs.split_first().filter(|(_, rest)| !rest.is_empty()) {
        let _ = writeln!(
            out,
            "\n| {0} vs | CPU per delivery (peer ÷ {0}) | RSS per connection (peer ÷ {0}) | p99 latency (peer ÷ {0}) |\n|---|---|---|---|",
            first.target
        );
        let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}×", b / a),
            _ => "–".into(),
        };
        for other in rest {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                other.target,
                ratio(
                    first.derived.cpu_us_per_delivery,
                    other.derived.cpu_us_per_delivery
                ),
                ratio(
                    first.derived.rss_per_connection,
                    other.derived.rss_per_connection
                ),
                ratio(Some(first.latency_ms[2]), Some(other.latency_ms[2])),
            );
        }
        let _ = writeln!(out, "\nAbove 1× means {} costs less.", first.target);
    }
    if let Some(floor) = runs.iter().find(|run| run.target == FLOOR) {
        floor_table(&mut out, floor, runs);
    }
    out
}

/// The label of the floor peer's runs (loadtest/peers/floor).
pub const FLOOR: &str = "floor";

/// Every other run's cost as a multiple of the floor's: how far each is from
/// what the kernel alone costs on this machine.
fn floor_table(out: &mut String, floor: &RunResult, runs: &[RunResult]) {
    let times = |target: Option<f64>, floor: Option<f64>| match (target, floor) {
        (Some(target), Some(floor)) if floor > 0.0 => format!("{:.2}×", target / floor),
        _ => "–".into(),
    };
    let _ = writeln!(
        out,
        "\n| vs the floor | CPU per delivery (target ÷ floor) | RSS per connection (target ÷ floor) | p99 latency (target ÷ floor) |\n|---|---|---|---|"
    );
    for run in runs.iter().filter(|run| run.target != FLOOR) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            run.target,
            times(
                run.derived.cpu_us_per_delivery,
                floor.derived.cpu_us_per_delivery
            ),
            times(
                run.derived.rss_per_connection,
                floor.derived.rss_per_connection
            ),
            times(Some(run.latency_ms[2]), Some(floor.latency_ms[2])),
        );
    }
    let _ = writeln!(
        out,
        "\n1× is the floor: nothing can cost less on this machine."
    );
}

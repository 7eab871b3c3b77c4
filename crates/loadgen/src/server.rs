//! The server processes' cost, read from /proc: CPU seconds (user + system)
//! and resident memory, sampled while the run goes on to find the peak.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

/// Clock ticks per second of /proc/<pid>/stat (the Linux USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// One process's figures over the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessCost {
    /// CPU seconds used during the measured phase.
    pub cpu_seconds: f64,
    /// RSS before the clients connected, bytes.
    pub rss_before: u64,
    /// Highest RSS seen while the clients were connected, bytes.
    pub rss_peak: u64,
    /// RSS at the end of the measured phase, the clients still connected, bytes.
    #[serde(default)]
    pub rss_held: u64,
}

/// CPU seconds (user + system) of `pid` so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / TICKS_PER_SECOND
}

/// Resident memory of `pid`, bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// RSS of each pid: the peak and the last sample.
pub struct Sampled {
    /// Highest RSS seen, bytes.
    pub peaks: BTreeMap<u32, u64>,
    /// RSS when sampling stopped, bytes.
    pub last: BTreeMap<u32, u64>,
}

/// Samples the RSS of every pid until `stop` fires (before the clients
/// close: a close storm is not what holding connections costs).
pub async fn sample_peaks(pids: Vec<u32>, stop: tokio::sync::watch::Receiver<bool>) -> Sampled {
    let mut peaks: BTreeMap<u32, u64> = pids.iter().map(|&p| (p, rss_bytes(p))).collect();
    let mut stop = stop;
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                for (pid, peak) in peaks.iter_mut() {
                    *peak = (*peak).max(rss_bytes(*pid));
                }
            }
            _ = stop.changed() => {
                let last: BTreeMap<u32, u64> = pids.iter().map(|&p| (p, rss_bytes(p))).collect();
                for (pid, peak) in peaks.iter_mut() {
                    *peak = (*peak).max(last[pid]);
                }
                return Sampled { peaks, last };
            }
        }
    }
}

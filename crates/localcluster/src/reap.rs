//! Ending every process a test or a cluster started, their children included.
//!
//! Killing a child is not enough: nginx's workers, Chromium's helpers and
//! anything else a child starts would outlive it (nginx's workers keep
//! serving after their master is SIGKILLed). So each guarded command carries
//! a marker in its environment, which every process it starts inherits, and a
//! child started in a process group of its own has its group recorded (nginx
//! rewrites its processes' environment for their titles, so only the group
//! finds its workers). A [`Reaper`] kills every process that carries its
//! marker, and every recorded group, when it is dropped, whether the test
//! passed, failed or panicked.

use std::process::Command as StdCommand;

use parking_lot::Mutex;
use tokio::process::{Child, Command};

/// The environment variable that carries a reaper's marker.
pub const REAP_VAR: &str = "CHORUS_REAP";

/// Kills, when dropped, every process started with its marker.
#[derive(Debug)]
pub struct Reaper {
    /// `CHORUS_REAP=<this>` in a process's environment marks it as ours.
    marker: String,
    /// Process groups of children started as their group's leader.
    groups: Mutex<Vec<i32>>,
}

impl Default for Reaper {
    fn default() -> Self {
        Self::new()
    }
}

impl Reaper {
    /// A reaper with a marker of its own.
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Self {
            marker: format!("{}-{nanos}-{n}", std::process::id()),
            groups: Mutex::new(Vec::new()),
        }
    }

    /// Records `child`, started with `process_group(0)`, as the leader of a
    /// group to kill whole.
    pub fn track_group(&self, child: &Child) {
        if let Some(pid) = child.id() {
            self.groups.lock().push(pid as i32);
        }
    }

    /// Marks `command`: what it starts is killed with this reaper.
    pub fn mark<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.env(REAP_VAR, &self.marker)
    }

    /// Marks a standard-library `command`.
    pub fn mark_std<'a>(&self, command: &'a mut StdCommand) -> &'a mut StdCommand {
        command.env(REAP_VAR, &self.marker)
    }

    /// SIGKILLs every recorded group and every process that carries this
    /// reaper's marker; returns how many marked processes there were.
    pub fn kill_all(&self) -> usize {
        use nix::{
            sys::signal::{Signal, kill, killpg},
            unistd::Pid,
        };
        for group in self.groups.lock().drain(..) {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        let wanted = format!("{REAP_VAR}={}", self.marker);
        let pids = marked(wanted.as_bytes());
        for pid in &pids {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        pids.len()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The processes (other than this one) whose environment holds `entry`.
fn marked(entry: &[u8]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    processes
        .filter_map(|p| p.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == entry))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kills_a_tracked_group_whose_processes_lost_the_marker() {
        let reaper = Reaper::new();
        // `env -i` starts the sleeps without the marker, as nginx's workers are.
        let mut command = Command::new("sh");
        command
            .args(["-c", "env -i sleep 301 & env -i sleep 301 & wait"])
            .process_group(0);
        let mut shell = reaper.mark(&mut command).spawn().unwrap();
        reaper.track_group(&shell);
        let group = shell.id().unwrap() as i32;
        let in_group = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|p| p.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| {
                    nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(*pid)))
                        .is_ok_and(|g| g.as_raw() == group)
                })
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| c.starts_with("sleep"))
                })
                .count()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while in_group() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the sleeps never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(reaper);
        shell.wait().await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while in_group() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "a process of the group survived"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn kills_what_a_marked_child_started() {
        let reaper = Reaper::new();
        // A shell whose own child (the sleep) would outlive a kill of the shell.
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 300 & sleep 300 & wait"]);
        let mut shell = reaper.mark(&mut command).spawn().unwrap();
        let wanted = format!("{REAP_VAR}={}", reaper.marker);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while marked(wanted.as_bytes()).len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the sleeps never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(reaper.kill_all(), 3);
        shell.wait().await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !marked(wanted.as_bytes()).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "a marked process survived"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

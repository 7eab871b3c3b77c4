//! A real S3-compatible server for tests: `s3s-fs` (from crates.io; the test
//! command installs it when missing) on a free loopback port, over a
//! temporary directory, killed when dropped.

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use chorus_localcluster::reap::Reaper;
use tokio::process::{Child, Command};

use crate::redis::free_port;

/// The access key the server takes.
pub const S3_ACCESS_KEY: &str = "chorus-test";
/// The secret key the server takes.
pub const S3_SECRET_KEY: &str = "chorus-test-secret-0123456789";

/// Bound on the server's start.
const WAIT: Duration = Duration::from_secs(15);

/// A running `s3s-fs` with one bucket.
pub struct S3Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bucket made for the test.
    pub bucket: String,
    /// Its data (each bucket is a folder).
    dir: tempfile::TempDir,
    /// The process, `None` once killed.
    child: Option<Child>,
    /// Kills it when the test ends, however it ends.
    reaper: Reaper,
}

/// The `s3s-fs` binary: `$CHORUS_S3S_FS`, on the `PATH`, or in cargo's bin folder.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHORUS_S3S_FS") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("s3s-fs"))
            .find(|path| path.is_file())
    });
    let cargo_bin = || {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
        home.map(|home| home.join("bin").join("s3s-fs"))
    };
    on_path
        .or_else(cargo_bin)
        .filter(|path| path.is_file())
        .expect(
            "s3s-fs not found: cargo install s3s-fs --version 0.14.1 --features binary --locked",
        )
}

impl S3Server {
    /// A server with an empty bucket `bucket`.
    pub async fn start(bucket: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join(bucket)).expect("making the bucket");
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            bucket: bucket.to_owned(),
            dir,
            child: None,
            reaper: Reaper::new(),
        };
        server.spawn().await;
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the server at once (SIGKILL).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port, over the same data.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let child = self
            .reaper
            .mark(&mut Command::new(binary()))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.addr.port().to_string(),
            ])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("running s3s-fs");
        self.child = Some(child);
        let addr = self.addr;
        let listening = tokio::time::timeout(WAIT, async move {
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            listening.is_ok(),
            "s3s-fs did not listen on {addr} within {WAIT:?}"
        );
    }
}

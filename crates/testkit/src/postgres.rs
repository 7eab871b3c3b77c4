//! A real PostgreSQL for tests: Debian's `postgresql` (the test command
//! installs it when missing), initialised in a temporary directory and
//! started on a free loopback port, killed when dropped. As root (CI), the
//! server runs as the `postgres` user, since PostgreSQL refuses root.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use chorus_localcluster::reap::Reaper;
use tokio::process::{Child, Command};

use crate::redis::free_port;

/// The database user the tests connect as (trust authentication on loopback).
pub const POSTGRES_USER: &str = "chorus";
/// Bound on a start.
const WAIT: Duration = Duration::from_secs(30);

/// A running PostgreSQL with an empty database `postgres`.
pub struct Postgres {
    /// Where it listens, on 127.0.0.1.
    pub port: u16,
    /// Its data directory and socket directory.
    dir: tempfile::TempDir,
    /// The server's programs (`initdb`, `postgres`, `pg_isready`).
    bin: PathBuf,
    /// The postmaster, `None` once killed.
    child: Option<Child>,
    /// Kills it (and its backends) when the test ends, however it ends.
    reaper: Reaper,
}

/// Where `initdb` is: `$CHORUS_PG_BIN`, Debian's newest
/// `/usr/lib/postgresql/<version>/bin`, or the `PATH`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHORUS_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    debian.sort_by_key(|bin| {
        let version = bin.parent().and_then(Path::file_name);
        version.and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).find(|dir| dir.join("initdb").is_file())
        })
    };
    debian
        .pop()
        .or_else(on_path)
        .expect("PostgreSQL not found: apt-get install postgresql (or set CHORUS_PG_BIN)")
}

/// Whether this process runs as root (PostgreSQL then runs as `postgres`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(line.split_whitespace().nth(1)? == "0")
        })
        .unwrap_or(false)
}

impl Postgres {
    /// A new server with an empty database.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Like [`Self::start`], accepting TLS connections only, with a
    /// certificate for 127.0.0.1 from a CA made up for the test ([`Self::tls_ca`]).
    pub async fn start_tls() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bin = bin_dir();
        let mut server = Self {
            port: free_port(),
            dir,
            bin,
            child: None,
            reaper: Reaper::new(),
        };
        if is_root() {
            let owned = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.dir.path())
                .status()
                .expect("running chown");
            assert!(
                owned.success(),
                "chown of the data directory to postgres failed"
            );
        }
        let data = server.data();
        let output = server
            .command("initdb")
            .args([
                "-U",
                POSTGRES_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .await
            .expect("running initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if tls {
            server.require_tls();
        }
        server.spawn().await;
        server
    }

    /// `postgres://chorus@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{POSTGRES_USER}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// Kills the server at once: the postmaster and every backend (SIGKILL;
    /// a backend outlives its postmaster for a while otherwise).
    pub async fn kill(&mut self) {
        self.reaper.kill_all();
        if let Some(mut child) = self.child.take() {
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port, over the same data (recovering).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// The CA that signed the server's certificate (servers from [`Self::start_tls`]).
    pub fn tls_ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Turns TLS on and refuses connections without it.
    fn require_tls(&self) {
        let dir = self.dir.path();
        crate::certs::write_ca_and_server_cert(dir);
        let data = self.data();
        let conf = format!(
            "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            dir.join("server.crt").display(),
            dir.join("server.key").display()
        );
        let mut settings =
            std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
        settings.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), settings).expect("writing postgresql.conf");
        let hba = std::fs::read_to_string(data.join("pg_hba.conf")).expect("pg_hba.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            format!("hostnossl all all all reject\n{hba}"),
        )
        .expect("writing pg_hba.conf");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod of the key");
        if is_root() {
            for name in ["server.key", "server.crt", "ca.crt"] {
                let owned = std::process::Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.join(name))
                    .status()
                    .expect("running chown");
                assert!(owned.success(), "chown of {name} failed");
            }
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` from the server's bin directory, as `postgres` when root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut setpriv = Command::new("setpriv");
            setpriv
                .args([
                    "--reuid=postgres",
                    "--regid=postgres",
                    "--init-groups",
                    "--",
                ])
                .arg(path);
            setpriv
        } else {
            Command::new(path)
        };
        command.stdin(Stdio::null());
        command
    }

    async fn spawn(&mut self) {
        let port = self.port.to_string();
        let data = self.data();
        let mut command = self.command("postgres");
        self.reaper
            .mark(&mut command)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port, "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(self.dir.path())
            // Test data: speed over durability (a kill still recovers what was committed to the WAL buffers' OS pages).
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        self.child = Some(command.spawn().expect("running postgres"));
        let isready = self.bin.join("pg_isready");
        let ready = tokio::time::timeout(WAIT, async {
            loop {
                let status = Command::new(&isready)
                    .args(["-q", "-h", "127.0.0.1", "-p", &port])
                    .status()
                    .await
                    .expect("running pg_isready");
                if status.success() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "postgres did not accept connections on port {port} within {WAIT:?}"
        );
    }
}

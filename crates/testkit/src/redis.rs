//! A real `redis-server` on a free loopback port, killed when dropped.
//!
//! Like a production Redis, it requires credentials: nodes connect as the ACL
//! user [`APP_USER`], allowed only the `chorus:*` keys and channels and no
//! dangerous commands; the test's own inspection client uses the admin password.

use std::{net::TcpListener as StdListener, process::Stdio};

use fred::{
    clients::Client,
    interfaces::{ClientLike, PubsubInterface},
    prelude::{Config, Value},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use chorus_localcluster::reap::Reaper;

use crate::WAIT;

/// The ACL user nodes connect as.
pub const APP_USER: &str = "chorus";
/// Its password.
pub const APP_PASSWORD: &str = "app-pw-7f3a9c1e5b";
/// The `default` (admin) user's password, for the test's inspection client.
pub(crate) const ADMIN_PASSWORD: &str = "admin-pw-2d8e4b6f0a";

/// A running `redis-server` owned by one test.
pub struct RedisServer {
    /// The server process; `None` while stopped.
    child: Option<Child>,
    /// The port it listens on (kept across restarts).
    port: u16,
    /// Working directory for its files.
    dir: tempfile::TempDir,
    /// Extra arguments given at start, reused at restart.
    extra: Vec<String>,
    /// The TLS port, when the server also speaks TLS (nodes use it; the test's
    /// inspection client keeps the plain port).
    tls_port: Option<u16>,
    /// Kills the server (whichever start it is) when the test ends, however it ends.
    reaper: Reaper,
}

impl RedisServer {
    /// Starts a server without persistence.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `["--appendonly", "yes"]`).
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for redis");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::start_in(dir, extra, false).await
    }

    /// Starts a server that also listens with TLS, with a certificate for 127.0.0.1
    /// signed by a CA made up for this test ([`tls_ca`](Self::tls_ca)).
    pub async fn start_tls() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for redis");
        crate::certs::write_ca_and_server_cert(dir.path());
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let extra = vec![
            "--tls-cert-file".into(),
            path("server.crt"),
            "--tls-key-file".into(),
            path("server.key"),
            "--tls-ca-cert-file".into(),
            path("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        Self::start_in(dir, extra, true).await
    }

    async fn start_in(mut dir: tempfile::TempDir, mut extra: Vec<String>, tls: bool) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self {
                child: None,
                port,
                dir,
                extra,
                tls_port: tls.then(free_port),
                reaper: Reaper::new(),
            };
            if server.spawn().await {
                return server;
            }
            (dir, extra) = (server.dir, server.extra);
        }
        panic!("could not start redis-server on a free port");
    }

    /// `redis://chorus:<password>@127.0.0.1:<port>`: the nodes' credentials
    /// (`rediss://` on the TLS port for a TLS server).
    pub fn url(&self) -> String {
        match self.tls_port {
            Some(port) => format!("rediss://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{port}"),
            None => format!("redis://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}", self.port),
        }
    }

    /// The CA file that signed a TLS server's certificate.
    pub fn tls_ca(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Its address.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The same server without credentials (refused by the server).
    pub fn url_without_credentials(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis://:<admin password>@127.0.0.1:<port>`: the `default` user, who
    /// may do anything (read the configuration, for one).
    pub fn admin_url(&self) -> String {
        format!("redis://:{ADMIN_PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the process (SIGSTOP) without closing its connections, as a
    /// stalled machine would; [`Self::resume`] lets it go on.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("a running server");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Whether the process runs (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port.
    pub async fn restart(&mut self) {
        self.kill().await;
        assert!(
            self.spawn().await,
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Returns false if the server exited before becoming ready (e.g. port taken).
    async fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        self.reaper
            .mark(&mut command)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--logfile",
                "",
            ])
            .args(["--dir", self.dir.path().to_str().expect("utf-8 temp path")])
            .args(["--appendonly", "no"])
            .args(["--requirepass", ADMIN_PASSWORD])
            .args(["--user", APP_USER, "on"])
            .arg(format!(">{APP_PASSWORD}"))
            .args(["~chorus:*", "&chorus:*", "+@all", "-@dangerous"])
            .args(&self.extra)
            .args(
                self.tls_port
                    .map(|p| vec!["--tls-port".to_owned(), p.to_string()])
                    .unwrap_or_default(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => panic!(
                "cannot run redis-server (install it: apt-get install redis-server): {error}"
            ),
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Ready to accept connections") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !ready {
            let _ = child.kill().await;
            return false;
        }
        // Keep draining its log so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        true
    }

    /// Fills the server past `maxmemory` with a key of its own (`fill`), as
    /// the rest of an application's data could; returns once Redis reports
    /// more memory used than allowed.
    pub async fn fill_memory(&self) {
        use fred::interfaces::KeysInterface;
        let client = self.client().await;
        let mut chunk = "x".repeat(256 * 1024);
        let mut last = String::new();
        for _ in 0..4096 {
            let info: String = client
                .info(Some(fred::types::InfoKind::Memory))
                .await
                .expect("INFO");
            let field = |name: &str| -> u64 {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            let (used, max) = (field("used_memory:"), field("maxmemory:"));
            assert!(
                max > 0,
                "fill_memory needs a server started with --maxmemory"
            );
            if used > max {
                let _ = client.quit().await;
                return;
            }
            let appended: Result<u64, _> = client.append("fill", chunk.as_str()).await;
            // Near the limit a large append is refused (its own request counts
            // as used memory): go on with smaller ones.
            if appended.is_err() && chunk.len() > 1024 {
                chunk.truncate(chunk.len() / 2);
            }
            last = format!("used {used} of {max}, last append: {appended:?}");
        }
        panic!("Redis never went past its maxmemory ({last})");
    }

    /// Frees what [`fill_memory`](Self::fill_memory) took.
    pub async fn free_memory(&self) {
        use fred::interfaces::KeysInterface;
        let client = self.client().await;
        let _: u64 = client.del("fill").await.expect("DEL");
        let _ = client.quit().await;
    }

    /// Sets `key` to the string `value`, whatever it held (to break a key's type).
    pub async fn set_string(&self, key: &str, value: &str) {
        use fred::interfaces::KeysInterface;
        let client = self.client().await;
        let _: () = client
            .set(key, value, None, None, false)
            .await
            .expect("SET");
        let _ = client.quit().await;
    }

    /// Milliseconds until `key` expires (-1: no expiry, -2: no such key).
    pub async fn pttl(&self, key: &str) -> i64 {
        use fred::interfaces::KeysInterface;
        let client = self.client().await;
        let left: i64 = client.pttl(key).await.expect("PTTL");
        let _ = client.quit().await;
        left
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) {
        use fred::interfaces::KeysInterface;
        let client = self.client().await;
        let _: u64 = client.del(key).await.expect("DEL");
        let _ = client.quit().await;
    }

    /// A connected client for inspecting the server.
    pub async fn client(&self) -> Client {
        let client = Client::new(
            Config::from_url(&self.admin_url()).unwrap(),
            None,
            None,
            None,
        );
        client.init().await.expect("connecting to the test redis");
        client
    }

    /// How many fields a hash has, or members a sorted set (0 when absent).
    pub async fn size(&self, key: &str) -> u64 {
        use fred::interfaces::{HashesInterface, KeysInterface, SortedSetsInterface};
        let client = self.client().await;
        let kind: String = client.r#type(key).await.expect("TYPE");
        let size = match kind.as_str() {
            "hash" => client.hlen(key).await.expect("HLEN"),
            "zset" => client.zcard(key).await.expect("ZCARD"),
            _ => 0,
        };
        let _ = client.quit().await;
        size
    }

    /// Stores a message as the publish script would, but relays it to nobody: what
    /// a node sees when pub/sub loses a message. Returns its sequence number.
    pub async fn store_without_relay(&self, room: &str, body: &str) -> u64 {
        use chorus_protocol::{ChatMessage, Envelope, RoomName, Sender};
        use fred::interfaces::{HashesInterface, StreamsInterface};
        let client = self.client().await;
        let state = format!("chorus:room:{{{room}}}:state");
        let log = format!("chorus:room:{{{room}}}:log");
        let seq: u64 = client.hincrby(&state, "seq", 1).await.expect("HINCRBY");
        let message = ChatMessage {
            id: uuid::Uuid::now_v7(),
            room: RoomName::parse(room).expect("room name"),
            from: Sender {
                id: "injector".into(),
                name: None,
                avatar: None,
                kind: None,
            },
            ts: 0,
            body: body.into(),
            seq: 0,
            epoch: None,
            mentions: Vec::new(),
            edited: None,
            deleted: false,
            reactions: Vec::new(),
            attachments: Vec::new(),
        };
        let id = message.id.to_string();
        let payload = Envelope::message("test", message).encode();
        let fields: Vec<(&str, Value)> = vec![
            ("m", Value::Bytes(payload)),
            ("t", Value::from(u64::MAX.to_string())),
            ("i", Value::from(id)),
        ];
        let _: Value = client
            .xadd(&log, false, None, format!("{seq}-0"), fields)
            .await
            .expect("XADD");
        let _ = client.quit().await;
        seq
    }

    /// Drops every pub/sub connection (`CLIENT KILL TYPE pubsub`), as a network
    /// blip would; returns how many were killed.
    pub async fn kill_pubsub_clients(&self) -> u64 {
        let client = self.client().await;
        let killed: Value = client
            .custom(
                fred::types::CustomCommand::new_static(
                    "CLIENT",
                    fred::types::ClusterHash::FirstKey,
                    false,
                ),
                vec!["KILL", "TYPE", "pubsub"],
            )
            .await
            .expect("CLIENT KILL TYPE pubsub");
        let _ = client.quit().await;
        killed.as_u64().unwrap_or(0)
    }

    /// Subscribers of `channel` (PUBSUB NUMSUB).
    pub async fn numsub(&self, channel: &str) -> i64 {
        let client = self.client().await;
        let reply: Vec<Value> = client.pubsub_numsub(channel).await.expect("PUBSUB NUMSUB");
        let _ = client.quit().await;
        reply.get(1).and_then(Value::as_i64).unwrap_or(0)
    }

    /// Calls of a command since start (INFO commandstats), e.g. `"subscribe"`.
    pub async fn command_calls(&self, command: &str) -> u64 {
        let client = self.client().await;
        let info: String = client
            .info(Some(fred::types::InfoKind::CommandStats))
            .await
            .expect("INFO commandstats");
        let _ = client.quit().await;
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

pub(crate) fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `INFO replication` of `server`, as its admin sees it.
pub(crate) async fn replication_info(server: &RedisServer) -> Option<String> {
    server
        .client()
        .await
        .info::<String>(Some(fred::types::InfoKind::Replication))
        .await
        .ok()
}

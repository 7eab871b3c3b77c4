//! Chorus nodes for tests: in-process on port 0, or as `chorus` processes.

use std::{
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use chorus_gateway::{Config, ServeError, serve};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use chorus_localcluster::reap::Reaper;

use crate::{WAIT, eventually};

/// A node running inside the test process.
pub struct InProcessNode {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its node id.
    pub id: String,
    /// Cancels it.
    shutdown: CancellationToken,
    /// Its `serve` task.
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl InProcessNode {
    /// Starts a node with `config` on a free loopback port and waits until it is ready.
    pub async fn start(config: Config) -> Self {
        let node = Self::start_unready(config).await;
        node.wait_ready().await;
        node
    }

    /// Starts a node and waits only until it answers `/livez` (it may not be ready).
    pub async fn start_unready(config: Config) -> Self {
        crate::init_logs();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let id = config.node_id.clone();
        let task = tokio::spawn(serve(listener, config, shutdown.clone()));
        let node = Self {
            addr,
            id,
            shutdown,
            task: Some(task),
        };
        eventually("node liveness", || async move {
            matches!(http_get(addr, "/livez").await, Ok((200, _))).then_some(())
        })
        .await;
        node
    }

    /// `ws://<addr>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_ready(self.addr).await;
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Shuts down and waits for `serve` to return (bounded by [`WAIT`]).
    pub async fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown.cancel();
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("node stops in time")
            .expect("serve task")
    }
}

impl Drop for InProcessNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A `chorus` process, killed when dropped.
pub struct ProcessNode {
    /// Where it listens (read from its first stdout line).
    pub addr: SocketAddr,
    /// The process.
    child: Child,
    /// Kills it when the test ends, however it ends.
    _reaper: Reaper,
}

impl ProcessNode {
    /// Runs `binary --listen 127.0.0.1:0 <args>` and waits until it is ready.
    pub async fn spawn(binary: &Path, args: &[&str]) -> Self {
        let log_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        Self::spawn_inner(binary, args, &log_level, None).await
    }

    /// Like [`spawn`](Self::spawn) at log level `log_level`, collecting everything the
    /// node writes to stderr into the returned buffer.
    pub async fn spawn_logged(
        binary: &Path,
        args: &[&str],
        log_level: &str,
    ) -> (Self, Arc<Mutex<String>>) {
        let logs = Arc::new(Mutex::new(String::new()));
        let node = Self::spawn_inner(binary, args, log_level, Some(logs.clone())).await;
        (node, logs)
    }

    async fn spawn_inner(
        binary: &Path,
        args: &[&str],
        log_level: &str,
        logs: Option<Arc<Mutex<String>>>,
    ) -> Self {
        let reaper = Reaper::new();
        let mut child = reaper
            .mark(&mut Command::new(binary))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("CHORUS_JWT_SECRET", crate::TEST_SECRET)
            .env("RUST_LOG", log_level)
            .stdout(Stdio::piped())
            .stderr(if logs.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("running the chorus binary");
        if let (Some(logs), Some(stderr)) = (logs, child.stderr.take()) {
            let mut lines = BufReader::new(stderr).lines();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("chorus prints its address in time")
            .expect("reading chorus stdout")
            .expect("chorus printed its address");
        let addr = line
            .strip_prefix("chorus listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from chorus: {line:?}"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        wait_ready(addr).await;
        Self {
            addr,
            child,
            _reaper: reaper,
        }
    }

    /// `ws://<addr>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// SIGKILL: the process dies at once, as in a crash.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM: asks for a graceful shutdown.
    pub fn terminate(&self) {
        use nix::{sys::signal, unistd::Pid};
        let pid = self.child.id().expect("process still running");
        signal::kill(Pid::from_raw(pid as i32), signal::Signal::SIGTERM).expect("sending SIGTERM");
    }

    /// Waits for the process to exit (bounded by `within`) and returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("chorus exits in time");
        status.expect("waiting for chorus").code()
    }
}

async fn wait_ready(addr: SocketAddr) {
    eventually("node readiness", || async move {
        match http_get(addr, "/readyz").await {
            Ok((200, _)) => Some(()),
            _ => None,
        }
    })
    .await;
}

/// A minimal HTTP/1.1 GET on loopback: returns the status and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, None, None).await
}

/// A GET with `Authorization: Bearer <token>`.
pub async fn http_get_authorized(
    addr: SocketAddr,
    path: &str,
    token: &str,
) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, None, Some(token)).await
}

/// A minimal HTTP/1.1 POST of a JSON body on loopback: returns the status and the body.
pub async fn http_post_json(
    addr: SocketAddr,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    http_request(addr, "POST", path, Some(body), None).await
}

/// An HTTP/1.1 request: `method path`, an optional JSON body and bearer
/// token; returns the status and the body as text. Bounded by [`WAIT`]: a server that accepts and never answers is an error,
/// not a test that hangs until the harness kills it.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    tokio::time::timeout(WAIT, http_exchange(addr, method, path, body, token))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{method} {path} on {addr}: no answer within {WAIT:?}"),
            ))
        })
}

async fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = match chunked {
        true => dechunk(body),
        false => body.to_owned(),
    };
    Ok((status, body))
}

/// The payload of a chunked body (`<hex size>\r\n<data>\r\n` ... `0\r\n\r\n`).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

/// The value of one sample on a node's `/metrics` (`name` with its labels, as printed), or 0.
pub async fn metric(addr: SocketAddr, sample: &str) -> f64 {
    crate::Scrape::of(addr).await.get(sample)
}

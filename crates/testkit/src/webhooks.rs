//! A webhook receiver for tests: a real HTTP server on loopback that checks
//! each request's Standard Webhooks signature on its own (not with the
//! gateway's signer), records what it got, and can refuse (503) or go away.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle};

/// The secret of test endpoints, as a keys file writes it.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver took (answered 2xx).
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// Whether `webhook-signature` verified with the secret.
    pub signed: bool,
    /// The body.
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    /// What it took, in arrival order.
    taken: Mutex<Vec<Received>>,
    /// Requests answered 503 (while down).
    refused: Mutex<usize>,
    /// Whether it answers 2xx.
    up: AtomicBool,
    /// Woken on every request.
    changed: Notify,
    /// How long each answer waits (a slow receiver).
    delay: Mutex<Duration>,
}

/// A webhook receiver on loopback.
pub struct WebhookReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it took.
    inner: Arc<Inner>,
    /// The server.
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    /// A receiver on a free loopback port, taking every request.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// A receiver on `addr`.
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("binding the receiver");
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            up: AtomicBool::new(true),
            ..Inner::default()
        });
        let app = Router::new()
            .route("/hook", post(take))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner, task }
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers 2xx (`true`) or 503 (`false`).
    pub fn set_up(&self, up: bool) {
        self.inner.up.store(up, Ordering::SeqCst);
    }

    /// Makes each answer wait `delay`.
    pub fn set_delay(&self, delay: Duration) {
        *self.inner.delay.lock().unwrap() = delay;
    }

    /// Everything taken so far, in arrival order.
    pub fn taken(&self) -> Vec<Received> {
        self.inner.taken.lock().unwrap().clone()
    }

    /// How many requests were taken so far (repeats included).
    pub fn count(&self) -> usize {
        self.inner.taken.lock().unwrap().len()
    }

    /// Requests refused so far.
    pub fn refused(&self) -> usize {
        *self.inner.refused.lock().unwrap()
    }

    /// Waits until `done` holds for what was taken (panics after `within`).
    pub async fn wait_until(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let waited = tokio::time::timeout(within, async {
            loop {
                let changed = self.inner.changed.notified();
                let taken = self.taken();
                if done(&taken) {
                    return taken;
                }
                changed.await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "webhook receiver: {what} not within {within:?}; took {:?}",
                self.taken()
            )
        })
    }

    /// Waits until `n` requests were refused (panics after `within`).
    pub async fn wait_refused(&self, n: usize, within: Duration) {
        let waited = tokio::time::timeout(within, async {
            loop {
                let changed = self.inner.changed.notified();
                if self.refused() >= n {
                    return;
                }
                changed.await;
            }
        })
        .await;
        assert!(waited.is_ok(), "fewer than {n} refused within {within:?}");
    }

    /// Stops listening.
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn take(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delay = *inner.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = if inner.up.load(Ordering::SeqCst) {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let id = header("webhook-id");
        let signed = verify(
            &id,
            &header("webhook-timestamp"),
            &header("webhook-signature"),
            &body,
        );
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        inner
            .taken
            .lock()
            .unwrap()
            .push(Received { id, signed, body });
        StatusCode::NO_CONTENT
    } else {
        *inner.refused.lock().unwrap() += 1;
        StatusCode::SERVICE_UNAVAILABLE
    };
    inner.changed.notify_waiters();
    status
}

/// The Standard Webhooks check, written from the specification.
fn verify(id: &str, timestamp: &str, signatures: &str, body: &[u8]) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(WEBHOOK_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// A `--webhooks-file` text with one endpoint per (name, url, events, rooms).
pub fn webhooks_file(endpoints: &[(&str, &str, &[&str], &[&str])]) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    endpoints
        .iter()
        .map(|(name, url, events, rooms)| {
            format!(
                "[[endpoints]]\nname = {name:?}\nurl = {url:?}\nsecret = {WEBHOOK_SECRET:?}\nevents = [{}]\nrooms = [{}]\n",
                list(events),
                list(rooms)
            )
        })
        .collect()
}

//! Clients that survive chaos, and the ledger that checks nothing was lost.
//!
//! [`Member`]s join rooms and record every message, `reset` and unrecovered
//! resume they see; when their connection dies they reconnect to another node
//! and resume each room from the last sequence number they saw. [`Publisher`]s
//! send with client message ids and resend whatever was not acknowledged
//! (same ids) after a reconnect. [`Ledger::report`] then compares: every
//! acknowledged message must reach every member of its room, once, in order.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, RwLock, atomic::Ordering},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpStream, task::JoinHandle};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use tokio_util::sync::CancellationToken;

use crate::Client;

mod ledger;

use ledger::Views;
pub use ledger::{Ledger, Report};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Flags for nodes under chaos traffic: rates high enough for the publishers,
/// and a quick position check.
pub const NODE_ARGS: [&str; 6] = [
    "--send-rate",
    "1000/s:1000",
    "--user-send-rate",
    "1000/s:1000",
    "--position-check-interval",
    "250ms",
];

/// Bound on connecting to one node; a dead one is skipped after it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before trying the next node (a client's reconnect backoff).
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// A connection silent this long is treated as dead.
const SILENCE: Duration = Duration::from_secs(10);

/// The node URLs clients may use; a restarted node replaces its entry.
#[derive(Clone, Default)]
pub struct Urls(Arc<RwLock<Vec<String>>>);

impl Urls {
    /// URLs of the nodes.
    pub fn new(urls: Vec<String>) -> Self {
        Self(Arc::new(RwLock::new(urls)))
    }

    /// Replaces node `i`'s URL.
    pub fn set(&self, i: usize, url: String) {
        self.0.write().unwrap()[i] = url;
    }

    /// Node `i`'s URL.
    pub fn get(&self, i: usize) -> String {
        self.0.read().unwrap()[i].clone()
    }

    fn pick(&self, attempt: usize) -> String {
        let urls = self.0.read().unwrap();
        urls[attempt % urls.len()].clone()
    }
}

/// A member that stays in its rooms through crashes.
pub struct Member {
    /// Its task.
    task: JoinHandle<()>,
}

impl Member {
    /// Starts a member of `rooms` (a user of its own) and waits until it has joined them all.
    pub async fn start(
        urls: Urls,
        first: usize,
        rooms: Vec<String>,
        ledger: Arc<Ledger>,
        stop: CancellationToken,
    ) -> Self {
        let views: Views = Arc::default();
        ledger.views.lock().unwrap().push(views.clone());
        let token = crate::token(&crate::fresh_user());
        let (joined_tx, joined_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(member_loop(
            urls, first, rooms, token, views, ledger, stop, joined_tx,
        ));
        tokio::time::timeout(crate::WAIT, joined_rx)
            .await
            .expect("member joined its rooms in time")
            .expect("member task alive");
        Self { task }
    }

    /// Waits for the member's task to end (after `stop`).
    pub async fn finish(self) {
        let _ = tokio::time::timeout(crate::WAIT, self.task).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn member_loop(
    urls: Urls,
    first: usize,
    rooms: Vec<String>,
    token: String,
    views: Views,
    ledger: Arc<Ledger>,
    stop: CancellationToken,
    joined_tx: tokio::sync::oneshot::Sender<()>,
) {
    let mut joined_tx = Some(joined_tx);
    let mut attempt = first;
    let mut connected_before = false;
    while !stop.is_cancelled() {
        let Some(mut ws) = connect(&urls.pick(attempt), &token).await else {
            attempt += 1;
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        };
        if std::mem::replace(&mut connected_before, true) {
            ledger.member_reconnects.fetch_add(1, Ordering::SeqCst);
        }
        let mut waiting: HashSet<String> = rooms.iter().cloned().collect();
        for room in &rooms {
            let view = views.lock().unwrap().get(room).cloned().unwrap_or_default();
            let join = if view.joined_once {
                json!({"type": "join", "room": room, "epoch": view.epoch, "after": view.last, "history": 0, "ref": room})
            } else {
                json!({"type": "join", "room": room, "history": 0, "ref": room})
            };
            if ws
                .send(Message::Text(join.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        loop {
            let frame = tokio::select! {
                () = stop.cancelled() => return,
                frame = tokio::time::timeout(SILENCE, ws.next()) => frame,
            };
            let text = match frame {
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(_))) => continue,
                _ => break,
            };
            let event: Value = serde_json::from_str(&text).expect("server sent JSON");
            let room = event["room"].as_str().unwrap_or_default().to_owned();
            match event["type"].as_str().unwrap_or_default() {
                "joined" => {
                    let mut views = views.lock().unwrap();
                    let view = views.entry(room.clone()).or_default();
                    if view.joined_once && event["recovered"] != true {
                        view.breaks += 1;
                    }
                    if !view.joined_once || event["recovered"] != true {
                        view.epoch = event["epoch"].as_u64().unwrap();
                        view.last = event["seq"].as_u64().unwrap();
                        view.restarted = view.joined_once;
                    }
                    view.joined_once = true;
                    drop(views);
                    waiting.remove(&room);
                    if let Some(tx) = joined_tx.take_if(|_| waiting.is_empty()) {
                        let _ = tx.send(());
                    }
                }
                "error" if event["ref"].is_string() => {
                    // A join refused while the backplane is down: start over on this node.
                    break;
                }
                "message" => {
                    let mut views = views.lock().unwrap();
                    let view = views.entry(room).or_default();
                    let seq = event["seq"].as_u64().unwrap();
                    if std::mem::take(&mut view.restarted) {
                        view.last = seq - 1;
                    }
                    if seq > view.last + 1 {
                        view.gaps += 1;
                    } else if seq <= view.last {
                        view.reorders += 1;
                    }
                    view.last = view.last.max(seq);
                    let body = event["body"].as_str().unwrap().to_owned();
                    view.messages.push((view.epoch, seq, body));
                }
                "reset" => {
                    let mut views = views.lock().unwrap();
                    let view = views.entry(room).or_default();
                    view.breaks += 1;
                    view.epoch = event["epoch"].as_u64().unwrap();
                    view.last = event["seq"].as_u64().unwrap();
                }
                _ => {}
            }
        }
        attempt += 1;
        if !stop.is_cancelled() {
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }
}

/// When publishers stop.
#[derive(Clone)]
pub struct Stops {
    /// No new messages after this; unacknowledged ones are still retried.
    pub stop: CancellationToken,
    /// Stop retrying too.
    pub give_up: CancellationToken,
}

/// A sender of numbered messages that retries until each is acknowledged.
pub struct Publisher {
    /// Its task.
    task: JoinHandle<()>,
}

impl Publisher {
    /// Starts sending one message every `every` to `rooms` in turn, until `stop`; then
    /// it keeps retrying what is unacknowledged until `give_up`.
    pub fn start(
        name: &str,
        urls: Urls,
        first: usize,
        rooms: Vec<String>,
        every: Duration,
        ledger: Arc<Ledger>,
        stops: Stops,
    ) -> Self {
        let Stops { stop, give_up } = stops;
        let name = name.to_owned();
        let token = crate::token(&crate::fresh_user());
        let task = tokio::spawn(async move {
            let mut outstanding: BTreeMap<u64, (String, String)> = BTreeMap::new();
            let mut next = 0u64;
            let mut attempt = first;
            let mut ticks = tokio::time::interval(every);
            while !(give_up.is_cancelled() || stop.is_cancelled() && outstanding.is_empty()) {
                let Some(mut ws) = connect(&urls.pick(attempt), &token).await else {
                    attempt += 1;
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                };
                let mut joined = HashSet::new();
                for room in &rooms {
                    let join = json!({"type": "join", "room": room, "history": 0, "ref": format!("join:{room}")});
                    let _ = ws.send(Message::Text(join.to_string().into())).await;
                }
                let mut resend_due = true;
                loop {
                    if stop.is_cancelled() && outstanding.is_empty() {
                        return;
                    }
                    tokio::select! {
                        () = give_up.cancelled() => return,
                        _ = ticks.tick() => {
                            if !stop.is_cancelled() && joined.len() == rooms.len() {
                                next += 1;
                                let room = rooms[next as usize % rooms.len()].clone();
                                let body = format!("{name}-{next}");
                                ledger.sent.fetch_add(1, Ordering::SeqCst);
                                outstanding.insert(next, (room.clone(), body.clone()));
                                if send(&mut ws, next, &room, &body).await.is_err() {
                                    break;
                                }
                            }
                            if resend_due && joined.len() == rooms.len() {
                                resend_due = false;
                                let pending: Vec<_> = outstanding.iter().filter(|(n, _)| **n != next).map(|(n, v)| (*n, v.clone())).collect();
                                for (n, (room, body)) in pending {
                                    ledger.resent.fetch_add(1, Ordering::SeqCst);
                                    if send(&mut ws, n, &room, &body).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        frame = tokio::time::timeout(SILENCE, ws.next()) => {
                            let text = match frame {
                                Ok(Some(Ok(Message::Text(text)))) => text,
                                Ok(Some(Ok(_))) => continue,
                                _ => break,
                            };
                            let event: Value = serde_json::from_str(&text).expect("server sent JSON");
                            let reference = event["ref"].as_str().unwrap_or_default();
                            match event["type"].as_str().unwrap_or_default() {
                                "joined" => { joined.insert(event["room"].as_str().unwrap().to_owned()); }
                                "sent" => {
                                    let n: u64 = reference.parse().expect("numbered ref");
                                    if event["duplicate"] == true {
                                        ledger.duplicate_acks.fetch_add(1, Ordering::SeqCst);
                                    }
                                    if let Some((room, body)) = outstanding.remove(&n) {
                                        ledger.ack(&room, body);
                                    }
                                }
                                // A refused join or send (backplane down): reconnect and retry everything.
                                "error" => break,
                                _ => {}
                            }
                        }
                    }
                }
                attempt += 1;
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        });
        Self { task }
    }

    /// Waits for the publisher to finish (every message acknowledged, or `give_up`).
    pub async fn finish(self) {
        let _ = self.task.await;
    }
}

/// Stops sending, waits (30 s at most each) for every send to be acknowledged and
/// every acknowledged message (of phase `from_phase` or later) to be delivered,
/// stops the members and reports; panics if an acknowledged message never arrived.
pub async fn settle(
    ledger: &Ledger,
    publishers: Vec<Publisher>,
    members: Vec<Member>,
    stops: &Stops,
    stop_members: &CancellationToken,
    from_phase: u32,
) -> Report {
    stops.stop.cancel();
    let all_acknowledged = async {
        for publisher in publishers {
            publisher.finish().await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), all_acknowledged)
        .await
        .is_err()
    {
        stops.give_up.cancel();
    }
    let delivered = tokio::time::timeout(Duration::from_secs(30), async {
        while !ledger.complete(from_phase) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    stop_members.cancel();
    for member in members {
        member.finish().await;
    }
    let report = ledger.report(from_phase);
    eprintln!(
        "chaos report: {report:?}, resent {}, duplicate acks {}",
        ledger.resent.load(Ordering::SeqCst),
        ledger.duplicate_acks.load(Ordering::SeqCst)
    );
    assert!(
        delivered.is_ok(),
        "not every acknowledged message arrived: {report:?}"
    );
    report
}

async fn send(ws: &mut Socket, n: u64, room: &str, body: &str) -> Result<(), ()> {
    let command = json!({"type": "send", "room": room, "body": body, "client_msg_id": body, "ref": n.to_string()});
    ws.send(Message::Text(command.to_string().into()))
        .await
        .map_err(|_| ())
}

async fn connect(url: &str, token: &str) -> Option<Socket> {
    let request = Client::request(url, None, Some(token));
    let (mut ws, _) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .ok()?
            .ok()?;
    // The welcome.
    match tokio::time::timeout(CONNECT_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(Message::Text(_)))) => Some(ws),
        _ => None,
    }
}

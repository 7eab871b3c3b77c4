//! Scenario files (`loadtest/scenarios/*.toml`): what to run, with parameters
//! that `--set key=value` can override.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The kinds of load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Hold connections open (in rooms of `room_size`) and measure memory.
    Idle,
    /// Every client in one room; `senders` of them send `rate` messages/s in total.
    BigRoom,
    /// Rooms of `room_size` members; every member sends `rate` messages/s.
    SmallRooms,
    /// Connect (with a token, into rooms of `room_size`) as fast as possible,
    /// `connect_concurrency` at a time.
    ConnectStorm,
    /// Rooms of `room_size`; `kill_after` into the phase the coordinator kills
    /// the node behind the first URL (`--kill-pid`), and its clients come back
    /// on the others, resuming their rooms. Members on the other nodes send
    /// `rate` messages/s each, so resume is checked too.
    ReconnectStorm,
    /// Chat-like traffic for a long time: rooms of `room_size`, every member
    /// sending `rate` messages/s (acknowledged, resent with the same
    /// `client_msg_id` after a reconnect), one other action every `chatter`
    /// (typing, a read marker, an edit of its own message, a presence query,
    /// a side room joined or left, a status change), and a reconnect of its
    /// own every `churn`, resuming its room; nodes may restart meanwhile.
    Soak,
}

/// What the clients talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Chorus: token on the upgrade, `join`, `send`, `message` events (JSON).
    #[default]
    Chorus,
    /// The gorilla/websocket chat hub: raw text frames broadcast to every client
    /// (queued messages joined with newlines into one frame).
    Gorilla,
    /// Socket.IO 4 (Engine.IO v4 over a WebSocket): token in the connect
    /// packet, `join` with an acknowledgement, `chat` and `message` events.
    #[serde(rename = "socketio")]
    SocketIo,
}

/// One scenario, as read from its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name for reports.
    pub name: String,
    /// What load to apply.
    pub kind: Kind,
    /// The protocol of the server under test.
    #[serde(default)]
    pub target: Target,
    /// WebSocket URLs of the targets (nodes, or nginx); clients are spread over them.
    pub urls: Vec<String>,
    /// Local addresses to connect from (e.g. 127.0.0.2 ...), to get past one
    /// address pair's ephemeral ports; empty: the system picks.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Connections in all.
    pub clients: usize,
    /// Big room: how many of the clients send.
    #[serde(default)]
    pub senders: usize,
    /// Big room: messages per second from all senders together. Small rooms:
    /// messages per second from each member.
    #[serde(default)]
    pub rate: f64,
    /// Message body size in bytes (at least 40).
    #[serde(default = "default_body")]
    pub body: usize,
    /// Members per room (small rooms).
    #[serde(default = "default_room_size")]
    pub room_size: usize,
    /// How long the measured phase lasts (`20s`, `2m`).
    #[serde(default = "default_duration")]
    pub duration: String,
    /// After sending stops: how long to wait for messages still in flight.
    #[serde(default = "default_settle")]
    pub settle: String,
    /// Connection attempts in flight at once while connecting.
    #[serde(default = "default_concurrency")]
    pub connect_concurrency: usize,
    /// Worker processes (each holds `clients / workers` connections).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Reconnect storm: when, into the measured phase, the node is killed.
    #[serde(default = "default_kill_after")]
    pub kill_after: String,
    /// Soak: how often each client reconnects by itself.
    #[serde(default = "default_churn")]
    pub churn: String,
    /// Soak: how often each client does something besides sending.
    #[serde(default = "default_chatter")]
    pub chatter: String,
}

fn default_body() -> usize {
    100
}
fn default_room_size() -> usize {
    10
}
fn default_duration() -> String {
    "20s".into()
}
fn default_settle() -> String {
    "5s".into()
}
fn default_concurrency() -> usize {
    500
}
fn default_workers() -> usize {
    1
}
fn default_kill_after() -> String {
    "5s".into()
}
fn default_churn() -> String {
    "60s".into()
}
fn default_chatter() -> String {
    "5s".into()
}

impl Scenario {
    /// Reads `path`, applies `key=value` overrides, and checks the result.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut table: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for item in overrides {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("--set {item}: expected key=value"))?;
            // A TOML value when it parses as one (numbers, arrays), else a string.
            let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.to_owned()));
            table.insert(key.to_owned(), parsed);
        }
        let scenario: Scenario = table
            .try_into()
            .with_context(|| format!("scenario {}", path.display()))?;
        scenario.check()?;
        Ok(scenario)
    }

    fn check(&self) -> Result<()> {
        if self.urls.is_empty() {
            bail!("scenario needs at least one url");
        }
        if self.clients == 0 || self.workers == 0 {
            bail!("clients and workers must be at least 1");
        }
        if self.body < 40 {
            bail!("body must be at least 40 bytes (it carries the send time)");
        }
        match self.kind {
            Kind::BigRoom if self.senders == 0 || self.senders > self.clients => {
                bail!("big_room needs 1 <= senders <= clients")
            }
            Kind::BigRoom | Kind::SmallRooms | Kind::Soak if self.rate <= 0.0 => {
                bail!("{:?} needs a positive rate", self.kind)
            }
            Kind::SmallRooms | Kind::ReconnectStorm | Kind::Soak if self.room_size < 2 => {
                bail!("room_size must be at least 2")
            }
            Kind::Soak if self.target != Target::Chorus => {
                bail!("soak needs resume and acknowledgements, which only Chorus has")
            }
            Kind::SmallRooms if self.target == Target::Gorilla => {
                bail!("the gorilla hub has no rooms: every message goes to every client")
            }
            Kind::ReconnectStorm if self.target != Target::Chorus => {
                bail!("reconnect_storm needs resume, which only Chorus has")
            }
            Kind::ReconnectStorm if self.urls.len() < 2 => {
                bail!("reconnect_storm needs at least two urls: one to kill, one to come back to")
            }
            Kind::ReconnectStorm if self.kill_after()? >= self.duration()? => {
                bail!("kill_after must be within the duration")
            }
            _ => {}
        }
        self.duration()?;
        self.settle()?;
        self.churn()?;
        self.chatter()?;
        Ok(())
    }

    /// Soak: each client's own reconnect period.
    pub fn churn(&self) -> Result<Duration> {
        humantime::parse_duration(&self.churn).context("churn")
    }

    /// Soak: each client's period of actions besides sending.
    pub fn chatter(&self) -> Result<Duration> {
        humantime::parse_duration(&self.chatter).context("chatter")
    }

    /// Reconnect storm: when the node is killed, from the phase's start.
    pub fn kill_after(&self) -> Result<Duration> {
        humantime::parse_duration(&self.kill_after).context("kill_after")
    }

    /// The measured phase.
    pub fn duration(&self) -> Result<Duration> {
        humantime::parse_duration(&self.duration).context("duration")
    }

    /// The wait for messages in flight.
    pub fn settle(&self) -> Result<Duration> {
        humantime::parse_duration(&self.settle).context("settle")
    }

    /// What client `i` does.
    pub fn role(&self, i: usize) -> Role {
        match self.kind {
            Kind::Idle | Kind::ConnectStorm => Role {
                room: Some(format!("idle-{}", i / self.room_size.max(1))),
                send_every: None,
            },
            Kind::BigRoom => {
                let stride = (self.clients / self.senders).max(1);
                let sends = i.is_multiple_of(stride) && i / stride < self.senders;
                Role {
                    room: Some("big".into()),
                    send_every: sends
                        .then(|| Duration::from_secs_f64(self.senders as f64 / self.rate)),
                }
            }
            Kind::SmallRooms => Role {
                room: Some(format!("small-{}", i / self.room_size)),
                send_every: Some(Duration::from_secs_f64(1.0 / self.rate)),
            },
            Kind::Soak => Role {
                room: Some(format!("soak-{}", i / self.room_size)),
                send_every: Some(Duration::from_secs_f64(1.0 / self.rate)),
            },
            // Clients of the first URL (the node that is killed) only listen,
            // so every message sent is one the server acknowledged.
            Kind::ReconnectStorm => Role {
                room: Some(format!("storm-{}", i / self.room_size)),
                send_every: (self.rate > 0.0 && !i.is_multiple_of(self.urls.len()))
                    .then(|| Duration::from_secs_f64(1.0 / self.rate)),
            },
        }
    }

    /// The index of client `i`'s first target URL, and its source address.
    pub fn endpoint(&self, i: usize) -> (usize, Option<&str>) {
        let source = (!self.sources.is_empty())
            .then(|| self.sources[(i / self.urls.len()) % self.sources.len()].as_str());
        (i % self.urls.len(), source)
    }
}

/// What one client does.
#[derive(Debug, Clone)]
pub struct Role {
    /// The room it joins.
    pub room: Option<String>,
    /// How often it sends, if it does.
    pub send_every: Option<Duration>,
}

//! A WebSocket chat client for tests. Every read has a deadline.

use std::collections::VecDeque;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        handshake::client::Request,
        http::{HeaderValue, Response},
    },
};

use crate::WAIT;

/// What a test can observe on a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A decoded event (from a text or a binary frame).
    Data(Value),
    /// A close frame with its code.
    Closed(u16),
    /// The connection ended without a close frame.
    Ended,
}

/// A test client.
pub struct Client {
    /// The socket.
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Events read while waiting for another one.
    pending: VecDeque<Value>,
    /// The `welcome` event.
    pub welcome: Value,
    /// Whether the server chose binary frames (MessagePack).
    pub binary: bool,
    /// Counter for generated refs.
    next_ref: u64,
}

impl Client {
    /// Connects (JSON) as a new user who may join and post anywhere, and reads `welcome`.
    pub async fn connect(url: &str) -> Self {
        Self::connect_with(url, None).await
    }

    /// Connects as a new user, offering `subprotocol`, and reads `welcome`.
    pub async fn connect_with(url: &str, subprotocol: Option<&str>) -> Self {
        let token = crate::token(&crate::fresh_user());
        let request = Self::request(url, subprotocol, Some(&token));
        Self::connect_request(request).await
    }

    /// Connects with `token` in the Authorization header, and reads `welcome`.
    pub async fn connect_as(url: &str, token: &str) -> Self {
        Self::connect_request(Self::request(url, None, Some(token))).await
    }

    /// Connects without a token (it must then send `auth`), and reads `welcome`.
    pub async fn connect_anonymous(url: &str) -> Self {
        Self::connect_request(Self::request(url, None, None)).await
    }

    /// A handshake request for `url`, with an optional subprotocol and bearer token.
    pub fn request(url: &str, subprotocol: Option<&str>, token: Option<&str>) -> Request {
        let mut request = url.into_client_request().expect("a WebSocket URL");
        if let Some(protocol) = subprotocol {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(protocol).unwrap(),
            );
        }
        if let Some(token) = token {
            request.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
        }
        request
    }

    /// Connects with a prepared request, and reads `welcome`.
    pub async fn connect_request(request: Request) -> Self {
        let url = request.uri().to_string();
        let (ws, response) = Self::handshake_request(request)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        let subprotocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok());
        let binary = subprotocol == Some("chorus.msgpack") || url.contains("encoding=msgpack");
        let mut client = Self {
            ws,
            pending: VecDeque::new(),
            welcome: Value::Null,
            binary,
            next_ref: 0,
        };
        client.welcome = client.expect("welcome").await;
        client
    }

    /// Only the WebSocket handshake of a prepared request; `Err` carries the HTTP refusal.
    pub async fn handshake_request(
        request: Request,
    ) -> Result<
        (
            WebSocketStream<MaybeTlsStream<TcpStream>>,
            Response<Option<Vec<u8>>>,
        ),
        tokio_tungstenite::tungstenite::Error,
    > {
        tokio::time::timeout(WAIT, connect_async_with_config(request, None, true))
            .await
            .expect("handshake in time")
    }

    /// Only the WebSocket handshake, without a token; `Err` carries the HTTP refusal.
    pub async fn handshake(
        url: &str,
        subprotocol: Option<&str>,
    ) -> Result<
        (
            WebSocketStream<MaybeTlsStream<TcpStream>>,
            Response<Option<Vec<u8>>>,
        ),
        tokio_tungstenite::tungstenite::Error,
    > {
        let mut request = url.into_client_request()?;
        if let Some(protocol) = subprotocol {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(protocol).unwrap(),
            );
        }
        tokio::time::timeout(WAIT, connect_async_with_config(request, None, true))
            .await
            .expect("handshake in time")
    }

    /// Sends a JSON command (as MessagePack if the connection is binary).
    pub async fn send(&mut self, command: Value) {
        let frame = if self.binary {
            Message::Binary(rmp_serde::to_vec_named(&command).unwrap().into())
        } else {
            Message::Text(command.to_string().into())
        };
        self.send_frame(frame).await;
    }

    /// Sends a raw frame.
    pub async fn send_frame(&mut self, frame: Message) {
        tokio::time::timeout(WAIT, self.ws.send(frame))
            .await
            .expect("send in time")
            .expect("send");
    }

    /// The next event, connection end included.
    pub async fn next(&mut self) -> Event {
        if let Some(value) = self.pending.pop_front() {
            return Event::Data(value);
        }
        self.read().await
    }

    /// The next event if one arrives within `within`.
    pub async fn next_within(&mut self, within: std::time::Duration) -> Option<Event> {
        if let Some(value) = self.pending.pop_front() {
            return Some(Event::Data(value));
        }
        tokio::time::timeout(within, self.read()).await.ok()
    }

    async fn read(&mut self) -> Event {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("an event in time");
            return match frame {
                None | Some(Err(_)) => Event::Ended,
                Some(Ok(Message::Text(text))) => {
                    Event::Data(serde_json::from_str(&text).expect("server sent JSON"))
                }
                Some(Ok(Message::Binary(bytes))) => {
                    Event::Data(rmp_serde::from_slice(&bytes).expect("server sent MessagePack"))
                }
                Some(Ok(Message::Close(frame))) => {
                    Event::Closed(frame.map(|f| u16::from(f.code)).unwrap_or(1005))
                }
                Some(Ok(_)) => continue,
            };
        }
    }

    /// The next event, which must be data.
    pub async fn next_data(&mut self) -> Value {
        match self.next().await {
            Event::Data(value) => value,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Waits for the first event matching `matches`, keeping the others for later reads.
    pub async fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&matches) {
            return self.pending.remove(i).unwrap();
        }
        // One deadline for the whole wait: other events arriving must not extend it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let Ok(event) = tokio::time::timeout_at(deadline, self.read()).await else {
                panic!(
                    "no {what} within {WAIT:?}; {} other events arrived meanwhile (last: {:?})",
                    self.pending.len(),
                    self.pending.back()
                );
            };
            match event {
                Event::Data(value) if matches(&value) => return value,
                Event::Data(value) => self.pending.push_back(value),
                other => panic!("connection ended ({other:?}) while waiting for {what}"),
            }
        }
    }

    /// Waits for the next event of type `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.wait_for(kind, |v| v["type"] == kind).await
    }

    /// Closes the connection normally (1000) and waits for it to end.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// Reads until the connection ends and returns how it ended (data is discarded).
    pub async fn closed(&mut self) -> Event {
        self.pending.clear();
        loop {
            match self.read().await {
                Event::Data(_) => continue,
                end => return end,
            }
        }
    }

    fn fresh_ref(&mut self) -> String {
        self.next_ref += 1;
        format!("r{}", self.next_ref)
    }

    /// Joins `room` and waits for `joined` (or panics with the error).
    pub async fn join(&mut self, room: &str) {
        self.room_command("join", room, "joined").await;
    }

    /// Sends a command with a fresh `ref` added and returns its reply (never a `message`).
    pub async fn request_reply(&mut self, mut command: Value) -> Value {
        let reference = self.fresh_ref();
        command["ref"] = json!(reference);
        self.send(command).await;
        self.wait_for("the reply", |v| {
            v["ref"] == reference.as_str() && v["type"] != "message"
        })
        .await
    }

    /// Joins with extra fields (`history`, `epoch`, `after`) and returns `joined`.
    pub async fn join_with(&mut self, room: &str, extra: Value) -> Value {
        let mut command = json!({"type": "join", "room": room});
        for (key, value) in extra.as_object().expect("extra fields are an object") {
            command[key] = value.clone();
        }
        let reply = self.request_reply(command).await;
        assert_eq!(reply["type"], "joined", "join {room}: {reply}");
        reply
    }

    /// Reads the next `n` messages of `room` and returns their sequence numbers and bodies.
    pub async fn messages_in(&mut self, room: &str, n: usize) -> Vec<(u64, String)> {
        let mut seen = Vec::with_capacity(n);
        for _ in 0..n {
            let message = self.message_in(room).await;
            seen.push((
                message["seq"].as_u64().expect("a message has a seq"),
                message["body"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        seen
    }

    /// Leaves `room` and waits for `left`.
    pub async fn leave(&mut self, room: &str) {
        self.room_command("leave", room, "left").await;
    }

    async fn room_command(&mut self, kind: &str, room: &str, success: &str) {
        let reference = self.fresh_ref();
        self.send(json!({"type": kind, "room": room, "ref": reference}))
            .await;
        let reply = self
            .wait_for("the reply", |v| v["ref"] == reference.as_str())
            .await;
        assert_eq!(reply["type"], success, "{kind} {room}: {reply}");
    }

    /// Sends `body` to `room` and returns the reply (`sent` or `error`).
    pub async fn say(&mut self, room: &str, body: &str) -> Value {
        let reference = self.fresh_ref();
        self.send(json!({"type": "send", "room": room, "body": body, "ref": reference}))
            .await;
        self.wait_for("send reply", |v| {
            v["ref"] == reference.as_str() && v["type"] != "message"
        })
        .await
    }

    /// Sends and asserts it was accepted; returns the message id.
    pub async fn say_ok(&mut self, room: &str, body: &str) -> String {
        let reply = self.say(room, body).await;
        assert_eq!(reply["type"], "sent", "send to {room}: {reply}");
        reply["id"].as_str().unwrap().to_owned()
    }

    /// Waits for the next `message` event in `room`.
    pub async fn message_in(&mut self, room: &str) -> Value {
        self.wait_for("a message", |v| v["type"] == "message" && v["room"] == room)
            .await
    }

    /// Round-trips an application ping: every event queued before it is then in `pending`.
    pub async fn sync(&mut self) {
        let reference = self.fresh_ref();
        self.send(json!({"type": "ping", "ref": reference})).await;
        self.wait_for("pong", |v| {
            v["type"] == "pong" && v["ref"] == reference.as_str()
        })
        .await;
    }

    /// Events read but not yet consumed.
    pub fn pending(&self) -> &VecDeque<Value> {
        &self.pending
    }
}

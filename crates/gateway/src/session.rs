//! One client's chat state and the handling of its commands.
//!
//! Commands of one connection are handled in order, one at a time. Replies go
//! through the same outbox as room messages, so their order is the order of
//! events: `joined` precedes the room's messages, `left` follows the last one.

use std::{collections::HashSet, sync::Arc, time::SystemTime};

use chorus_protocol::{
    ChatMessage, Command, CommandError, Encoding, Envelope, ErrorCode, ErrorReply, RoomName,
    Sender, ServerEvent,
};
use uuid::Uuid;

use crate::{
    hub::{ConnId, Member, ws_message},
    node::Node,
    outbox::Outbox,
};

/// A connected client's chat state.
pub struct Session {
    /// The node serving the client.
    node: Arc<Node>,
    /// This connection's id within the node.
    conn: ConnId,
    /// Who the client is; stamped on every message it sends.
    user: Sender,
    /// How events are encoded for this client.
    encoding: Encoding,
    /// Where this client's frames go.
    outbox: Arc<Outbox>,
    /// Rooms joined (bounded by `max_rooms`).
    rooms: HashSet<RoomName>,
}

impl Session {
    /// A session with no rooms yet.
    pub fn new(
        node: Arc<Node>,
        conn: ConnId,
        user: Sender,
        encoding: Encoding,
        outbox: Arc<Outbox>,
    ) -> Self {
        Self {
            node,
            conn,
            user,
            encoding,
            outbox,
            rooms: HashSet::new(),
        }
    }

    /// Queues an event for this client.
    pub fn reply(&self, event: &ServerEvent<'_>) {
        self.outbox.push(ws_message(self.encoding.encode(event)));
    }

    /// Counts a command received, valid or not.
    pub fn note_command(&self) {
        self.node.metrics.commands_received.inc();
    }

    /// Answers a command that did not decode.
    pub fn refuse(&self, error: CommandError) {
        self.error(error.code, error.detail, error.reference, None);
    }

    fn error(
        &self,
        code: ErrorCode,
        message: String,
        reference: Option<String>,
        room: Option<&RoomName>,
    ) {
        self.node.metrics.command_errors.inc();
        self.reply(&ServerEvent::Error(&ErrorReply {
            code,
            message,
            reference,
            room: room.cloned(),
        }));
    }

    /// Handles one decoded command.
    pub async fn handle(&mut self, command: Command) {
        match command {
            Command::Join { room, reference } => self.join(room, reference).await,
            Command::Leave { room, reference } => self.leave(room, reference),
            Command::Send {
                room,
                body,
                reference,
            } => self.send(room, body, reference).await,
            Command::Ping { reference } => self.reply(&ServerEvent::Pong {
                reference: reference.as_deref(),
            }),
        }
    }

    async fn join(&mut self, room: RoomName, reference: Option<String>) {
        if self.rooms.contains(&room) {
            return self.error(
                ErrorCode::AlreadyJoined,
                "already a member of this room".into(),
                reference,
                Some(&room),
            );
        }
        if self.rooms.len() >= self.node.config.max_rooms {
            let message = format!(
                "a connection may be in at most {} rooms",
                self.node.config.max_rooms
            );
            return self.error(ErrorCode::TooManyRooms, message, reference, Some(&room));
        }
        if let Err(error) = self.node.subscriptions.acquire(&room).await {
            let message = format!("could not join: {error}");
            return self.error(
                ErrorCode::BackplaneUnavailable,
                message,
                reference,
                Some(&room),
            );
        }
        // Reply first, then become a member: every message of the room comes after `joined`.
        self.reply(&ServerEvent::Joined {
            room: &room,
            reference: reference.as_deref(),
        });
        let member = Member {
            outbox: self.outbox.clone(),
            encoding: self.encoding,
        };
        self.node.hub.add(&room, self.conn, member);
        self.rooms.insert(room);
    }

    fn leave(&mut self, room: RoomName, reference: Option<String>) {
        if !self.rooms.remove(&room) {
            return self.error(
                ErrorCode::NotJoined,
                "not a member of this room".into(),
                reference,
                Some(&room),
            );
        }
        // Stop membership first, then reply: no message of the room comes after `left`.
        self.node.hub.remove(&room, self.conn);
        self.reply(&ServerEvent::Left {
            room: &room,
            reference: reference.as_deref(),
        });
        self.node.subscriptions.release(&room);
    }

    async fn send(&mut self, room: RoomName, body: String, reference: Option<String>) {
        if !self.rooms.contains(&room) {
            return self.error(
                ErrorCode::NotJoined,
                "join the room before sending to it".into(),
                reference,
                Some(&room),
            );
        }
        if body.is_empty() {
            return self.error(
                ErrorCode::EmptyBody,
                "message body is empty".into(),
                reference,
                Some(&room),
            );
        }
        let max = self.node.config.max_body_bytes;
        if body.len() > max {
            let message = format!("message body is {} bytes; the limit is {max}", body.len());
            return self.error(ErrorCode::BodyTooLarge, message, reference, Some(&room));
        }
        let message = ChatMessage {
            id: Uuid::now_v7(),
            room,
            from: self.user.clone(),
            ts: now_millis(),
            body,
        };
        let (id, ts) = (message.id, message.ts);
        let room = message.room.clone();
        let payload = Envelope::message(self.node.config.node_id.as_str(), message).encode();
        match self.node.backplane.publish(&room, payload).await {
            Ok(()) => {
                self.node.metrics.messages_published.inc();
                self.reply(&ServerEvent::Sent {
                    room: &room,
                    id,
                    ts,
                    reference: reference.as_deref(),
                });
            }
            Err(error) => {
                let message = format!("message not delivered: {error}");
                self.error(
                    ErrorCode::BackplaneUnavailable,
                    message,
                    reference,
                    Some(&room),
                );
            }
        }
    }

    /// Leaves every room; called once when the connection ends.
    pub fn close(&mut self) {
        for room in self.rooms.drain() {
            self.node.hub.remove(&room, self.conn);
            self.node.subscriptions.release(&room);
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

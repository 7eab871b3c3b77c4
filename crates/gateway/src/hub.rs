//! Local room membership, ordering and fan-out.
//!
//! The hub is what the backplane delivers into. Each room with local members
//! has a [`Sequencer`] that passes each sequence number on once, in order; the
//! hub decodes such a message once, encodes the client event at most once per
//! encoding, and pushes the same frame (a shared buffer: cloning it allocates
//! nothing) into every local member's outbox. Pushing never waits, so a slow
//! client cannot slow the reader or anyone else. Gaps go to the repairer
//! (see [`crate::repair`]), whose answers come back through [`Hub::repaired`].
//!
//! A joining member is added first in catch-up mode: live messages are kept
//! aside while its history is read, then it gets `joined`, the history, and the
//! kept messages newer than the history, in that order, with no duplicate.

use std::{collections::HashMap, sync::Arc};

use axum::extract::ws::Message;
use bytes::Bytes;
use chorus_backplane::{Delivery, Inbound, Page, Position};
use chorus_protocol::{
    Encoding, Envelope, EnvelopeBody, Frame, NoticeKind, RoomName, Sender, ServerEvent, UserNotice,
};
use indexmap::IndexMap;
use parking_lot::Mutex;
use tokio::sync::mpsc;

mod presence_batch;

pub use presence_batch::PRESENCE_FLUSH;

use crate::{
    auth::{Access, Grants, RoomPolicy},
    metrics::Metrics,
    outbox::{Outbox, Pushed},
    repair::RepairRequest,
    sequencer::{Sequencer, Step},
};

/// Shards of the room table: fan-out in one room never blocks joins in most others.
const SHARDS: usize = 32;
/// Most live frames kept aside for a member whose history is being read; past
/// it the member is dropped as a slow consumer (it reconnects and resumes).
const CATCH_UP_MAX: usize = 2048;

/// How long a typing start lasts unless repeated; clients are told in each event.
pub const TYPING_EXPIRES: std::time::Duration = std::time::Duration::from_secs(6);

/// Identifies a connection within this node.
pub type ConnId = u64;

/// Rooms of one shard.
type RoomTable = HashMap<RoomName, Room>;

/// A room with local members.
#[derive(Default)]
struct Room {
    /// Members, by connection.
    members: IndexMap<ConnId, Member>,
    /// The room's order on this node.
    sequencer: Sequencer,
    /// Presence changes waiting for the next flush.
    presence: presence_batch::PendingPresence,
}

/// A local member of a room.
pub struct Member {
    /// Where the member's frames go.
    pub outbox: Arc<Outbox>,
    /// How the member wants events encoded.
    pub encoding: Encoding,
    /// Messages up to this sequence number reached the member with its history.
    floor: u64,
    /// Live frames kept aside while the member's history is read (`None` seq: always
    /// pass), with their publication time.
    catching_up: Option<Vec<(Option<u64>, Message, u64)>>,
}

impl Member {
    /// A member in catch-up mode.
    pub fn joining(outbox: Arc<Outbox>, encoding: Encoding) -> Self {
        Self {
            outbox,
            encoding,
            floor: 0,
            catching_up: Some(Vec::new()),
        }
    }

    /// Queues a frame (published at `published_us`), or keeps it aside while catching up.
    fn push(&mut self, seq: Option<u64>, frame: &Message, published_us: u64) -> Pushed {
        match &mut self.catching_up {
            None => self.outbox.push_live(frame.clone(), published_us),
            Some(kept) if kept.len() < CATCH_UP_MAX => {
                kept.push((seq, frame.clone(), published_us));
                Pushed::Queued
            }
            Some(_) => {
                self.outbox.overflow();
                Pushed::Dropped
            }
        }
    }
}

/// The read history is older than what the room follows already: read again.
#[derive(Debug)]
pub struct StaleRead;

/// Rooms with local members, and the fan-out into them.
pub struct Hub {
    /// Room -> local members and order, sharded by room hash. Locks are held only
    /// for map updates and one fan-out loop, never across an await.
    shards: Box<[Mutex<RoomTable>]>,
    /// Where fan-out is counted.
    metrics: Metrics,
    /// Gap repairs for the repairer task.
    repairs: mpsc::UnboundedSender<RepairRequest>,
    /// Local connections by user, for notices on the users' own channels.
    users: Mutex<HashMap<Arc<str>, Vec<UserConnection>>>,
    /// The node's room rules, for checking a mention's reader may read the room.
    policy: RoomPolicy,
    /// Status changes of local users, for the task that relays them to their rooms.
    statuses: mpsc::Sender<StatusChange>,
    /// Rooms with presence changes for the next flush.
    presence_due: presence_batch::DueRooms,
}

/// A local user's new status, to relay to the rooms they are in here.
pub struct StatusChange {
    /// Who.
    pub user: Sender,
    /// `online` or `away`.
    pub status: String,
}

/// A local connection as its user's notices reach it.
struct UserConnection {
    /// The connection.
    conn: ConnId,
    /// Where its frames go.
    outbox: Arc<Outbox>,
    /// How it wants events encoded.
    encoding: Encoding,
    /// What its token grants (a mention reaches it only for a room it may read).
    grants: Arc<Grants>,
}

impl Hub {
    /// An empty hub that sends gap repairs to `repairs` and local users' status
    /// changes to `statuses`.
    pub fn new(
        metrics: Metrics,
        repairs: mpsc::UnboundedSender<RepairRequest>,
        policy: RoomPolicy,
        statuses: mpsc::Sender<StatusChange>,
    ) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            metrics,
            repairs,
            users: Mutex::default(),
            policy,
            statuses,
            presence_due: presence_batch::DueRooms::default(),
        }
    }

    /// Registers a local connection of `user` for the user's notices.
    pub fn add_user_connection(
        &self,
        user: &str,
        conn: ConnId,
        outbox: Arc<Outbox>,
        encoding: Encoding,
        grants: Arc<Grants>,
    ) {
        let connection = UserConnection {
            conn,
            outbox,
            encoding,
            grants,
        };
        let mut users = self.users.lock();
        match users.get_mut(user) {
            Some(connections) => connections.push(connection),
            None => {
                users.insert(Arc::from(user), vec![connection]);
            }
        }
    }

    /// A connection's token was refreshed: what it grants now.
    pub fn update_user_grants(&self, user: &str, conn: ConnId, grants: Arc<Grants>) {
        let mut users = self.users.lock();
        let connection = users
            .get_mut(user)
            .and_then(|connections| connections.iter_mut().find(|c| c.conn == conn));
        if let Some(connection) = connection {
            connection.grants = grants;
        }
    }

    /// Forgets a local connection of `user`.
    pub fn remove_user_connection(&self, user: &str, conn: ConnId) {
        let mut users = self.users.lock();
        if let Some(connections) = users.get_mut(user) {
            connections.retain(|c| c.conn != conn);
            if connections.is_empty() {
                users.remove(user);
            }
        }
    }

    fn shard(&self, room: &str) -> &Mutex<RoomTable> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room);
        &self.shards[(hash as usize) % SHARDS]
    }

    /// Adds a member in catch-up mode: live messages are kept aside for it from now on.
    pub fn begin_join(&self, room: &RoomName, conn: ConnId, member: Member) {
        let mut shard = self.shard(room.as_str()).lock();
        let entry = shard.entry(room.clone()).or_insert_with(|| {
            self.metrics.rooms_local.inc();
            Room::default()
        });
        entry.members.insert(conn, member);
    }

    /// Completes a join: queues `joined` and the history read at `position`, then
    /// the kept live messages newer than it, and makes the member live.
    pub fn finish_join(
        &self,
        room: &RoomName,
        conn: ConnId,
        position: Position,
        frames: Vec<Message>,
    ) -> Result<(), StaleRead> {
        let mut shard = self.shard(room.as_str()).lock();
        let Some(entry) = shard.get_mut(room) else {
            return Ok(());
        };
        let Room {
            members, sequencer, ..
        } = entry;
        let mut steps = Vec::new();
        if !sequencer.start(position, &mut |step| steps.push(step)) {
            return Err(StaleRead);
        }
        // Held messages the start released go to everyone (the joiner keeps them aside).
        for step in steps {
            self.apply(room.as_str(), members, step);
        }
        let Some(member) = members.get_mut(&conn) else {
            return Ok(());
        };
        for frame in frames {
            member.outbox.push(frame);
        }
        let mut floor = position.seq;
        for (seq, frame, published_us) in member.catching_up.take().unwrap_or_default() {
            match seq {
                Some(seq) if seq <= floor => {}
                _ => {
                    member.outbox.push_live(frame, published_us);
                    floor = floor.max(seq.unwrap_or(0));
                }
            }
        }
        member.floor = floor;
        Ok(())
    }

    /// Removes a member; no message delivered after this returns reaches it.
    pub fn remove(&self, room: &RoomName, conn: ConnId) {
        let mut shard = self.shard(room.as_str()).lock();
        if let Some(entry) = shard.get_mut(room) {
            entry.members.swap_remove(&conn);
            if entry.members.is_empty() {
                shard.remove(room);
                self.metrics.rooms_local.dec();
            }
        }
    }

    /// Whether connection `conn` is a member of `room` on this node.
    pub fn is_member(&self, room: &RoomName, conn: ConnId) -> bool {
        let shard = self.shard(room.as_str()).lock();
        shard
            .get(room)
            .is_some_and(|entry| entry.members.contains_key(&conn))
    }

    /// The position this node has delivered `room` up to, once its start is known.
    pub fn position(&self, room: &RoomName) -> Option<Position> {
        let shard = self.shard(room.as_str()).lock();
        shard.get(room).and_then(|entry| entry.sequencer.position())
    }

    /// Every room whose start is known, with its position (for the position check).
    pub fn positions(&self) -> Vec<(RoomName, Position)> {
        let mut rooms = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            rooms.extend(shard.iter().filter_map(|(room, entry)| {
                entry
                    .sequencer
                    .position()
                    .map(|position| (room.clone(), position))
            }));
        }
        rooms
    }

    /// Hands a room's position, read from the backplane, to its sequencer.
    pub fn check(&self, room: &RoomName, position: Position, delivered_before: Position) {
        self.with_sequencer(room, |sequencer, out| {
            sequencer.check(position, delivered_before, &mut { out })
        });
    }

    /// Hands the answer to a repair request to the room's sequencer.
    pub fn repaired(&self, room: &RoomName, token: u64, page: Option<Page>) {
        self.with_sequencer(room, |sequencer, out| {
            sequencer.repaired(token, page, &mut { out })
        });
    }

    fn with_sequencer(
        &self,
        room: &RoomName,
        f: impl FnOnce(&mut Sequencer, &mut dyn FnMut(Step)),
    ) {
        let mut shard = self.shard(room.as_str()).lock();
        let Some(entry) = shard.get_mut(room) else {
            return;
        };
        let Room {
            members, sequencer, ..
        } = entry;
        f(sequencer, &mut |step| {
            self.apply(room.as_str(), members, step)
        });
    }

    /// Carries out one sequencer step.
    fn apply(&self, room: &str, members: &mut IndexMap<ConnId, Member>, step: Step) {
        match step {
            Step::Deliver {
                seq,
                payload,
                repaired,
            } => {
                if repaired {
                    self.metrics.repaired_messages.inc();
                }
                match Envelope::decode(&payload) {
                    Ok(envelope) => self.fan_out(members, seq, envelope),
                    Err(error) => {
                        self.metrics.backplane_undecodable.inc();
                        tracing::warn!(%error, room, "dropping undecodable backplane message");
                    }
                }
            }
            Step::Reset { epoch, seq, reason } => {
                self.metrics.reset(reason);
                tracing::warn!(
                    room,
                    epoch,
                    seq,
                    reason,
                    "room continuity broken; members told"
                );
                let Ok(room) = RoomName::parse(room) else {
                    return;
                };
                let event = ServerEvent::Reset {
                    room: &room,
                    epoch,
                    seq,
                    reason,
                };
                let mut frames: [Option<Message>; Encoding::ALL.len()] = Default::default();
                for member in members.values_mut() {
                    member.floor = 0;
                    let frame = frames[member.encoding.index()]
                        .get_or_insert_with(|| ws_message(member.encoding.encode(&event)));
                    member.push(None, frame, 0);
                }
            }
            Step::Repair {
                token,
                epoch,
                after,
                upto,
            } => {
                self.metrics.gap_repairs.inc();
                tracing::debug!(
                    room,
                    epoch,
                    after,
                    upto,
                    "gap in room sequence; repairing from history"
                );
                let Ok(room) = RoomName::parse(room) else {
                    return;
                };
                let _ = self.repairs.send(RepairRequest {
                    room,
                    token,
                    after,
                    upto,
                });
            }
            Step::Dropped => self.metrics.duplicates_dropped.inc(),
        }
    }

    /// Pushes a message (or a change to one) to every local member that does
    /// not have it yet, encoding once per encoding.
    fn fan_out(&self, members: &mut IndexMap<ConnId, Member>, seq: u64, envelope: Envelope) {
        let published_us = envelope.published_us;
        let mut body = envelope.body;
        if let EnvelopeBody::Message(message) = &mut body {
            message.seq = seq;
        }
        let event = match &body {
            EnvelopeBody::Message(message) => ServerEvent::Message(message),
            EnvelopeBody::Change(change) => change.event(seq),
            // Signals travel unnumbered (see `signal`); a numbered one is ignored.
            _ => return,
        };
        let mut frames: [Option<Message>; Encoding::ALL.len()] = Default::default();
        let (mut recipients, mut dropped) = (0u64, 0u64);
        for member in members.values_mut() {
            if seq <= member.floor {
                continue;
            }
            recipients += 1;
            let frame = frames[member.encoding.index()]
                .get_or_insert_with(|| ws_message(member.encoding.encode(&event)));
            if member.push(Some(seq), frame, published_us) == Pushed::Dropped {
                dropped += 1;
            }
        }
        self.metrics.fanout.observe(recipients as f64);
        self.metrics.frames_delivered.inc_by(recipients - dropped);
        self.metrics.outbox_drops.inc_by(dropped);
    }
}

impl Hub {
    /// Fans a signal (typing) out to the room's live members: encoded once per
    /// encoding, dropped for members catching up or falling behind.
    fn fan_out_signal(&self, room: &str, payload: &[u8]) {
        let body = match Envelope::decode(payload) {
            Ok(envelope) => envelope.body,
            Err(error) => {
                self.metrics.backplane_undecodable.inc();
                tracing::debug!(%error, room, "dropping undecodable signal");
                return;
            }
        };
        if let EnvelopeBody::Notice(notice) = body {
            return self.notify(&notice);
        }
        let mut shard = self.shard(room).lock();
        let Some(entry) = shard.get_mut(room) else {
            return;
        };
        let mut frames: [Option<Message>; Encoding::ALL.len()] = Default::default();
        match body {
            EnvelopeBody::Typing(signal) => {
                let event = ServerEvent::Typing {
                    room: &signal.room,
                    user: &signal.from,
                    state: if signal.active { "start" } else { "stop" },
                    expires_in_ms: TYPING_EXPIRES.as_millis() as u64,
                };
                let mut dropped = 0u64;
                for member in entry.members.values() {
                    if member.catching_up.is_some() {
                        dropped += 1;
                        continue;
                    }
                    let frame = frames[member.encoding.index()]
                        .get_or_insert_with(|| ws_message(member.encoding.encode(&event)));
                    if member.outbox.push_signal(frame.clone()) == Pushed::Dropped {
                        dropped += 1;
                    }
                }
                self.metrics.signals_dropped.inc_by(dropped);
            }
            // Receipts are state, not chatter: queued like messages (kept aside
            // for a member catching up).
            EnvelopeBody::Receipt(signal) => push_state(
                &mut entry.members,
                &ServerEvent::Receipt {
                    room: &signal.room,
                    user: &signal.from,
                    seq: signal.seq,
                },
            ),
            // Presence is state too, gathered for the room's next flush.
            EnvelopeBody::Presence(signal) => self.gather_presence(&mut entry.presence, signal),
            // A status is state: queued like a receipt.
            EnvelopeBody::Status(signal) => push_state(
                &mut entry.members,
                &ServerEvent::Status {
                    room: Some(&signal.room),
                    user: &signal.user,
                    status: &signal.status,
                },
            ),
            EnvelopeBody::Message(_) | EnvelopeBody::Notice(_) | EnvelopeBody::Change(_) => {}
        }
    }

    /// Delivers a notice to its user's local connections; a message, read or
    /// mention notice skips those in the notice's room (they have it from the
    /// room), and a mention those whose token may not read the room.
    fn notify(&self, notice: &UserNotice) {
        let room = &notice.room;
        let mention = matches!(notice.kind, NoticeKind::Mention(_));
        let recipients: Vec<(ConnId, Arc<Outbox>, Encoding)> = {
            let users = self.users.lock();
            let Some(connections) = users.get(notice.to.as_str()) else {
                return;
            };
            connections
                .iter()
                .filter(|c| {
                    !mention || self.policy.access(&notice.to, &c.grants, room) != Access::Denied
                })
                .map(|c| (c.conn, c.outbox.clone(), c.encoding))
                .collect()
        };
        if let NoticeKind::Status(status) = &notice.kind {
            let change = StatusChange {
                user: notice.by.clone(),
                status: status.clone(),
            };
            if self.statuses.try_send(change).is_err() {
                self.metrics.signals_dropped.inc();
            }
        }
        let event = match &notice.kind {
            NoticeKind::DmStarted => ServerEvent::DmStarted {
                room,
                by: &notice.by,
            },
            NoticeKind::Message(message) => ServerEvent::Notification { room, message },
            NoticeKind::Read(seq) => ServerEvent::Receipt {
                room,
                user: &notice.by,
                seq: *seq,
            },
            NoticeKind::Draft(text) => ServerEvent::Draft { room, text },
            NoticeKind::Mention(message) => ServerEvent::Mention { room, message },
            NoticeKind::Status(status) => ServerEvent::Status {
                room: None,
                user: &notice.by,
                status,
            },
        };
        let skips_members = notice.kind.skips_members();
        let mut frames: [Option<Message>; Encoding::ALL.len()] = Default::default();
        for (conn, outbox, encoding) in recipients {
            if skips_members && self.is_member(room, conn) {
                continue;
            }
            let frame =
                frames[encoding.index()].get_or_insert_with(|| ws_message(encoding.encode(&event)));
            outbox.push(frame.clone());
        }
    }
}

impl Inbound for Hub {
    fn deliver(&self, room: &str, delivery: Delivery) {
        self.metrics.backplane_received.inc();
        let mut shard = self.shard(room).lock();
        let Some(entry) = shard.get_mut(room) else {
            // No local member: nobody to deliver to.
            return;
        };
        let Room {
            members, sequencer, ..
        } = entry;
        sequencer.accept(
            delivery.epoch,
            delivery.seq,
            delivery.payload,
            &mut |step| self.apply(room, members, step),
        );
    }

    fn signal(&self, room: &str, payload: Bytes) {
        // Not counted in `backplane_received`: that counts room messages.
        self.fan_out_signal(room, &payload);
    }
}

/// Queues a state event (a receipt, a presence change) for every member, like
/// a message: kept aside for a member catching up, never dropped first.
fn push_state(members: &mut IndexMap<ConnId, Member>, event: &ServerEvent<'_>) {
    let mut frames: [Option<Message>; Encoding::ALL.len()] = Default::default();
    for member in members.values_mut() {
        let frame = frames[member.encoding.index()]
            .get_or_insert_with(|| ws_message(member.encoding.encode(event)));
        member.push(None, frame, 0);
    }
}

/// Turns an encoded event into a WebSocket message.
pub fn ws_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.into()),
        Frame::Binary(bytes) => Message::Binary(bytes.into()),
    }
}

//! Notices to one user, wherever their connections are.
//!
//! Each user has a channel of their own through the backplane: users are
//! spread over [`chorus_protocol::USER_SHARDS`] shard rooms
//! ([`RoomName::user_shard`]), which every node holding a connection of a
//! shard's user subscribes to. A notice (a DM started, a message in a direct
//! room, a mention, a read marker, a draft, a status) is published on the
//! addressee's shard as a signal; each node hands it to the addressee's local
//! connections, registered here by user.

use std::{collections::HashMap, sync::Arc};

use chorus_backplane::PubSub;
use chorus_protocol::{Encoding, Envelope, NoticeKind, RoomName, Sender, ServerEvent, UserNotice};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    auth::{Access, Grants, RoomPolicy},
    chat::{frames::Frames, hub::ConnId, hub::Hub, outbox::Outbox},
    metrics::Metrics,
};

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
    /// Its id as its `welcome` named it.
    public_id: Uuid,
    /// Where its frames go.
    outbox: Arc<Outbox>,
    /// How it wants events encoded.
    encoding: Encoding,
    /// What its token grants (a mention reaches it only for a room it may read).
    grants: Arc<Grants>,
    /// When it was registered (ms since the Unix epoch), for the server API.
    since: u64,
}

/// A local connection as the server API lists it.
pub struct ConnectionInfo {
    /// The connection's id on this node.
    pub conn: ConnId,
    /// Its id as its `welcome` named it.
    pub public_id: Uuid,
    /// How it wants events encoded.
    pub encoding: Encoding,
    /// When it authenticated (ms since the Unix epoch).
    pub since: u64,
}

/// The local connections of each user, and the delivery of their notices.
pub struct Notices {
    /// User id -> their connections on this node.
    users: Mutex<HashMap<Arc<str>, Vec<UserConnection>>>,
    /// The node's room rules, for checking a mention's reader may read the room.
    policy: RoomPolicy,
    /// Status changes of local users, for the task that relays them to their rooms.
    statuses: mpsc::Sender<StatusChange>,
    /// Counts status changes dropped when that task falls behind.
    metrics: Metrics,
}

impl Notices {
    /// No connections yet; status changes go to `statuses`.
    pub fn new(policy: RoomPolicy, statuses: mpsc::Sender<StatusChange>, metrics: Metrics) -> Self {
        Self {
            users: Mutex::default(),
            policy,
            statuses,
            metrics,
        }
    }

    /// Registers a local connection of `user` for the user's notices.
    pub fn add(
        &self,
        user: &str,
        (conn, public_id): (ConnId, Uuid),
        (outbox, encoding): (Arc<Outbox>, Encoding),
        grants: Arc<Grants>,
    ) {
        let connection = UserConnection {
            conn,
            public_id,
            outbox,
            encoding,
            grants,
            since: chorus_protocol::unix_micros() / 1000,
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
    pub fn update_grants(&self, user: &str, conn: ConnId, grants: Arc<Grants>) {
        let mut users = self.users.lock();
        let connection = users
            .get_mut(user)
            .and_then(|connections| connections.iter_mut().find(|c| c.conn == conn));
        if let Some(connection) = connection {
            connection.grants = grants;
        }
    }

    /// Forgets a local connection of `user`.
    pub fn remove(&self, user: &str, conn: ConnId) {
        let mut users = self.users.lock();
        if let Some(connections) = users.get_mut(user) {
            connections.retain(|c| c.conn != conn);
            if connections.is_empty() {
                users.remove(user);
            }
        }
    }

    /// The local connections of `user`.
    pub fn connections_of(&self, user: &str) -> Vec<ConnectionInfo> {
        let users = self.users.lock();
        users.get(user).map_or_else(Vec::new, |connections| {
            connections
                .iter()
                .map(|c| ConnectionInfo {
                    conn: c.conn,
                    public_id: c.public_id,
                    encoding: c.encoding,
                    since: c.since,
                })
                .collect()
        })
    }

    /// Delivers a notice to its user's local connections; a message, read or
    /// mention notice skips those in the notice's room (they have it from the
    /// room), and a mention those whose token may not read the room.
    pub fn notify(&self, notice: &UserNotice, hub: &Hub) {
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
        if let NoticeKind::Disconnect(code) = notice.kind {
            for (_, outbox, _) in recipients {
                outbox.close_with(code);
            }
            return;
        }
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
            NoticeKind::Disconnect(_) => return,
        };
        let skips_members = notice.kind.skips_members();
        let mut frames = Frames::new(&event);
        for (conn, outbox, encoding) in recipients {
            if skips_members && hub.is_member(room, conn) {
                continue;
            }
            outbox.push(frames.get(encoding));
        }
    }
}

/// Publishes a notice about `room` from `by` to user `to` (best effort: a
/// notice that cannot be relayed is only logged).
pub async fn send(
    pubsub: &dyn PubSub,
    node_id: &str,
    to: &str,
    (room, by): (&RoomName, &Sender),
    kind: NoticeKind,
) {
    let notice = UserNotice {
        to: to.to_owned(),
        room: room.clone(),
        by: by.clone(),
        kind,
    };
    let payload = Envelope::notice(node_id, notice).encode();
    if let Err(error) = pubsub.signal(&RoomName::user_shard(to), payload).await {
        tracing::debug!(%error, %room, "notice not relayed");
    }
}

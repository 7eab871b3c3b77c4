//! Questions the server API asks the whole cluster, answered from each
//! node's memory: where a user is connected, which rooms have members.
//!
//! The asking node publishes the question on the `!nodes` room
//! ([`RoomName::nodes`]), which every node subscribes to from its start; each
//! node answers from its own tables on the asker's own room
//! ([`RoomName::node`]). The asker waits for every node the registry lists as
//! alive, at most [`ANSWER_TIMEOUT`], and names those that did not answer.
//! Nothing is written anywhere for this: connecting and joining cost nothing
//! more, and an answer is what the nodes hold at that moment.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use chorus_backplane::{BackplaneError, NodeRegistry, PubSub};
use chorus_protocol::{Encoding, RoomName};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{hub::Hub, notices::Notices, presence::LocalPresence};

/// Longest wait for the nodes' answers.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Most rooms one page of [`Question::Rooms`] lists.
pub const MAX_ROOMS_PAGE: usize = 1000;
/// Questions this node may have in flight; more are refused (`Busy`).
const MAX_ASKING: usize = 64;
/// Answers this node may be sending at once; questions past it go
/// unanswered (the asker names this node as missing).
const MAX_ANSWERING: usize = 32;
/// Payloads from the nodes' rooms waiting for the queries task.
const INBOX: usize = 256;
/// Pause before subscribing again to the nodes' rooms after a failure.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// What the cluster is asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Question {
    /// A user's connections, with the rooms each is in.
    User(String),
    /// The first `limit` rooms with members named after `after`, by name.
    Rooms {
        /// Only rooms named after this one.
        after: Option<String>,
        /// At most this many (capped at [`MAX_ROOMS_PAGE`]).
        limit: u32,
    },
}

/// One node's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    /// The user's connections on the node.
    User(Vec<UserConnection>),
    /// Room names, in order.
    Rooms(Vec<String>),
}

/// A user's connection as its node describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserConnection {
    /// The connection's id, as its `welcome` named it.
    pub conn: String,
    /// `json` or `msgpack`.
    pub encoding: String,
    /// When it authenticated (ms since the Unix epoch).
    pub since: u64,
    /// The rooms it is in, by name.
    pub rooms: Vec<String>,
}

/// What travels on the nodes' rooms.
#[derive(Debug, Serialize, Deserialize)]
enum Wire {
    /// A question from node `from`, to answer on its own room.
    Ask {
        id: u64,
        from: String,
        question: Question,
    },
    /// Node `node`'s answer to question `id`.
    Answer {
        id: u64,
        node: String,
        answer: Answer,
    },
}

/// The answers to one question.
#[derive(Debug)]
pub struct Gathered {
    /// Each answering node's id and answer.
    pub answers: Vec<(String, Answer)>,
    /// Nodes alive by the registry that did not answer in time.
    pub missing: Vec<String>,
}

/// Why a question got no answers.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The backplane failed (the registry could not be read, or the question
    /// not published).
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
    /// This node has as many questions in flight as it may.
    #[error("too many cluster questions in flight on this node")]
    Busy,
}

/// This node's side of the cluster questions: its pending questions and
/// what it answers from.
pub struct Queries {
    /// This node's id, named in questions and answers.
    node_id: String,
    /// Where answers to this node's questions arrive.
    own_room: RoomName,
    /// Publishes questions and answers.
    pubsub: Arc<dyn PubSub>,
    /// Lists the nodes alive, whose answers a question waits for.
    registry: Arc<dyn NodeRegistry>,
    /// Local connections by user.
    notices: Arc<Notices>,
    /// Local users by room.
    presence: Arc<LocalPresence>,
    /// Which connection is in which room.
    hub: Arc<Hub>,
    /// Ids of this node's questions.
    next_id: AtomicU64,
    /// Question id -> where its answers go (at most [`MAX_ASKING`]).
    asking: Mutex<HashMap<u64, mpsc::UnboundedSender<(String, Answer)>>>,
    /// Bounds the answers being sent.
    answering: Arc<Semaphore>,
}

/// What [`Queries::start`] needs from the node.
pub struct Parts {
    /// The node's id (a valid node id fits a room name).
    pub node_id: String,
    /// The backplane's pub/sub.
    pub pubsub: Arc<dyn PubSub>,
    /// The backplane's node registry.
    pub registry: Arc<dyn NodeRegistry>,
    /// Local connections by user.
    pub notices: Arc<Notices>,
    /// Local users by room.
    pub presence: Arc<LocalPresence>,
    /// Which connection is in which room.
    pub hub: Arc<Hub>,
}

impl Queries {
    /// Subscribes to the nodes' rooms (retrying until it holds them) and
    /// handles what arrives in `inbox` until `stopped`.
    pub fn start(
        parts: Parts,
        inbox: mpsc::Receiver<Bytes>,
        stopped: CancellationToken,
    ) -> Arc<Self> {
        let own_room = RoomName::node(&parts.node_id).expect("node ids fit room names");
        let queries = Arc::new(Self {
            node_id: parts.node_id,
            own_room,
            pubsub: parts.pubsub,
            registry: parts.registry,
            notices: parts.notices,
            presence: parts.presence,
            hub: parts.hub,
            next_id: AtomicU64::new(1),
            asking: Mutex::default(),
            answering: Arc::new(Semaphore::new(MAX_ANSWERING)),
        });
        tokio::spawn(queries.clone().run(inbox, stopped));
        queries
    }

    /// The channel the node's inbox hands the nodes' rooms' payloads to.
    pub fn inbox() -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
        mpsc::channel(INBOX)
    }

    async fn run(self: Arc<Self>, mut inbox: mpsc::Receiver<Bytes>, stopped: CancellationToken) {
        for room in [RoomName::nodes(), self.own_room.clone()] {
            while let Err(error) = self.pubsub.subscribe(&room).await {
                tracing::warn!(%error, %room, "cluster questions not subscribed; retrying");
                tokio::select! {
                    () = stopped.cancelled() => return,
                    () = tokio::time::sleep(RESUBSCRIBE) => {}
                }
            }
        }
        loop {
            let payload = tokio::select! {
                () = stopped.cancelled() => return,
                payload = inbox.recv() => match payload {
                    Some(payload) => payload,
                    None => return,
                },
            };
            match serde_json::from_slice::<Wire>(&payload) {
                Ok(Wire::Ask { id, from, question }) => self.answer(id, &from, &question),
                Ok(Wire::Answer { id, node, answer }) => {
                    if let Some(answers) = self.asking.lock().get(&id) {
                        let _ = answers.send((node, answer));
                    }
                }
                Err(error) => tracing::debug!(%error, "dropping an undecodable cluster question"),
            }
        }
    }

    /// Answers question `id` from node `from`, unless as many answers are
    /// being sent as may be.
    fn answer(self: &Arc<Self>, id: u64, from: &str, question: &Question) {
        let (Some(room), Ok(permit)) = (
            RoomName::node(from),
            self.answering.clone().try_acquire_owned(),
        ) else {
            tracing::debug!(from, "cluster question left unanswered");
            return;
        };
        let answer = self.local_answer(question);
        let wire = Wire::Answer {
            id,
            node: self.node_id.clone(),
            answer,
        };
        let payload = Bytes::from(serde_json::to_vec(&wire).expect("an answer serializes"));
        let pubsub = self.pubsub.clone();
        tokio::spawn(async move {
            if let Err(error) = pubsub.signal(&room, payload).await {
                tracing::debug!(%error, "cluster answer not sent");
            }
            drop(permit);
        });
    }

    /// What this node holds for `question`.
    fn local_answer(&self, question: &Question) -> Answer {
        match question {
            Question::User(user) => {
                let mut rooms = self.presence.rooms_of(user);
                rooms.sort_unstable();
                let connections = self.notices.connections_of(user);
                Answer::User(
                    connections
                        .into_iter()
                        .map(|c| UserConnection {
                            conn: c.public_id.to_string(),
                            encoding: match c.encoding {
                                Encoding::Json => "json",
                                Encoding::MsgPack => "msgpack",
                            }
                            .to_owned(),
                            since: c.since,
                            rooms: rooms
                                .iter()
                                .filter(|room| self.hub.is_member(room, c.conn))
                                .map(|room| room.as_str().to_owned())
                                .collect(),
                        })
                        .collect(),
                )
            }
            Question::Rooms { after, limit } => {
                let limit = (*limit as usize).min(MAX_ROOMS_PAGE);
                let rooms = self.presence.rooms_after(after.as_deref(), limit);
                Answer::Rooms(rooms.iter().map(|r| r.as_str().to_owned()).collect())
            }
        }
    }

    /// Asks every node `question`; waits for every live node's answer, at
    /// most [`ANSWER_TIMEOUT`].
    pub async fn ask(&self, question: Question) -> Result<Gathered, AskError> {
        let mut expected: HashSet<String> = self
            .registry
            .nodes()
            .await?
            .iter()
            .filter_map(|status| serde_json::from_str::<NodeId>(status).ok())
            .map(|status| status.id)
            .collect();
        // This node answers too, even before its first heartbeat.
        expected.insert(self.node_id.clone());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut asking = self.asking.lock();
            if asking.len() >= MAX_ASKING {
                return Err(AskError::Busy);
            }
            asking.insert(id, tx);
        }
        let _pending = Pending { queries: self, id };
        let wire = Wire::Ask {
            id,
            from: self.node_id.clone(),
            question,
        };
        let payload = Bytes::from(serde_json::to_vec(&wire).expect("a question serializes"));
        self.pubsub.signal(&RoomName::nodes(), payload).await?;
        let mut answers = Vec::new();
        let deadline = tokio::time::sleep(ANSWER_TIMEOUT);
        tokio::pin!(deadline);
        while !expected.is_empty() {
            tokio::select! {
                () = &mut deadline => break,
                answer = rx.recv() => match answer {
                    Some((node, answer)) => {
                        expected.remove(&node);
                        if !answers.iter().any(|(n, _)| *n == node) {
                            answers.push((node, answer));
                        }
                    }
                    None => break,
                },
            }
        }
        let mut missing: Vec<String> = expected.into_iter().collect();
        missing.sort();
        Ok(Gathered { answers, missing })
    }
}

/// The id in a node's announced status.
#[derive(Deserialize)]
struct NodeId {
    /// The node's id.
    id: String,
}

/// Forgets a question when its asker is done (or gave up).
struct Pending<'a> {
    /// Whose question.
    queries: &'a Queries,
    /// Which.
    id: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.queries.asking.lock().remove(&self.id);
    }
}

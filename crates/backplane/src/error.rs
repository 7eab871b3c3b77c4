//! What can go wrong talking to the backplane, typed so that callers can tell
//! an outage (retry later) from a reply this node does not understand (a bug
//! or a version mismatch, never fixed by retrying).

/// Why a backplane operation failed. Nothing was stored or delivered, except
/// where an [`Outage`] says it may have been (a timeout, a missing replica).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackplaneError {
    /// The backplane could not be reached, did not answer in time, or refused
    /// the command: the caller may retry later.
    #[error("backplane unavailable ({op}): {outage}")]
    Unavailable {
        /// The operation that failed (`publish`, `read`, ...).
        op: &'static str,
        /// What happened.
        outage: Outage,
    },
    /// The backplane answered something this node cannot read: a script or
    /// server of another version, or a bug. Retrying does not help.
    #[error("unexpected backplane reply to {op}: {what}")]
    BadReply {
        /// The operation whose reply was unreadable.
        op: &'static str,
        /// Which part of the reply, and how it was wrong.
        what: String,
    },
    /// This node's backplane was shut down; every later call fails.
    #[error("backplane shut down")]
    ShutDown,
    /// The configuration cannot work (for example an unparseable Redis URL).
    #[error("invalid backplane configuration: {0}")]
    Config(String),
    /// A read named a message id that is not in the room's history.
    #[error("no message with that id in the room's history")]
    UnknownMessage,
}

/// How the backplane was unavailable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Outage {
    /// No answer within the command timeout.
    #[error("timed out")]
    Timeout,
    /// The connection is down or broke during the command.
    #[error("connection lost: {0}")]
    Connection(String),
    /// The server is out of memory (`maxmemory` reached with `noeviction`):
    /// it refuses to store anything until memory is freed.
    #[error("out of memory: it stores nothing until memory is freed")]
    OutOfMemory,
    /// The server refused the command (read-only replica, missing
    /// permission...): its own words.
    #[error("refused: {0}")]
    Refused(String),
    /// Stored on the primary, but fewer replicas than asked
    /// (`--redis-wait-replicas`) confirmed it in time: not acknowledged.
    /// A retry with the same `client_msg_id` does not store it twice.
    #[error("stored but confirmed by {got} of {wanted} replicas")]
    NotReplicated {
        /// Replicas asked for.
        wanted: i64,
        /// Replicas that confirmed.
        got: i64,
    },
}

impl BackplaneError {
    /// An outage of `op`.
    pub fn unavailable(op: &'static str, outage: Outage) -> Self {
        Self::Unavailable { op, outage }
    }

    /// A reply to `op` that could not be read (`what` says where).
    pub fn bad_reply(op: &'static str, what: impl Into<String>) -> Self {
        Self::BadReply {
            op,
            what: what.into(),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

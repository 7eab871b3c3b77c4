//! A refused command as a value: the error the client gets (and, for a few,
//! the close that follows). Handlers return it; one place in the session
//! sends it and takes the connection's flood strike.

use std::time::Duration;

use chorus_backplane::BackplaneError;
use chorus_protocol::{ErrorCode, RoomName};

use super::Closing;
use crate::chat::{history::PageError, membership::JoinFailed};

/// Why a command had no effect.
#[derive(Debug)]
pub struct Refusal {
    /// What the client matches on.
    pub code: ErrorCode,
    /// What a person reads.
    pub message: String,
    /// The room the error names, when it is not the command's own (a `dm`'s room).
    pub room: Option<RoomName>,
    /// With `rate_limited`: when to try again.
    pub retry_after: Option<Duration>,
    /// A close that follows the error (a failed `auth`).
    pub close: Option<Closing>,
    /// Whether it costs the connection a flood strike (every refusal does,
    /// but a `rate_limited` answer to a client that waited as it was told).
    pub strike: bool,
}

/// What a command handler returns.
pub type Handled = Result<(), Refusal>;

impl Refusal {
    /// A refusal with `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            room: None,
            retry_after: None,
            close: None,
            strike: true,
        }
    }

    /// The same, naming `room` in the error.
    pub fn in_room(mut self, room: &RoomName) -> Self {
        self.room = Some(room.clone());
        self
    }

    /// The same, then closing the connection.
    pub fn then_close(mut self, closing: Closing) -> Self {
        self.close = Some(closing);
        self
    }
}

impl From<BackplaneError> for Refusal {
    fn from(error: BackplaneError) -> Self {
        match error {
            BackplaneError::UnknownMessage => Self::new(
                ErrorCode::UnknownMessage,
                "no message with that id in the room's history",
            ),
            BackplaneError::BadReply { .. } | BackplaneError::Config(_) => {
                // Not an outage: a bug or a version mismatch, for the operator.
                tracing::error!(%error, "the backplane answered something this node cannot read");
                Self::new(
                    ErrorCode::Internal,
                    "unexpected server fault; nothing happened; retry",
                )
            }
            BackplaneError::Unavailable { .. } | BackplaneError::ShutDown => {
                Self::new(ErrorCode::BackplaneUnavailable, error.to_string())
            }
        }
    }
}

impl From<PageError> for Refusal {
    fn from(error: PageError) -> Self {
        match error {
            PageError::Backplane(error) => error.into(),
            PageError::UnknownMessage => Self::new(ErrorCode::UnknownMessage, error.to_string()),
            PageError::ArchiveUnavailable => Self::new(
                ErrorCode::ArchiveUnavailable,
                "older history is in the archive, which did not answer; retry later",
            ),
        }
    }
}

impl From<JoinFailed> for Refusal {
    fn from(failed: JoinFailed) -> Self {
        match failed {
            JoinFailed::Backplane(error) => error.into(),
            JoinFailed::HistoryMoved => {
                Self::new(ErrorCode::BackplaneUnavailable, failed.to_string())
            }
        }
    }
}

//! Commands a client sends, as data: a [`Command`] is its `ref` and its
//! [`CommandKind`], one type per kind (in [`commands`]). Decoding is two-step
//! (`raw`): a raw form with plain strings, then validation into typed
//! commands, so every failure maps to one [`ErrorCode`].

use crate::{ErrorCode, RoomName};

mod checks;
mod raw;

pub use raw::{decode_json, decode_msgpack};

/// Longest `ref` accepted, in bytes.
pub const MAX_REF_BYTES: usize = 64;

/// Longest token accepted in `auth` or `refresh`, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Longest client message id accepted in `send`, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;

/// Most users one `send` may mention.
pub const MAX_MENTIONS: usize = 20;

/// Most files one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;

/// Longest user id accepted in `mentions` or `dm`, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Longest emoji (or short code) accepted in `react`, in bytes.
pub const MAX_EMOJI_BYTES: usize = 64;

/// Longest search query, in bytes.
pub const MAX_SEARCH_BYTES: usize = 256;

/// Most rooms one search may name.
pub const MAX_SEARCH_ROOMS: usize = 100;

/// Most hits in one page of search results (larger asks get this many).
pub const MAX_SEARCH_LIMIT: u32 = 100;

/// Furthest a page of search results may start (deeper: narrow the query).
pub const MAX_SEARCH_OFFSET: u32 = 1_000;

/// A client's correlation tag, echoed on the reply or error for the command that carried it.
pub type Ref = Option<String>;

/// Where a client left a room: the room's epoch and the last sequence number it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The room's epoch when the client last saw it (see `joined`).
    pub epoch: u64,
    /// The last sequence number the client received in that epoch.
    pub after: u64,
}

/// Where a `history` page ends (exclusive): a sequence number or a message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Messages before this sequence number of `epoch` (the room's current
    /// epoch when absent); messages of earlier epochs come after those.
    Seq {
        /// The sequence number.
        seq: u64,
        /// Its epoch, when not the room's current one (paging the archive).
        epoch: Option<u64>,
    },
    /// Messages older than the one with this id.
    Id(uuid::Uuid),
}

impl Before {
    /// The page end from the `before`, `epoch` and `before_id` fields (of a
    /// command or a query string); `Err` says what is wrong with them.
    pub fn from_fields(
        before: Option<u64>,
        epoch: Option<u64>,
        before_id: Option<&str>,
    ) -> Result<Option<Self>, &'static str> {
        match (before, epoch, before_id) {
            (None, None, None) => Ok(None),
            (Some(seq), epoch, None) => Ok(Some(Self::Seq { seq, epoch })),
            (None, None, Some(id)) => uuid::Uuid::parse_str(id)
                .map(|id| Some(Self::Id(id)))
                .map_err(|_| "before_id must be a message id (a UUID)"),
            (None, Some(_), _) => Err("epoch goes with before"),
            (Some(_), _, Some(_)) => Err("give before or before_id, not both"),
        }
    }
}

/// The message an edit, delete or reaction is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Its sequence number in the room's current epoch.
    pub seq: u64,
    /// Its id, when the client gave it: the change is refused unless it matches
    /// (guards against a sequence number of an older epoch).
    pub id: Option<uuid::Uuid>,
}

/// A validated command from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The client's `ref`, echoed on the reply or error.
    pub reference: Ref,
    /// What the client asks for.
    pub kind: CommandKind,
}

/// One type per command (see `docs/protocol.md` for each).
pub mod commands {
    use super::{Before, Resume, Target};
    use crate::RoomName;

    /// Join a room: receive its recent history (or what was missed since
    /// `resume`), then its messages from now on.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Join {
        /// The room.
        pub room: RoomName,
        /// Resume after this point instead of getting the latest messages.
        pub resume: Option<Resume>,
        /// How many recent messages to get on a fresh join (the server clamps it).
        pub history: Option<u32>,
    }

    /// Leave a room: no more of its messages after the `left` reply.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Leave {
        /// The room.
        pub room: RoomName,
    }

    /// Send a text message to a joined room.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Send {
        /// The room.
        pub room: RoomName,
        /// The text.
        pub body: String,
        /// The client's own id for this message: a retry with the same id is not stored twice.
        pub client_msg_id: Option<String>,
        /// Users to notify (ids, distinct, at most [`super::MAX_MENTIONS`]).
        pub mentions: Vec<String>,
        /// Files the sender uploaded to the room to attach (ids, distinct, in
        /// order, at most [`super::MAX_ATTACHMENTS`]).
        pub attachments: Vec<uuid::Uuid>,
    }

    /// Change the text of a message (your own, or any with a moderator grant).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Edit {
        /// The room.
        pub room: RoomName,
        /// The message.
        pub target: Target,
        /// Its new text.
        pub body: String,
    }

    /// Delete a message (your own, or any with a moderator grant).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Delete {
        /// The room.
        pub room: RoomName,
        /// The message.
        pub target: Target,
    }

    /// Add (`react`, `add`) or take back (`unreact`) an emoji reaction on a message.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct React {
        /// The room.
        pub room: RoomName,
        /// The message.
        pub target: Target,
        /// The emoji (or short code).
        pub emoji: String,
        /// Add it, or take it back.
        pub add: bool,
    }

    /// Set your status as the rooms you are in see it: `away` or `online`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Status {
        /// Away (else online).
        pub away: bool,
    }

    /// Page backwards through a room's history.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct History {
        /// The room.
        pub room: RoomName,
        /// Older than this; the newest messages when absent.
        pub before: Option<Before>,
        /// Page size (the server clamps it).
        pub limit: Option<u32>,
    }

    /// The user started (`active`) or stopped typing in a joined room. Never
    /// stored; relayed to the room's other members at most once per throttle window.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Typing {
        /// The room.
        pub room: RoomName,
        /// Started (else stopped).
        pub active: bool,
    }

    /// Mark a joined room read up to `seq` (of the room's current epoch).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Read {
        /// The room.
        pub room: RoomName,
        /// The last message read.
        pub seq: u64,
    }

    /// Ask for a joined room's read markers (who has read up to where).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Receipts {
        /// The room.
        pub room: RoomName,
    }

    /// Start (or reopen) the direct conversation with `user`: join its room and
    /// tell both users' connections.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Dm {
        /// The other user's id.
        pub user: String,
    }

    /// Save (empty `text`: clear) this user's unsent text for a room, for
    /// their other devices.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Draft {
        /// The room.
        pub room: RoomName,
        /// The unsent text.
        pub text: String,
    }

    /// Ask for this user's saved drafts.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Drafts;

    /// Ask who is in a joined room now.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Presence {
        /// The room.
        pub room: RoomName,
    }

    /// Application-level ping; answered with `pong`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Ping;

    /// Authenticate with a token (the first frame, when no token came with the upgrade).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Auth {
        /// The token.
        pub token: String,
    }

    /// Full-text search of the archive, in the rooms the token may read.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Search {
        /// What to look for (words, "quoted phrases", `or`, `-word`).
        pub q: String,
        /// Only these rooms, when given.
        pub rooms: Option<Vec<RoomName>>,
        /// Hits per page, 1 to [`super::MAX_SEARCH_LIMIT`] (20 when absent).
        pub limit: u32,
        /// Hits to skip, at most [`super::MAX_SEARCH_OFFSET`].
        pub offset: u32,
    }

    impl Search {
        /// A search from its fields as a client wrote them (a command or a
        /// query string); `Err` says what is wrong.
        pub fn new(
            q: String,
            rooms: Option<Vec<String>>,
            limit: Option<u32>,
            offset: Option<u32>,
        ) -> Result<Self, String> {
            let trimmed = q.trim();
            if trimmed.is_empty() {
                return Err("q (what to search for) is empty".into());
            }
            if q.len() > super::MAX_SEARCH_BYTES {
                return Err(format!(
                    "q is longer than {} bytes",
                    super::MAX_SEARCH_BYTES
                ));
            }
            if q.chars().any(char::is_control) {
                return Err("q holds control characters".into());
            }
            let rooms = match rooms {
                None => None,
                Some(rooms) if rooms.is_empty() || rooms.len() > super::MAX_SEARCH_ROOMS => {
                    return Err(format!(
                        "rooms names 1 to {} rooms",
                        super::MAX_SEARCH_ROOMS
                    ));
                }
                Some(rooms) => Some(
                    rooms
                        .iter()
                        .map(|room| {
                            RoomName::parse(room)
                                .map_err(|_| format!("{room:?} is not a room name"))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            let limit = match limit {
                Some(0) => return Err("limit is at least 1".into()),
                limit => limit.unwrap_or(20).min(super::MAX_SEARCH_LIMIT),
            };
            let offset = offset.unwrap_or(0);
            if offset > super::MAX_SEARCH_OFFSET {
                return Err(format!(
                    "offset is at most {}; narrow the query",
                    super::MAX_SEARCH_OFFSET
                ));
            }
            Ok(Self {
                q: trimmed.to_owned(),
                rooms,
                limit,
                offset,
            })
        }
    }

    /// Replace the connection's token before it expires; same user only.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Refresh {
        /// The new token.
        pub token: String,
    }
}

/// What a command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    /// See [`commands::Join`].
    Join(commands::Join),
    /// See [`commands::Leave`].
    Leave(commands::Leave),
    /// See [`commands::Send`].
    Send(commands::Send),
    /// See [`commands::Edit`].
    Edit(commands::Edit),
    /// See [`commands::Delete`].
    Delete(commands::Delete),
    /// See [`commands::React`].
    React(commands::React),
    /// See [`commands::Status`].
    Status(commands::Status),
    /// See [`commands::History`].
    History(commands::History),
    /// See [`commands::Typing`].
    Typing(commands::Typing),
    /// See [`commands::Read`].
    Read(commands::Read),
    /// See [`commands::Receipts`].
    Receipts(commands::Receipts),
    /// See [`commands::Dm`].
    Dm(commands::Dm),
    /// See [`commands::Draft`].
    Draft(commands::Draft),
    /// See [`commands::Drafts`].
    Drafts(commands::Drafts),
    /// See [`commands::Presence`].
    Presence(commands::Presence),
    /// See [`commands::Ping`].
    Ping(commands::Ping),
    /// See [`commands::Auth`].
    Auth(commands::Auth),
    /// See [`commands::Refresh`].
    Refresh(commands::Refresh),
    /// See [`commands::Search`].
    Search(commands::Search),
}

impl CommandKind {
    /// The room the command names, if it names one (an error about the
    /// command carries it).
    pub fn room(&self) -> Option<&RoomName> {
        match self {
            Self::Join(c) => Some(&c.room),
            Self::Leave(c) => Some(&c.room),
            Self::Send(c) => Some(&c.room),
            Self::Edit(c) => Some(&c.room),
            Self::Delete(c) => Some(&c.room),
            Self::React(c) => Some(&c.room),
            Self::History(c) => Some(&c.room),
            Self::Typing(c) => Some(&c.room),
            Self::Read(c) => Some(&c.room),
            Self::Receipts(c) => Some(&c.room),
            Self::Draft(c) => Some(&c.room),
            Self::Presence(c) => Some(&c.room),
            Self::Status(_)
            | Self::Dm(_)
            | Self::Drafts(_)
            | Self::Ping(_)
            | Self::Auth(_)
            | Self::Refresh(_)
            | Self::Search(_) => None,
        }
    }
}

/// Why a frame did not become a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct CommandError {
    /// What the client should match on.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub detail: String,
    /// The command's `ref`, when it could be read, so the error can be correlated.
    pub reference: Ref,
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

//! Room names: validated once at the edge, then cheap to clone and hash.

use std::{borrow::Borrow, fmt, sync::Arc};

use serde::{Deserialize, Serialize, Serializer};

/// Longest room name accepted, in bytes.
pub const MAX_ROOM_NAME_BYTES: usize = 128;

/// A validated room name.
///
/// Allowed: 1 to [`MAX_ROOM_NAME_BYTES`] ASCII letters, digits and `- _ . : @ + =`.
/// Braces are excluded on purpose: the Redis channel and keys of a room wrap the
/// name in `{...}` as a Redis Cluster hash tag, so a room's name must not contain one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

/// Why a string is not a valid room name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    /// The name is empty.
    #[error("room name is empty")]
    Empty,
    /// The name is longer than [`MAX_ROOM_NAME_BYTES`].
    #[error("room name is longer than {MAX_ROOM_NAME_BYTES} bytes")]
    TooLong,
    /// The name has a character outside the allowed set.
    #[error("room name may only contain ASCII letters, digits and - _ . : @ + =")]
    BadCharacter,
}

impl RoomName {
    /// Validates `name` and wraps it.
    pub fn parse(name: &str) -> Result<Self, RoomNameError> {
        if name.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if name.len() > MAX_ROOM_NAME_BYTES {
            return Err(RoomNameError::TooLong);
        }
        if !name.bytes().all(is_room_byte) {
            return Err(RoomNameError::BadCharacter);
        }
        Ok(Self(Arc::from(name)))
    }

    /// The internal room carrying the channels of the users in one of
    /// [`USER_SHARDS`] shards (`!u:<shard>`): a node subscribes to the shards of
    /// the users connected to it, and picks a notice's recipients by user id,
    /// so Redis holds at most that many such channels whatever the user count.
    /// The shard is FNV-1a of the id, the same on every node and version.
    /// Clients cannot name it: `!` is not allowed in room names.
    pub fn user_shard(user_id: &str) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in user_id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Self(Arc::from(format!("!u:{}", hash % USER_SHARDS)))
    }

    /// The internal room every node listens on for questions about the
    /// whole cluster (`!nodes`): a user's connections, the rooms with members.
    pub fn nodes() -> Self {
        Self(Arc::from(NODES_ROOM))
    }

    /// The internal room where node `node_id` takes the answers to its
    /// questions (`!n:<node id>`); `None` when the id would not fit a room name.
    pub fn node(node_id: &str) -> Option<Self> {
        let name = format!("{NODE_PREFIX}{node_id}");
        if node_id.is_empty() || Self::parse(&name[1..]).is_err() {
            return None;
        }
        Some(Self(Arc::from(name)))
    }

    /// A name that nodes may use among themselves: a room name, a users'
    /// shard room (`!u:<shard>`, see [`RoomName::user_shard`]) or a nodes'
    /// room ([`RoomName::nodes`], [`RoomName::node`]). For names read back
    /// from the backplane, never for names from clients.
    pub fn parse_internal(name: &str) -> Result<Self, RoomNameError> {
        if name == NODES_ROOM {
            return Ok(Self::nodes());
        }
        if let Some(node) = name.strip_prefix(NODE_PREFIX) {
            return Self::node(node).ok_or(RoomNameError::BadCharacter);
        }
        match name.strip_prefix("!u:") {
            Some(shard) if shard.parse::<u64>().is_ok_and(|n| n < USER_SHARDS) => {
                Ok(Self(Arc::from(name)))
            }
            _ => Self::parse(name),
        }
    }

    /// Whether this is [`RoomName::nodes`] or a [`RoomName::node`] room.
    pub fn is_nodes_room(&self) -> bool {
        &*self.0 == NODES_ROOM || self.0.starts_with(NODE_PREFIX)
    }

    /// Whether this is a users' shard room (see [`RoomName::user_shard`]).
    pub fn is_user_shard(&self) -> bool {
        self.0.starts_with("!u:")
    }

    /// The direct-message room of two users (ids in byte order), if they are two.
    pub fn direct(a: &str, b: &str) -> Option<Self> {
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        if a == b || a.is_empty() {
            return None;
        }
        Self::parse(&format!("{DIRECT_PREFIX}{a}+{b}")).ok()
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For a direct-message room, the two user ids it is between.
    ///
    /// A direct-message room is named `dm:<a>+<b>` with the ids in byte order (so
    /// each pair has exactly one room); `None` for any other room. A name with the
    /// `dm:` prefix that breaks this form is a direct-message room nobody may join:
    /// it yields `Some` with an empty pair, which matches no user.
    pub fn direct_members(&self) -> Option<(&str, &str)> {
        let pair = self.0.strip_prefix(DIRECT_PREFIX)?;
        match pair.split_once('+') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('+') && a < b => {
                Some((a, b))
            }
            _ => Some(("", "")),
        }
    }
}

/// Shards of the users' own channels (see [`RoomName::user_shard`]).
pub const USER_SHARDS: u64 = 1024;

/// The room of questions to every node (see [`RoomName::nodes`]).
const NODES_ROOM: &str = "!nodes";

/// Prefix of a node's own room (see [`RoomName::node`]).
const NODE_PREFIX: &str = "!n:";

/// Prefix of direct-message room names (see [`RoomName::direct_members`]).
pub const DIRECT_PREFIX: &str = "dm:";

fn is_room_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@' | b'+' | b'=')
}

impl Serialize for RoomName {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoomName {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(de)?;
        RoomName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl Borrow<str> for RoomName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for RoomName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_shards_are_stable_and_not_nameable_by_clients() {
        // FNV-1a: every node and every version must agree on a user's shard.
        assert_eq!(RoomName::user_shard("alice").as_str(), "!u:263");
        assert!(RoomName::user_shard("bob{x}").is_user_shard());
        assert!(RoomName::parse("!u:263").is_err());
        let internal = RoomName::parse_internal("!u:263").unwrap();
        assert_eq!(internal, RoomName::user_shard("alice"));
        assert!(RoomName::parse_internal("!u:1024").is_err());
        assert!(RoomName::parse_internal("!x").is_err());
        assert_eq!(RoomName::parse_internal("lobby").unwrap().as_str(), "lobby");
    }

    #[test]
    fn nodes_rooms_are_internal_only() {
        let node = RoomName::node("node-1a2b").unwrap();
        assert_eq!(node.as_str(), "!n:node-1a2b");
        assert!(node.is_nodes_room() && RoomName::nodes().is_nodes_room());
        assert_eq!(RoomName::parse_internal("!n:node-1a2b").unwrap(), node);
        assert_eq!(
            RoomName::parse_internal("!nodes").unwrap(),
            RoomName::nodes()
        );
        assert!(RoomName::parse("!nodes").is_err() && RoomName::parse("!n:x").is_err());
        assert!(RoomName::node("a{b}").is_none() && RoomName::node("").is_none());
        assert!(RoomName::parse_internal("!n:").is_err());
        assert!(!RoomName::parse("lobby").unwrap().is_nodes_room());
    }
    use proptest::prelude::*;

    #[test]
    fn accepts_typical_names() {
        for name in [
            "lobby",
            "team-42.general",
            "dm:alice+bob",
            "dm:bob+alice",
            "a",
            "x@y=z_1",
        ] {
            assert_eq!(RoomName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Empty));
        assert_eq!(
            RoomName::parse(&"a".repeat(129)),
            Err(RoomNameError::TooLong)
        );
        for name in ["with space", "{tag}", "é", "a/b", "line\nbreak"] {
            assert_eq!(
                RoomName::parse(name),
                Err(RoomNameError::BadCharacter),
                "{name:?}"
            );
        }
    }

    #[test]
    fn direct_rooms_name_their_two_members_in_order() {
        let dm = |n: &str| RoomName::parse(n).unwrap();
        assert_eq!(dm("dm:alice+bob").direct_members(), Some(("alice", "bob")));
        assert_eq!(dm("dm:bob+alice").direct_members(), Some(("", "")));
        assert_eq!(dm("dm:bob+bob").direct_members(), Some(("", "")));
        assert_eq!(dm("dm:a+b+c").direct_members(), Some(("", "")));
        assert_eq!(dm("dm:+b").direct_members(), Some(("", "")));
        assert_eq!(dm("lobby").direct_members(), None);
    }

    proptest! {
        #[test]
        fn valid_names_never_contain_hash_tag_braces(name in "\\PC{0,140}") {
            if let Ok(room) = RoomName::parse(&name) {
                let has_brace = room.as_str().contains(['{', '}']);
                prop_assert!(!has_brace, "hash-tag brace in a valid room name");
                prop_assert!(room.as_str().len() <= MAX_ROOM_NAME_BYTES);
            }
        }
    }
}

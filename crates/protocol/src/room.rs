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

    /// The internal room of one user's own channel (`!u:<id>`; `!x:<hex>` when
    /// the id has a brace): every connection of the user is in it, on every
    /// node, so a notice reaches all of them. Clients cannot name it: `!` is not
    /// allowed in room names.
    pub fn personal(user_id: &str) -> Self {
        if user_id.contains(['{', '}']) {
            let hex: String = user_id.bytes().map(|b| format!("{b:02x}")).collect();
            Self(Arc::from(format!("!x:{hex}")))
        } else {
            Self(Arc::from(format!("!u:{user_id}")))
        }
    }

    /// Whether this is a user's own room (see [`RoomName::personal`]).
    pub fn is_personal(&self) -> bool {
        self.0.starts_with('!')
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

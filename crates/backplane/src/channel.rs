//! Names of Redis channels (and, later, keys) for rooms.

use chorus_protocol::RoomName;

/// Builds and parses room channel names: `<prefix>:room:{<room>}`.
///
/// The room sits inside `{...}`, a Redis Cluster hash tag, so a room's channel
/// and every key of that room hash to the same slot. Room names cannot contain
/// braces (see [`RoomName`]), so the tag is exactly the room.
#[derive(Debug, Clone)]
pub struct ChannelNames {
    /// `<prefix>:room:{`, kept whole to build names with one allocation.
    head: String,
}

impl ChannelNames {
    /// Names under `prefix` (lets several Chorus clusters share one Redis).
    pub fn new(prefix: &str) -> Self {
        Self {
            head: format!("{prefix}:room:{{"),
        }
    }

    /// The pub/sub channel of `room`.
    pub fn room_channel(&self, room: &RoomName) -> String {
        let mut name = String::with_capacity(self.head.len() + room.as_str().len() + 1);
        name.push_str(&self.head);
        name.push_str(room.as_str());
        name.push('}');
        name
    }

    /// A key of `room`'s state: `<prefix>:room:{<room>}:<suffix>`, in the room's slot.
    pub fn room_key(&self, room: &RoomName, suffix: &str) -> String {
        let mut name = self.room_channel(room);
        name.push(':');
        name.push_str(suffix);
        name
    }

    /// A key of one user's state: `<prefix>:user:{<user>}:<suffix>`.
    pub fn user_key(&self, user: &str, suffix: &str) -> String {
        let prefix = self.head.strip_suffix(":room:{").unwrap_or(&self.head);
        format!("{prefix}:user:{{{user}}}:{suffix}")
    }

    /// A cluster-wide key: `<prefix>:{<name>}`, in one slot of its own.
    pub fn shared_key(&self, name: &str) -> String {
        let prefix = self.head.strip_suffix(":room:{").unwrap_or(&self.head);
        format!("{prefix}:{{{name}}}")
    }

    /// The room of a channel name, if it is one of ours.
    pub fn room_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(self.head.as_str())?.strip_suffix('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_round_trip_and_hash_tag() {
        let names = ChannelNames::new("chorus");
        let room = RoomName::parse("team-42.general").unwrap();
        let channel = names.room_channel(&room);
        assert_eq!(channel, "chorus:room:{team-42.general}");
        assert_eq!(names.room_of(&channel), Some("team-42.general"));
        assert_eq!(names.room_of("other:room:{x}"), None);
        assert_eq!(names.room_of("chorus:room:{x"), None);
    }
}

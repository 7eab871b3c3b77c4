//! Presence in Redis (see `presence.lua`): `<prefix>:room:{<room>}:presence`
//! (entries by node and user, scored by expiry), `...:online` (live entries
//! per user) and `...:who` (each present user's leave signal), in the room's slot.

use bytes::Bytes;
use chorus_protocol::RoomName;
use fred::{clients::Client, prelude::Value, types::scripts::Script};

use super::log::{array, bytes_of, millis, unavailable};
use crate::{BackplaneError, ChannelNames, PresenceEntry};

/// The presence script and key naming.
pub(super) struct RoomPresence {
    /// Add, remove, list and expire entries.
    script: Script,
    /// Key and channel naming.
    names: ChannelNames,
}

impl RoomPresence {
    pub(super) fn new(names: ChannelNames) -> Self {
        Self {
            script: Script::from_lua(include_str!("presence.lua")),
            names,
        }
    }

    pub(super) async fn call(
        &self,
        client: &Client,
        room: &RoomName,
        mode: &str,
        node: &str,
        ttl: std::time::Duration,
        rest: Vec<Value>,
    ) -> Result<Vec<Bytes>, BackplaneError> {
        let keys = vec![
            self.names.room_key(room, "presence"),
            self.names.room_key(room, "online"),
            self.names.room_key(room, "who"),
        ];
        let mut args: Vec<Value> = vec![
            mode.into(),
            self.names.room_channel(room).into(),
            millis(ttl).into(),
            node.into(),
        ];
        args.extend(rest);
        let answer: Value = self
            .script
            .evalsha_with_reload(client, keys, args)
            .await
            .map_err(unavailable)?;
        Ok(array(answer)?.into_iter().filter_map(bytes_of).collect())
    }

    pub(super) fn up_args(entries: Vec<PresenceEntry>) -> Vec<Value> {
        let mut args = Vec::with_capacity(entries.len() * 3);
        for entry in entries {
            args.push(entry.user.into());
            args.push(Value::Bytes(entry.join));
            args.push(Value::Bytes(entry.leave));
        }
        args
    }
}

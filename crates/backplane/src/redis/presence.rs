//! Presence in Redis (see `presence.lua`): `<prefix>:room:{<room>}:presence`
//! (entries by node and user, scored by expiry), `...:online` (live entries
//! per user) and `...:who` (each present user's leave signal), in the room's slot.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;
use fred::{clients::Client, prelude::Value};

use super::{
    reply::{OpScript, Reply, WhenFull, bytes_of, millis},
    sharding::Sharding,
};
use crate::{BackplaneError, ChannelNames, PresenceEntry, PresenceStore};

/// Presence on Redis.
pub(super) struct RedisPresence {
    /// The connection commands go through.
    client: Client,
    /// Add, remove, list and expire entries.
    script: OpScript,
    /// Key and channel naming.
    names: ChannelNames,
}

impl RedisPresence {
    pub(super) fn new(client: Client, names: ChannelNames, sharding: Sharding) -> Self {
        Self {
            client,
            script: OpScript::publishing(
                "presence",
                WhenFull::Refuse,
                include_str!("presence.lua"),
                sharding.script_prelude(),
            ),
            names,
        }
    }

    /// Runs the script in `mode`, `rest` after the common arguments.
    async fn call(
        &self,
        room: &RoomName,
        (mode, node, ttl): (&str, &str, Duration),
        rest: Vec<Value>,
    ) -> Result<Reply, BackplaneError> {
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
        self.script.call_reply(&self.client, keys, args).await
    }
}

#[async_trait]
impl PresenceStore for RedisPresence {
    async fn up(
        &self,
        room: &RoomName,
        node: &str,
        entries: Vec<PresenceEntry>,
        ttl: Duration,
    ) -> Result<Vec<Bytes>, BackplaneError> {
        let mut args = Vec::with_capacity(entries.len() * 3);
        for entry in entries {
            args.push(entry.user.into());
            args.push(Value::Bytes(entry.join));
            args.push(Value::Bytes(entry.leave));
        }
        let reply = self.call(room, ("up", node, ttl), args).await?;
        Ok(reply.rest().filter_map(bytes_of).collect())
    }

    async fn down(
        &self,
        room: &RoomName,
        node: &str,
        users: Vec<String>,
    ) -> Result<Vec<Bytes>, BackplaneError> {
        let args = users.into_iter().map(Value::from).collect();
        let reply = self
            .call(room, ("down", node, Duration::ZERO), args)
            .await?;
        Ok(reply.rest().filter_map(bytes_of).collect())
    }

    async fn list(&self, room: &RoomName, max: usize) -> Result<(u64, Vec<Bytes>), BackplaneError> {
        let args = vec![max.to_string().into()];
        let mut reply = self.call(room, ("list", "", Duration::ZERO), args).await?;
        let total = reply.number("total")?;
        Ok((total, reply.rest().filter_map(bytes_of).collect()))
    }
}

//! Read markers in Redis: `<prefix>:room:{<room>}:reads`, a hash of user id to
//! `epoch:seq`, in the room's slot, expiring with the room's state.

use async_trait::async_trait;
use bytes::Bytes;
use chorus_protocol::RoomName;
use fred::{clients::Client, interfaces::HashesInterface, prelude::Value};

use super::{
    reply::{OpScript, WhenFull, failed, millis},
    sharding::Sharding,
};
use crate::{BackplaneError, ChannelNames, MARKERS_MAX, Marked, Position, ReadMarkers};

/// Read markers on Redis.
pub(super) struct RedisMarkers {
    /// The connection commands go through.
    client: Client,
    /// Move a marker forward and relay the receipt.
    mark: OpScript,
    /// Key and channel naming.
    names: ChannelNames,
    /// Markers live as long as the room's state.
    state_ttl: String,
}

impl RedisMarkers {
    pub(super) fn new(
        client: Client,
        names: ChannelNames,
        (state_ttl, sharding): (std::time::Duration, Sharding),
    ) -> Self {
        Self {
            client,
            mark: OpScript::publishing(
                "mark_read",
                WhenFull::Refuse,
                include_str!("mark_read.lua"),
                sharding.script_prelude(),
            ),
            names,
            state_ttl: millis(state_ttl),
        }
    }
}

#[async_trait]
impl ReadMarkers for RedisMarkers {
    async fn mark(
        &self,
        room: &RoomName,
        user: &str,
        mark: Position,
        signal: Bytes,
    ) -> Result<Marked, BackplaneError> {
        let keys = vec![
            self.names.room_key(room, "state"),
            self.names.room_key(room, "reads"),
        ];
        let args: Vec<Value> = vec![
            user.into(),
            mark.epoch.to_string().into(),
            mark.seq.to_string().into(),
            self.names.room_channel(room).into(),
            Value::Bytes(signal),
            self.state_ttl.clone().into(),
        ];
        let mut reply = self.mark.call_reply(&self.client, keys, args).await?;
        let kind = reply.bytes("kind")?;
        let position = Position {
            epoch: reply.number("epoch")?,
            seq: reply.number("seq")?,
        };
        match &kind[..] {
            b"moved" => Ok(Marked::Moved(position.seq)),
            b"same" => Ok(Marked::Unchanged(position.seq)),
            b"beyond" => Ok(Marked::BeyondHead(position)),
            b"epoch" => Ok(Marked::OtherEpoch(position)),
            _ => Err(reply.bad("kind")),
        }
    }

    async fn marker(
        &self,
        room: &RoomName,
        user: &str,
    ) -> Result<Option<Position>, BackplaneError> {
        let stored: Option<String> = self
            .client
            .hget(self.names.room_key(room, "reads"), user)
            .await
            .map_err(failed("read_marker"))?;
        Ok(stored.as_deref().and_then(parse_marker))
    }

    async fn markers(&self, room: &RoomName) -> Result<Vec<(String, Position)>, BackplaneError> {
        let all: std::collections::HashMap<String, String> = self
            .client
            .hgetall(self.names.room_key(room, "reads"))
            .await
            .map_err(failed("read_markers"))?;
        let mut markers: Vec<(String, Position)> = all
            .into_iter()
            .filter_map(|(user, stored)| parse_marker(&stored).map(|p| (user, p)))
            .collect();
        markers.sort_by(|a, b| b.1.seq.cmp(&a.1.seq).then_with(|| a.0.cmp(&b.0)));
        markers.truncate(MARKERS_MAX);
        Ok(markers)
    }
}

/// `epoch:seq` as stored.
pub(super) fn parse_marker(stored: &str) -> Option<Position> {
    let (epoch, seq) = stored.split_once(':')?;
    Some(Position {
        epoch: epoch.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

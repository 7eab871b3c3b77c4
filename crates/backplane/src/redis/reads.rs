//! Read markers in Redis: `<prefix>:room:{<room>}:reads`, a hash of user id to
//! `epoch:seq`, in the room's slot, expiring with the room's state.

use bytes::Bytes;
use chorus_protocol::RoomName;
use fred::{clients::Client, interfaces::HashesInterface, prelude::Value, types::scripts::Script};

use super::log::{array, bytes_of, millis, number, unavailable};
use crate::{BackplaneError, ChannelNames, Marked, Position};

/// Most markers one `read_markers` call returns.
pub const MARKERS_MAX: usize = 1000;

/// The read-marker script and key naming.
pub(super) struct ReadMarkers {
    /// Move a marker forward and relay the receipt.
    mark: Script,
    /// Key and channel naming.
    names: ChannelNames,
    /// Markers live as long as the room's state.
    state_ttl: String,
}

impl ReadMarkers {
    pub(super) fn new(names: ChannelNames, state_ttl: std::time::Duration) -> Self {
        Self {
            mark: Script::from_lua(include_str!("mark_read.lua")),
            names,
            state_ttl: millis(state_ttl),
        }
    }

    pub(super) async fn mark(
        &self,
        client: &Client,
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
        let answer: Value = self
            .mark
            .evalsha_with_reload(client, keys, args)
            .await
            .map_err(unavailable)?;
        let mut parts = array(answer)?.into_iter();
        let kind = parts.next().and_then(bytes_of).unwrap_or_default();
        let mut next = || parts.next().as_ref().and_then(number);
        let bad = || BackplaneError::Unavailable("unexpected mark_read reply".into());
        let epoch = next().ok_or_else(bad)?;
        let seq = next().ok_or_else(bad)?;
        let position = Position { epoch, seq };
        Ok(match &kind[..] {
            b"moved" => Marked::Moved(seq),
            b"same" => Marked::Unchanged(seq),
            b"beyond" => Marked::BeyondHead(position),
            _ => Marked::OtherEpoch(position),
        })
    }

    pub(super) async fn marker(
        &self,
        client: &Client,
        room: &RoomName,
        user: &str,
    ) -> Result<Option<Position>, BackplaneError> {
        let stored: Option<String> = client
            .hget(self.names.room_key(room, "reads"), user)
            .await
            .map_err(unavailable)?;
        Ok(stored.as_deref().and_then(parse_marker))
    }

    pub(super) async fn markers(
        &self,
        client: &Client,
        room: &RoomName,
    ) -> Result<Vec<(String, Position)>, BackplaneError> {
        let all: std::collections::HashMap<String, String> = client
            .hgetall(self.names.room_key(room, "reads"))
            .await
            .map_err(unavailable)?;
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

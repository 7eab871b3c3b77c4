//! Room history in Redis: the Lua scripts that publish, read and report
//! positions, and the parsing of their replies.
//!
//! Keys of one room share the room's hash tag: `<prefix>:room:{<room>}:state`
//! (a hash with `epoch` and `seq`), `...:log` (a Stream whose entry ids are
//! `<seq>-0`, fields `m` envelope, `t` time, `i` message id) and
//! `...:dedup:<key>` (the original reply to an idempotent send). Changes to
//! messages (see `changes`) add `...:overlays` (message seq -> its current
//! state as JSON) and `...:changes` (a sorted set of the change entries, for
//! unread counts and for forgetting overlays of trimmed history).

use bytes::Bytes;
use chorus_protocol::RoomName;
use fred::{clients::Client, prelude::Value, types::scripts::Script};

use crate::{
    BackplaneError, ChannelNames, HistorySettings, Outgoing, Overlay, Page, Position, Published,
    Read, Reader, Stored,
};

/// Rooms per `positions` script call.
const POSITIONS_BATCH: usize = 256;

/// The scripts, loaded on first use (and again after a Redis restart).
pub(super) struct RoomLog {
    /// Store, trim and relay one message.
    publish: Script,
    /// Read a page and the room's position.
    read: Script,
    /// Positions of many rooms.
    positions: Script,
    /// Key and channel naming.
    names: ChannelNames,
    /// History bounds, passed to the scripts.
    settings: HistorySettings,
    /// The bounds as script arguments, formatted once: max length, max age,
    /// state TTL and dedup window (ms).
    bounds: [Value; 4],
}

/// A script with the shared prelude (`room_epoch`, `forget_trimmed`).
pub(super) fn script(body: &str) -> Script {
    Script::from_lua(format!(
        "{}\n{}\n{body}",
        include_str!("epoch.lua"),
        include_str!("trim.lua")
    ))
}

/// The keys of a room every history script takes first: state, log,
/// overlays and change index.
pub(super) fn room_keys(names: &ChannelNames, room: &RoomName) -> Vec<String> {
    ["state", "log", "overlays", "changes"]
        .iter()
        .map(|suffix| names.room_key(room, suffix))
        .collect()
}

impl RoomLog {
    pub(super) fn new(names: ChannelNames, settings: HistorySettings) -> Self {
        Self {
            publish: script(include_str!("publish.lua")),
            read: script(include_str!("read.lua")),
            positions: script(include_str!("positions.lua")),
            names,
            settings,
            bounds: [
                settings.max_len.to_string().into(),
                millis(settings.max_age).into(),
                millis(settings.state_ttl).into(),
                millis(settings.dedup_window).into(),
            ],
        }
    }

    pub(super) async fn publish(
        &self,
        client: &Client,
        room: &RoomName,
        message: Outgoing,
    ) -> Result<Published, BackplaneError> {
        let mut keys = room_keys(&self.names, room);
        let (reply, key) = match message.dedup {
            Some(dedup) => (dedup.reply, Some(dedup.key)),
            None => (Bytes::new(), None),
        };
        if let Some(key) = key {
            keys.push(self.names.room_key(room, &format!("dedup:{key}")));
        }
        let [max_len, max_age, state_ttl, dedup_window] = self.bounds.clone();
        let args: Vec<Value> = vec![
            self.names.room_channel(room).into(),
            Value::Bytes(message.payload),
            message.ts.to_string().into(),
            message.id.into(),
            max_len,
            max_age,
            state_ttl,
            dedup_window,
            Value::Bytes(reply),
            message.sender.into(),
        ];
        let answer: Value = self
            .publish
            .evalsha_with_reload(client, keys, args)
            .await
            .map_err(unavailable)?;
        let mut parts = array(answer)?.into_iter();
        let kind = parts.next().and_then(bytes_of).unwrap_or_default();
        let epoch = parts
            .next()
            .as_ref()
            .and_then(number)
            .ok_or_else(|| bad("epoch"))?;
        match &kind[..] {
            b"new" => Ok(Published::New(Position {
                epoch,
                seq: parts
                    .next()
                    .as_ref()
                    .and_then(number)
                    .ok_or_else(|| bad("seq"))?,
            })),
            b"dup" => {
                let stored = parts.next().and_then(bytes_of).ok_or_else(|| bad("dup"))?;
                let colon = stored
                    .iter()
                    .position(|b| *b == b':')
                    .ok_or_else(|| bad("dup"))?;
                let seq = std::str::from_utf8(&stored[..colon])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("dup seq"))?;
                Ok(Published::Duplicate {
                    epoch,
                    seq,
                    reply: stored.slice(colon + 1..),
                })
            }
            _ => Err(bad("kind")),
        }
    }

    pub(super) async fn read(
        &self,
        client: &Client,
        room: &RoomName,
        read: Read,
        reader: Option<&str>,
    ) -> Result<Page, BackplaneError> {
        let limit = read.limit();
        // One more than asked tells whether more lie beyond the page.
        let count = (limit + 1).to_string();
        let (mode, arg, newest_first) = match &read {
            Read::Latest { .. } => ("latest", String::new(), true),
            Read::After { seq, .. } => ("after", seq.to_string(), false),
            Read::Before { seq, .. } => ("before", seq.to_string(), true),
            Read::BeforeId { id, .. } => ("before_id", id.clone(), true),
        };
        let mut keys = room_keys(&self.names, room);
        keys.push(self.names.room_key(room, "reads"));
        let args = vec![
            mode.to_owned(),
            arg,
            count,
            millis(self.settings.state_ttl),
            self.settings.max_len.to_string(),
            reader.unwrap_or_default().to_owned(),
        ];
        let answer: Value = self
            .read
            .evalsha_with_reload(client, keys, args)
            .await
            .map_err(unavailable)?;
        let mut parts = array(answer)?.into_iter();
        let position = Position {
            epoch: parts
                .next()
                .as_ref()
                .and_then(number)
                .ok_or_else(|| bad("epoch"))?,
            seq: parts
                .next()
                .as_ref()
                .and_then(number)
                .ok_or_else(|| bad("seq"))?,
        };
        let raw = parts.next().ok_or_else(|| bad("entries"))?;
        if text_of(&raw) == Some(b"unknown") {
            return Err(BackplaneError::UnknownMessage);
        }
        let mut entries = array(raw)?
            .into_iter()
            .map(entry)
            .collect::<Result<Vec<_>, _>>()?;
        let overlays = array(parts.next().ok_or_else(|| bad("overlays"))?)?;
        for (entry, overlay) in entries.iter_mut().zip(overlays) {
            entry.overlay = bytes_of(overlay)
                .filter(|json| !json.is_empty())
                .and_then(|json| serde_json::from_slice::<Overlay>(&json).ok());
        }
        let marker = parts.next().and_then(bytes_of).unwrap_or_default();
        let unread = parts.next().as_ref().and_then(number).unwrap_or(0);
        let reader = reader.map(|_| Reader {
            marker: std::str::from_utf8(&marker)
                .ok()
                .and_then(super::reads::parse_marker),
            unread,
        });
        let more = entries.len() > limit;
        entries.truncate(limit);
        if newest_first {
            entries.reverse();
        }
        Ok(Page {
            position,
            entries,
            more,
            reader,
        })
    }

    pub(super) async fn positions(
        &self,
        client: &Client,
        rooms: &[RoomName],
    ) -> Result<Vec<Position>, BackplaneError> {
        let mut positions = Vec::with_capacity(rooms.len());
        for batch in rooms.chunks(POSITIONS_BATCH) {
            let keys: Vec<String> = batch
                .iter()
                .map(|room| self.names.room_key(room, "state"))
                .collect();
            let answer: Value = self
                .positions
                .evalsha_with_reload(client, keys, vec![millis(self.settings.state_ttl)])
                .await
                .map_err(unavailable)?;
            let flat = array(answer)?;
            for pair in flat.chunks(2) {
                let [epoch, seq] = pair else {
                    return Err(bad("positions"));
                };
                positions.push(Position {
                    epoch: number(epoch).ok_or_else(|| bad("epoch"))?,
                    seq: number(seq).ok_or_else(|| bad("seq"))?,
                });
            }
        }
        Ok(positions)
    }
}

/// Parses a relayed pub/sub payload: `<epoch>:<seq>:<envelope>`.
pub(super) fn parse_relayed(payload: Bytes) -> Option<(u64, u64, Bytes)> {
    let first = payload.iter().position(|b| *b == b':')?;
    let second = first + 1 + payload[first + 1..].iter().position(|b| *b == b':')?;
    let epoch = std::str::from_utf8(&payload[..first]).ok()?.parse().ok()?;
    let seq = std::str::from_utf8(&payload[first + 1..second])
        .ok()?
        .parse()
        .ok()?;
    Some((epoch, seq, payload.slice(second + 1..)))
}

fn entry(value: Value) -> Result<Stored, BackplaneError> {
    let mut parts = array(value)?.into_iter();
    let id = parts
        .next()
        .and_then(bytes_of)
        .ok_or_else(|| bad("entry id"))?;
    let seq = std::str::from_utf8(&id)
        .ok()
        .and_then(|id| id.strip_suffix("-0"))
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(|| bad("entry id"))?;
    let mut fields = array(parts.next().ok_or_else(|| bad("entry fields"))?)?.into_iter();
    let mut payload = None;
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if text_of(&name) == Some(b"m") {
            payload = bytes_of(value);
            break;
        }
    }
    let payload = payload.ok_or_else(|| bad("entry payload"))?;
    Ok(Stored {
        seq,
        payload,
        overlay: None,
    })
}

pub(super) fn array(value: Value) -> Result<Vec<Value>, BackplaneError> {
    match value {
        Value::Array(values) => Ok(values),
        Value::Null => Ok(Vec::new()),
        _ => Err(bad("expected an array")),
    }
}

pub(super) fn bytes_of(value: Value) -> Option<Bytes> {
    match value {
        Value::Bytes(bytes) => Some(bytes),
        Value::String(text) => Some(text.into_inner()),
        _ => None,
    }
}

/// The bytes of a string reply, borrowed (for comparisons and numbers).
fn text_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Bytes(bytes) => Some(bytes),
        Value::String(text) => Some(text.as_bytes()),
        _ => None,
    }
}

pub(super) fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(text_of(other)?).ok()?.parse().ok(),
    }
}

pub(super) fn millis(duration: std::time::Duration) -> String {
    duration.as_millis().max(1).to_string()
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> BackplaneError {
    BackplaneError::Unavailable(e.to_string())
}

pub(super) fn bad(what: &str) -> BackplaneError {
    BackplaneError::Unavailable(format!("unexpected reply from Redis ({what})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relayed_payloads() {
        let parsed = parse_relayed(Bytes::from_static(b"1700000000000001:42:\x81a:b")).unwrap();
        assert_eq!(
            parsed,
            (1_700_000_000_000_001, 42, Bytes::from_static(b"\x81a:b"))
        );
        assert!(parse_relayed(Bytes::from_static(b"garbage")).is_none());
        assert!(parse_relayed(Bytes::from_static(b"1:x:")).is_none());
    }
}

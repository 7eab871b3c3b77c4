//! Room history in Redis: the Lua scripts that publish, change, read and
//! report positions, as one [`RoomLog`].
//!
//! Keys of one room share the room's hash tag: `<prefix>:room:{<room>}:state`
//! (a hash with `epoch` and `seq`), `...:log` (a Stream whose entry ids are
//! `<seq>-0`, fields `m` envelope, `t` time, `i` message id, `u` sender, and
//! `k` on a change) and `...:dedup:<key>` (the original reply to an idempotent
//! send). Changes to messages (see `changes`) add `...:overlays` (message seq
//! -> its current state as JSON) and `...:changes` (a sorted set of the change
//! entries, for unread counts and for forgetting overlays of trimmed history).

use async_trait::async_trait;
use chorus_protocol::RoomName;
use fred::{clients::Client, prelude::Value};
use prometheus::Histogram;

use super::{
    batch::{Batcher, PublishCall, Replication},
    reply::{OpScript, WhenFull, millis},
    sharding::Sharding,
};
use crate::{
    BackplaneError, Change, Changed, ChannelNames, HistorySettings, Outgoing, Page, Position,
    Published, Read, RoomLog,
};

/// Rooms per `positions` script call.
const POSITIONS_BATCH: usize = 256;

/// The room log on Redis.
pub(super) struct RedisLog {
    /// The connection commands go through (pipelined).
    client: Client,
    /// Gathers publishes into batched calls of `publish.lua`.
    publish: Batcher,
    /// Check, apply, store and relay one change.
    change: OpScript,
    /// Read a page and the room's position.
    read: OpScript,
    /// Positions of many rooms.
    positions: OpScript,
    /// Records how far the archive holds a room (what trimming must keep).
    archived: OpScript,
    /// Key and channel naming.
    names: ChannelNames,
    /// History bounds, passed to the scripts.
    settings: HistorySettings,
    /// The bounds as script arguments, formatted once: max length, max age,
    /// state TTL and dedup window (ms).
    bounds: [Value; 4],
    /// One Redis or a cluster: how `positions` splits its rooms.
    sharding: Sharding,
}

/// A script with the shared prelude (`PUBLISH`, `room_epoch`, `forget_trimmed`).
fn with_prelude(op: &'static str, when_full: WhenFull, body: &str, sharding: Sharding) -> OpScript {
    let prelude = concat!(include_str!("epoch.lua"), "\n", include_str!("trim.lua"));
    OpScript::publishing(
        op,
        when_full,
        &format!("{prelude}\n{body}"),
        sharding.script_prelude(),
    )
}

/// Like [`with_prelude`], for a script that takes many rooms: in a cluster
/// it may take the rooms of every slot of one shard (`allow-cross-slot-keys`).
fn shard_wide(op: &'static str, when_full: WhenFull, body: &str, sharding: Sharding) -> OpScript {
    let prelude = concat!(include_str!("epoch.lua"), "\n", include_str!("trim.lua"));
    let (publish, keys) = (sharding.script_prelude(), sharding.shard_wide_prelude());
    let body = format!("{publish}\n{keys}\n{prelude}\n{body}");
    OpScript::with_flags(op, when_full, sharding.shard_wide_flags(), &body)
}

/// The keys of a room every history script takes first: state, log,
/// overlays and change index.
fn room_keys(names: &ChannelNames, room: &RoomName) -> Vec<String> {
    ["state", "log", "overlays", "changes"]
        .iter()
        .map(|suffix| names.room_key(room, suffix))
        .collect()
}

impl RedisLog {
    /// The log on `client`, publishing on `writer`; `batch_sizes` observes
    /// the messages per publish call; a publish waits at most `timeout`,
    /// queue included, and is acknowledged once `wait_replicas` replicas hold it.
    pub(super) fn new(
        (client, writer): (Client, Client),
        names: ChannelNames,
        settings: HistorySettings,
        (batch_sizes, timeout): (Histogram, std::time::Duration),
        (wait_replicas, sharding): (u32, Sharding),
    ) -> Self {
        // "max_len", or "max_len:unarchived_max" when rooms are archived.
        let lengths = match settings.unarchived_max {
            0 => settings.max_len.to_string(),
            most => format!("{}:{most}", settings.max_len),
        };
        let bounds = [
            lengths.into(),
            millis(settings.max_age).into(),
            millis(settings.state_ttl).into(),
            millis(settings.dedup_window).into(),
        ];
        let publish = Batcher::start(
            PublishCall {
                client: writer,
                wait: Replication::new(wait_replicas, timeout),
                script: shard_wide(
                    "publish",
                    WhenFull::Refuse,
                    include_str!("publish.lua"),
                    sharding,
                ),
                sharding,
                names: names.clone(),
                bounds: bounds.clone(),
                sizes: batch_sizes,
            },
            timeout,
        );
        Self {
            client,
            publish,
            change: with_prelude(
                "change",
                WhenFull::Refuse,
                include_str!("change.lua"),
                sharding,
            ),
            read: with_prelude("read", WhenFull::Run, include_str!("read.lua"), sharding),
            archived: with_prelude(
                "archived",
                WhenFull::Run,
                include_str!("archived.lua"),
                sharding,
            ),
            positions: shard_wide(
                "positions",
                WhenFull::Run,
                include_str!("positions.lua"),
                sharding,
            ),
            names,
            settings,
            bounds,
            sharding,
        }
    }

    async fn read_page(
        &self,
        room: &RoomName,
        read: Read,
        reader: Option<&str>,
    ) -> Result<Page, BackplaneError> {
        let limit = read.limit();
        // One more than asked tells whether more lie beyond the page.
        let count = (limit + 1).to_string();
        let (mode, arg) = super::read::mode(&read);
        let mut keys = room_keys(&self.names, room);
        keys.push(self.names.room_key(room, "reads"));
        let args = vec![
            mode.into(),
            arg.into(),
            count.into(),
            millis(self.settings.state_ttl).into(),
            self.settings.max_len.to_string().into(),
            reader.unwrap_or_default().into(),
        ];
        let reply = self.read.call_reply(&self.client, keys, args).await?;
        super::read::page(reply, &read, reader.is_some())
    }
}

#[async_trait]
impl RoomLog for RedisLog {
    async fn publish(
        &self,
        room: &RoomName,
        message: Outgoing,
    ) -> Result<Published, BackplaneError> {
        self.publish.publish(room, message).await
    }

    async fn change(&self, room: &RoomName, change: Change) -> Result<Changed, BackplaneError> {
        let [max_len, max_age, state_ttl, _] = self.bounds.clone();
        let mut args: Vec<Value> = vec![
            self.names.room_channel(room).into(),
            Value::Bytes(change.payload.clone()),
            change.ts.to_string().into(),
            change.id.clone().into(),
            max_len,
            max_age,
            state_ttl,
        ];
        args.extend(super::changes::args(&change));
        let keys = room_keys(&self.names, room);
        let reply = self.change.call_reply(&self.client, keys, args).await?;
        super::changes::outcome(reply)
    }

    async fn read(&self, room: &RoomName, read: Read) -> Result<Page, BackplaneError> {
        self.read_page(room, read, None).await
    }

    async fn read_as(
        &self,
        room: &RoomName,
        read: Read,
        user: &str,
    ) -> Result<Page, BackplaneError> {
        self.read_page(room, read, Some(user)).await
    }

    async fn positions(&self, rooms: &[RoomName]) -> Result<Vec<Position>, BackplaneError> {
        let keys: Vec<String> = rooms
            .iter()
            .map(|room| self.names.room_key(room, "state"))
            .collect();
        let groups =
            self.sharding
                .shard_groups(&self.client, &keys, String::as_str, POSITIONS_BATCH);
        let calls = groups.iter().map(|group| {
            let keys = group.iter().map(|&i| keys[i].clone()).collect();
            let ttl = vec![millis(self.settings.state_ttl).into()];
            let (keys, args) = self.sharding.shard_wide_call(keys, ttl);
            self.positions.call_reply(&self.client, keys, args)
        });
        // In a cluster the calls go to several shards: they run at once. A
        // call whose rooms moved meanwhile fails, and the next check retries.
        let replies = futures_util::future::join_all(calls).await;
        let mut positions = vec![Position { epoch: 0, seq: 0 }; rooms.len()];
        for (group, reply) in groups.iter().zip(replies) {
            let mut reply = reply?;
            for &i in group {
                positions[i] = Position {
                    epoch: reply.number("epoch")?,
                    seq: reply.number("seq")?,
                };
            }
        }
        Ok(positions)
    }

    async fn archived(&self, room: &RoomName, position: Position) -> Result<(), BackplaneError> {
        let keys = vec![self.names.room_key(room, "state")];
        let args = vec![
            position.epoch.to_string().into(),
            position.seq.to_string().into(),
        ];
        self.archived.call(&self.client, keys, args).await?;
        Ok(())
    }
}

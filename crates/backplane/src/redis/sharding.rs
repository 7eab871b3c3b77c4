//! Where a room's channel and keys live: all on one Redis, or, in a Redis
//! Cluster, on the shard that owns the room's hash slot.
//!
//! On one Redis, room channels are ordinary channels (`PUBLISH`,
//! `SUBSCRIBE`). In a cluster an ordinary `PUBLISH` is copied to every node of
//! the cluster, so room channels are shard channels (`SPUBLISH`,
//! `SSUBSCRIBE`): a message crosses only the shard that owns its room, and the
//! node's subscriber holds one connection per shard. A command or script may
//! touch the keys of one slot only, so work on many rooms or users is split
//! into one call per slot ([`Sharding::groups`]).

use bytes::Bytes;
use fred::{
    clients::{Client, SubscriberClient},
    interfaces::{ClientLike, ClusterInterface, PubsubInterface},
    prelude::Value,
    types::{ClusterHash, CustomCommand, cluster::ClusterRouting},
};

use super::topology::RedisMode;

/// How channels and multi-key calls are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sharding {
    /// One Redis (or a Sentinel-managed primary): ordinary channels, and
    /// calls may mix any keys.
    Single,
    /// A Redis Cluster: shard channels, and one slot per call.
    Cluster,
}

impl Sharding {
    /// The layout `mode` needs.
    pub(super) fn of(mode: &RedisMode) -> Self {
        if mode.is_cluster() {
            Self::Cluster
        } else {
            Self::Single
        }
    }

    /// The first line of every script that publishes: it names the publish
    /// command the script calls as `PUBLISH`.
    pub(super) fn script_prelude(self) -> &'static str {
        match self {
            Self::Single => "local PUBLISH = 'PUBLISH'",
            Self::Cluster => "local PUBLISH = 'SPUBLISH'",
        }
    }

    /// Publishes `payload` on `channel`.
    pub(super) async fn publish(
        self,
        client: &Client,
        channel: String,
        payload: Bytes,
    ) -> Result<(), fred::error::Error> {
        match self {
            Self::Single => client.publish::<Value, _, _>(channel, payload).await,
            Self::Cluster => client.spublish::<Value, _, _>(channel, payload).await,
        }
        .map(|_| ())
    }

    /// Subscribes `channels` (in a cluster, one command per slot: each goes to
    /// the shard that owns it).
    pub(super) async fn subscribe(
        self,
        subscriber: &SubscriberClient,
        channels: Vec<String>,
    ) -> Result<(), fred::error::Error> {
        match self {
            Self::Single => subscriber.subscribe(channels).await,
            Self::Cluster => {
                for group in self.groups(&channels, String::as_str, usize::MAX) {
                    let group: Vec<&str> = group.iter().map(|&i| channels[i].as_str()).collect();
                    subscriber.ssubscribe(group).await?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes `channel`.
    pub(super) async fn unsubscribe(
        self,
        subscriber: &SubscriberClient,
        channel: String,
    ) -> Result<(), fred::error::Error> {
        match self {
            Self::Single => subscriber.unsubscribe(channel).await,
            Self::Cluster => subscriber.sunsubscribe(channel).await,
        }
    }

    /// Every channel the subscriber should hold (fred tracks what was subscribed).
    pub(super) fn tracked(self, subscriber: &SubscriberClient) -> Vec<String> {
        let tracked = match self {
            Self::Single => subscriber.tracked_channels(),
            Self::Cluster => subscriber.tracked_shard_channels(),
        };
        tracked.iter().map(|c| c.to_string()).collect()
    }

    /// Waits until Redis has processed what the subscriber sent before on
    /// `channel`'s connection (fred completes unsubscribing once it is
    /// written): Redis answers a connection's commands in order, so the
    /// answer to a `PING` sent on the same connection proves it.
    pub(super) async fn processed(
        self,
        subscriber: &SubscriberClient,
        channel: &str,
    ) -> Result<(), fred::error::Error> {
        let route = match self {
            Self::Single => ClusterHash::FirstKey,
            Self::Cluster => ClusterHash::Custom(slot_of(channel)),
        };
        let ping = CustomCommand::new_static("PING", route, false);
        subscriber
            .custom::<Value, Value>(ping, vec![])
            .await
            .map(|_| ())
    }

    /// Splits `items` into calls of at most `most` that each touch one slot
    /// only (in a cluster): the indices of each call's items, in order.
    pub(super) fn groups<T>(
        self,
        items: &[T],
        key: impl Fn(&T) -> &str,
        most: usize,
    ) -> Vec<Vec<usize>> {
        match self {
            Self::Single => group_by(items, |_| (), most),
            Self::Cluster => group_by(items, |item| slot_of(key(item)), most),
        }
    }

    /// Splits `items` into calls of at most `most` that each go to one shard
    /// (the primary `client` holds responsible for their slots): for scripts
    /// that may touch keys of several slots of one shard
    /// (`allow-cross-slot-keys`). Where `client` knows no slot map yet, by slot.
    pub(super) fn shard_groups<T>(
        self,
        client: &Client,
        items: &[T],
        key: impl Fn(&T) -> &str,
        most: usize,
    ) -> Vec<Vec<usize>> {
        let state = match self {
            Self::Single => return group_by(items, |_| (), most),
            Self::Cluster => client.cached_cluster_state(),
        };
        match state {
            Some(state) => group_by(
                items,
                |item| state.get_server(slot_of(key(item))).cloned(),
                most,
            ),
            None => self.groups(items, key, most),
        }
    }

    /// The script flags of a call that may touch several slots of a shard.
    pub(super) fn shard_wide_flags(self) -> &'static [&'static str] {
        match self {
            Self::Single => &[],
            Self::Cluster => &["allow-cross-slot-keys"],
        }
    }

    /// The first lines of a script that may touch several slots of a shard.
    /// Redis Cluster refuses a call whose declared keys span slots
    /// (`CROSSSLOT`) even when the script may touch them, so such a call
    /// declares its first key only (which routes it) and passes them all at
    /// the head of its arguments (see [`Sharding::shard_wide_call`]); these
    /// lines give the script its `KEYS` and `ARGV` back.
    pub(super) fn shard_wide_prelude(self) -> &'static str {
        match self {
            Self::Single => "",
            Self::Cluster => {
                "local KEYS, ARGV = (function(argv)\n\
                   local n, keys, args = tonumber(argv[1]), {}, {}\n\
                   for i = 1, n do keys[i] = argv[1 + i] end\n\
                   for i = n + 2, #argv do args[#args + 1] = argv[i] end\n\
                   return keys, args\n\
                 end)(ARGV)"
            }
        }
    }

    /// The keys and arguments a call of a shard-wide script sends for
    /// `keys` and `args` (see [`Sharding::shard_wide_prelude`]).
    pub(super) fn shard_wide_call(
        self,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> (Vec<String>, Vec<Value>) {
        match self {
            Self::Single => (keys, args),
            Self::Cluster => {
                let mut packed = Vec::with_capacity(1 + keys.len() + args.len());
                packed.push(Value::Integer(keys.len() as i64));
                let first = keys.first().cloned().into_iter().collect();
                packed.extend(keys.into_iter().map(Value::from));
                packed.extend(args);
                (first, packed)
            }
        }
    }
}

/// The indices of `items` in groups of equal `group` (at most `most` each),
/// each group in order, groups in the order of their first item.
fn group_by<T, G: PartialEq>(items: &[T], group: impl Fn(&T) -> G, most: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<(G, Vec<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = group(item);
        match groups.iter_mut().rev().find(|(k, _)| *k == key) {
            Some((_, members)) if members.len() < most => members.push(i),
            _ => groups.push((key, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// The cluster hash slot of `key` (its `{tag}` when it has one).
pub(super) fn slot_of(key: &str) -> u16 {
    ClusterRouting::hash_key(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_groups_hold_one_slot_each_and_keep_order_within_it() {
        let keys = ["a:{r1}:x", "a:{r2}:x", "a:{r1}:y", "a:{r1}:z", "a:{r2}:y"];
        let groups = Sharding::Cluster.groups(&keys, |k| k, 2);
        assert_eq!(groups, vec![vec![0, 2], vec![1, 4], vec![3]]);
        for group in &groups {
            let slot = slot_of(keys[group[0]]);
            assert!(group.iter().all(|&i| slot_of(keys[i]) == slot));
        }
        assert_eq!(
            Sharding::Single.groups(&keys, |k| k, 4),
            vec![vec![0, 1, 2, 3], vec![4]]
        );
    }

    #[test]
    fn a_rooms_channel_and_keys_share_a_slot() {
        let names = crate::ChannelNames::new("chorus");
        let room = chorus_protocol::RoomName::parse("team.general").unwrap();
        let slot = slot_of(&names.room_channel(&room));
        for suffix in ["state", "log", "overlays", "changes", "dedup:x", "presence"] {
            assert_eq!(slot_of(&names.room_key(&room, suffix)), slot);
        }
    }
}

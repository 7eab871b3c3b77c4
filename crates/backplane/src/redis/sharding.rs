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
    interfaces::{ClientLike, PubsubInterface},
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
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let slot = match self {
                Self::Single => 0,
                Self::Cluster => slot_of(key(item)),
            };
            match groups.iter_mut().rev().find(|(s, _)| *s == slot) {
                Some((_, group)) if group.len() < most => group.push(i),
                _ => groups.push((slot, vec![i])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }
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

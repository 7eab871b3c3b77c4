//! Per-user state in Redis, under the user's hash tag:
//! `<prefix>:user:{<user>}:drafts` (a hash of room to unsent text, bounded
//! per user) and `...:status` (`online` or `away`), both expiring like a
//! room's state.

use async_trait::async_trait;
use chorus_protocol::RoomName;
use fred::{
    clients::Client,
    interfaces::{HashesInterface, KeysInterface},
    prelude::Value,
    types::Expiration,
};

use super::{
    reply::{OpScript, WhenFull, failed, millis, number},
    sharding::Sharding,
};
use crate::{BackplaneError, ChannelNames, UserState};

/// Most statuses read in one round trip.
const STATUS_BATCH: usize = 256;

/// Drafts and statuses on Redis.
pub(super) struct RedisUsers {
    /// The connection commands go through.
    client: Client,
    /// Save or delete one draft, bounded per user.
    save_draft: OpScript,
    /// Key naming.
    names: ChannelNames,
    /// Drafts and statuses nobody sets again for this long are forgotten.
    ttl: std::time::Duration,
    /// One Redis or a cluster: how reading many statuses is split.
    sharding: Sharding,
}

impl RedisUsers {
    pub(super) fn new(
        client: Client,
        names: ChannelNames,
        (ttl, sharding): (std::time::Duration, Sharding),
    ) -> Self {
        Self {
            client,
            save_draft: OpScript::new(
                "save_draft",
                WhenFull::Refuse,
                include_str!("save_draft.lua"),
            ),
            names,
            ttl,
            sharding,
        }
    }
}

#[async_trait]
impl UserState for RedisUsers {
    async fn save_draft(
        &self,
        user: &str,
        room: &RoomName,
        text: &str,
        max: usize,
    ) -> Result<bool, BackplaneError> {
        let keys = vec![self.names.user_key(user, "drafts")];
        let args: Vec<Value> = vec![
            room.as_str().into(),
            text.into(),
            max.to_string().into(),
            millis(self.ttl).into(),
        ];
        let answer = self.save_draft.call(&self.client, keys, args).await?;
        match number(&answer) {
            Some(saved) => Ok(saved == 1),
            None => Err(BackplaneError::bad_reply("save_draft", "not a number")),
        }
    }

    async fn drafts(&self, user: &str) -> Result<Vec<(String, String)>, BackplaneError> {
        let all: std::collections::HashMap<String, String> = self
            .client
            .hgetall(self.names.user_key(user, "drafts"))
            .await
            .map_err(failed("drafts"))?;
        let mut drafts: Vec<(String, String)> = all.into_iter().collect();
        drafts.sort();
        Ok(drafts)
    }

    async fn set_status(&self, user: &str, status: &str) -> Result<(), BackplaneError> {
        let expiry = Expiration::PX(self.ttl.as_millis().max(1) as i64);
        let key = self.names.user_key(user, "status");
        let _: () = self
            .client
            .set(key, status, Some(expiry), None, false)
            .await
            .map_err(failed("set_status"))?;
        Ok(())
    }

    async fn statuses(&self, users: &[String]) -> Result<Vec<Option<String>>, BackplaneError> {
        let keys: Vec<String> = users
            .iter()
            .map(|user| self.names.user_key(user, "status"))
            .collect();
        // Users are spread over a cluster's slots: one MGET per slot, at once.
        let groups = self.sharding.groups(&keys, String::as_str, STATUS_BATCH);
        let reads = groups.iter().map(|group| {
            let keys: Vec<&str> = group.iter().map(|&i| keys[i].as_str()).collect();
            self.client.mget::<Vec<Option<String>>, _>(keys)
        });
        let answers = futures_util::future::join_all(reads).await;
        let mut statuses = vec![None; users.len()];
        for (group, answer) in groups.iter().zip(answers) {
            let answer = answer.map_err(failed("statuses"))?;
            for (&i, status) in group.iter().zip(answer) {
                statuses[i] = status;
            }
        }
        Ok(statuses)
    }
}

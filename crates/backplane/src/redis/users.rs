//! Per-user state in Redis, under the user's hash tag:
//! `<prefix>:user:{<user>}:drafts` (a hash of room to unsent text, bounded
//! per user) and `...:status` (`online` or `away`), both expiring like a
//! room's state. Token revocations are cluster-wide, in one slot:
//! `<prefix>:{revocations}` (user -> `<issued_before>:<until>`), `...:ends`
//! (users by `until`) and `...:version`.

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
use crate::{BackplaneError, ChannelNames, MAX_REVOCATIONS, Revocation, UserState};

/// Most statuses read in one round trip.
const STATUS_BATCH: usize = 256;

/// Drafts and statuses on Redis.
pub(super) struct RedisUsers {
    /// The connection commands go through.
    client: Client,
    /// Save or delete one draft, bounded per user.
    save_draft: OpScript,
    /// Record one user's token revocation, bounded cluster-wide.
    revoke: OpScript,
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
            revoke: OpScript::new("revoke", WhenFull::Run, include_str!("revoke.lua")),
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

    async fn revoke(
        &self,
        user: &str,
        revocation: Revocation,
        now: u64,
    ) -> Result<bool, BackplaneError> {
        let hash = self.names.shared_key("revocations");
        let keys = vec![format!("{hash}:ends"), format!("{hash}:version")];
        let keys = [vec![hash], keys].concat();
        let args: Vec<Value> = vec![
            user.into(),
            revocation.issued_before.to_string().into(),
            revocation.until.to_string().into(),
            now.to_string().into(),
            MAX_REVOCATIONS.to_string().into(),
        ];
        let answer = self.revoke.call(&self.client, keys, args).await?;
        match number(&answer) {
            Some(recorded) => Ok(recorded == 1),
            None => Err(BackplaneError::bad_reply("revoke", "not a number")),
        }
    }

    async fn revocations_version(&self) -> Result<u64, BackplaneError> {
        let key = format!("{}:version", self.names.shared_key("revocations"));
        let version: Option<u64> = self
            .client
            .get(key)
            .await
            .map_err(failed("revocations_version"))?;
        Ok(version.unwrap_or(0))
    }

    async fn revocations(&self) -> Result<(u64, Vec<(String, Revocation)>), BackplaneError> {
        // The version first: a revocation recorded between the two reads is
        // read again at the next check.
        let version = self.revocations_version().await?;
        let all: std::collections::HashMap<String, String> = self
            .client
            .hgetall(self.names.shared_key("revocations"))
            .await
            .map_err(failed("revocations"))?;
        let list = all
            .into_iter()
            .filter_map(|(user, value)| {
                let (issued_before, until) = value.split_once(':')?;
                let revocation = Revocation {
                    issued_before: issued_before.parse().ok()?,
                    until: until.parse().ok()?,
                };
                Some((user, revocation))
            })
            .collect();
        Ok((version, list))
    }
}

//! Drafts in Redis: `<prefix>:user:{<user>}:drafts`, a hash of room to unsent
//! text, bounded per user and expiring like a room's state.

use chorus_protocol::RoomName;
use fred::{clients::Client, interfaces::HashesInterface, prelude::Value, types::scripts::Script};

use super::log::{millis, number, unavailable};
use crate::{BackplaneError, ChannelNames};

/// The draft script and key naming.
pub(super) struct Drafts {
    /// Save or delete one draft, bounded per user.
    save: Script,
    /// Key naming.
    names: ChannelNames,
    /// Drafts of a user who saves none for this long are forgotten.
    ttl: String,
}

impl Drafts {
    pub(super) fn new(names: ChannelNames, ttl: std::time::Duration) -> Self {
        Self {
            save: Script::from_lua(include_str!("save_draft.lua")),
            names,
            ttl: millis(ttl),
        }
    }

    pub(super) async fn save(
        &self,
        client: &Client,
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
            self.ttl.clone().into(),
        ];
        let answer: Value = self
            .save
            .evalsha_with_reload(client, keys, args)
            .await
            .map_err(unavailable)?;
        Ok(number(&answer) == Some(1))
    }

    pub(super) async fn all(
        &self,
        client: &Client,
        user: &str,
    ) -> Result<Vec<(String, String)>, BackplaneError> {
        let all: std::collections::HashMap<String, String> = client
            .hgetall(self.names.user_key(user, "drafts"))
            .await
            .map_err(unavailable)?;
        let mut drafts: Vec<(String, String)> = all.into_iter().collect();
        drafts.sort();
        Ok(drafts)
    }
}

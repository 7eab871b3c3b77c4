//! Changes to stored messages in Redis: `change.lua` checks, applies and
//! stores them (see `crate::changes` for the rules).

use chorus_protocol::RoomName;
use fred::{clients::Client, prelude::Value, types::scripts::Script};

use super::log::{array, bad, bytes_of, millis, number, room_keys, script, unavailable};
use crate::{
    BackplaneError, Change, ChangeRefusal, Changed, ChannelNames, HistorySettings,
    MAX_EMOJI_PER_MESSAGE, MAX_USERS_PER_EMOJI, Position,
};

/// The change script and what it needs.
pub(super) struct Changes {
    /// Check, apply, store and relay one change.
    script: Script,
    /// Key and channel naming.
    names: ChannelNames,
    /// Max length, max age and state TTL (ms), formatted once.
    bounds: [String; 3],
}

impl Changes {
    pub(super) fn new(names: ChannelNames, settings: HistorySettings) -> Self {
        Self {
            script: script(include_str!("change.lua")),
            names,
            bounds: [
                settings.max_len.to_string(),
                millis(settings.max_age),
                millis(settings.state_ttl),
            ],
        }
    }

    pub(super) async fn apply(
        &self,
        client: &Client,
        room: &RoomName,
        change: Change,
    ) -> Result<Changed, BackplaneError> {
        let [max_len, max_age, state_ttl] = self.bounds.clone();
        let (op, arg) = change.op.script_args();
        let args: Vec<Value> = vec![
            self.names.room_channel(room).into(),
            Value::Bytes(change.payload.clone()),
            change.ts.to_string().into(),
            change.id.clone().into(),
            max_len.into(),
            max_age.into(),
            state_ttl.into(),
            change.target.to_string().into(),
            change.target_id.clone().unwrap_or_default().into(),
            change.by.clone().into(),
            if change.moderator { "1" } else { "0" }.into(),
            op.into(),
            arg.to_owned().into(),
            MAX_EMOJI_PER_MESSAGE.to_string().into(),
            MAX_USERS_PER_EMOJI.to_string().into(),
        ];
        let answer: Value = self
            .script
            .evalsha_with_reload(client, room_keys(&self.names, room), args)
            .await
            .map_err(unavailable)?;
        let mut parts = array(answer)?.into_iter();
        let kind = parts.next().and_then(bytes_of).unwrap_or_default();
        let epoch = parts.next().as_ref().and_then(number);
        let refused = |why| Ok(Changed::Refused(why));
        match &kind[..] {
            b"new" => Ok(Changed::Applied(Position {
                epoch: epoch.ok_or_else(|| bad("epoch"))?,
                seq: parts
                    .next()
                    .as_ref()
                    .and_then(number)
                    .ok_or_else(|| bad("seq"))?,
            })),
            b"same" => Ok(Changed::Unchanged),
            b"unknown" => refused(ChangeRefusal::UnknownMessage),
            b"not_message" => refused(ChangeRefusal::NotAMessage),
            b"not_yours" => refused(ChangeRefusal::NotYours),
            b"deleted" => refused(ChangeRefusal::Deleted),
            b"too_many" => refused(ChangeRefusal::TooManyReactions),
            _ => Err(bad("change")),
        }
    }
}

//! Changes to stored messages in Redis: `change.lua` checks, applies and
//! stores them (see `crate::changes` for the rules).

use fred::prelude::Value;

use super::reply::Reply;
use crate::{
    BackplaneError, Change, ChangeRefusal, Changed, MAX_EMOJI_PER_MESSAGE, MAX_USERS_PER_EMOJI,
    Position,
};

/// The change's own arguments of `change.lua` (after the shared ones).
pub(super) fn args(change: &Change) -> Vec<Value> {
    let (op, arg) = change.op.script_args();
    vec![
        change.target.to_string().into(),
        change.target_id.clone().unwrap_or_default().into(),
        change.by.clone().into(),
        if change.moderator { "1" } else { "0" }.into(),
        op.into(),
        arg.to_owned().into(),
        MAX_EMOJI_PER_MESSAGE.to_string().into(),
        MAX_USERS_PER_EMOJI.to_string().into(),
    ]
}

/// What the script did.
pub(super) fn outcome(mut reply: Reply) -> Result<Changed, BackplaneError> {
    let kind = reply.bytes("kind")?;
    let refused = |why| Ok(Changed::Refused(why));
    match &kind[..] {
        b"new" => Ok(Changed::Applied(Position {
            epoch: reply.number("epoch")?,
            seq: reply.number("seq")?,
        })),
        b"same" => Ok(Changed::Unchanged),
        b"unknown" => refused(ChangeRefusal::UnknownMessage),
        b"not_message" => refused(ChangeRefusal::NotAMessage),
        b"not_yours" => refused(ChangeRefusal::NotYours),
        b"deleted" => refused(ChangeRefusal::Deleted),
        b"too_many" => refused(ChangeRefusal::TooManyReactions),
        _ => Err(reply.bad("kind")),
    }
}

//! Field checks shared by the commands: each failure becomes one error code.

use super::{
    Command, CommandError, ErrorCode, MAX_CLIENT_MSG_ID_BYTES, MAX_EMOJI_BYTES, MAX_MENTIONS,
    MAX_REF_BYTES, MAX_TOKEN_BYTES, MAX_USER_ID_BYTES, Ref, RoomName, Target,
};

pub(super) fn check_ref(reference: Ref) -> Result<Ref, CommandError> {
    match reference {
        Some(r) if r.len() > MAX_REF_BYTES => Err(CommandError {
            code: ErrorCode::InvalidRef,
            detail: format!("ref is longer than {MAX_REF_BYTES} bytes"),
            reference: None,
        }),
        other => Ok(other),
    }
}

pub(super) fn check_token(token: String, reference: &Ref) -> Result<String, CommandError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(CommandError {
            code: ErrorCode::InvalidToken,
            detail: format!("token must be 1 to {MAX_TOKEN_BYTES} bytes"),
            reference: reference.clone(),
        });
    }
    Ok(token)
}

pub(super) fn check_client_msg_id(
    id: Option<String>,
    reference: &Ref,
) -> Result<Option<String>, CommandError> {
    match id {
        Some(id)
            if id.is_empty()
                || id.len() > MAX_CLIENT_MSG_ID_BYTES
                || id.chars().any(char::is_control) =>
        {
            Err(CommandError {
                code: ErrorCode::InvalidCommand,
                detail: format!(
                    "client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_BYTES} bytes without control characters"
                ),
                reference: reference.clone(),
            })
        }
        other => Ok(other),
    }
}

pub(super) fn check_mentions(
    mut mentions: Vec<String>,
    reference: &Ref,
) -> Result<Vec<String>, CommandError> {
    mentions.sort();
    mentions.dedup();
    if mentions.len() > MAX_MENTIONS {
        return Err(CommandError {
            code: ErrorCode::TooManyMentions,
            detail: format!("at most {MAX_MENTIONS} users may be mentioned in one message"),
            reference: reference.clone(),
        });
    }
    if mentions
        .iter()
        .any(|m| m.is_empty() || m.len() > MAX_USER_ID_BYTES || m.chars().any(char::is_control))
    {
        let detail = format!("mentions are user ids of 1 to {MAX_USER_ID_BYTES} bytes");
        return Err(invalid_with(&detail, reference.clone()));
    }
    Ok(mentions)
}

pub(super) fn target(
    seq: u64,
    id: Option<String>,
    reference: &Ref,
) -> Result<Target, CommandError> {
    if seq == 0 {
        let detail = "seq must be a message's sequence number (1 or more)";
        return Err(invalid_with(detail, reference.clone()));
    }
    let id = match id {
        None => None,
        Some(id) => Some(uuid::Uuid::parse_str(&id).map_err(|_| {
            invalid_with("id must be the message's id (a UUID)", reference.clone())
        })?),
    };
    Ok(Target { seq, id })
}

pub(super) fn react(
    room: String,
    seq: u64,
    id: Option<String>,
    emoji: String,
    add: bool,
    reference: Ref,
) -> Result<Command, CommandError> {
    let reference = check_ref(reference)?;
    if emoji.is_empty()
        || emoji.len() > MAX_EMOJI_BYTES
        || emoji.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        let detail = format!("emoji must be 1 to {MAX_EMOJI_BYTES} bytes without spaces");
        return Err(invalid_with(&detail, reference));
    }
    Ok(Command::React {
        room: room_name(&room, &reference)?,
        target: target(seq, id, &reference)?,
        emoji,
        add,
        reference,
    })
}

pub(super) fn invalid_with(detail: &str, reference: Ref) -> CommandError {
    CommandError {
        code: ErrorCode::InvalidCommand,
        detail: detail.into(),
        reference,
    }
}

pub(super) fn room_name(room: &str, reference: &Ref) -> Result<RoomName, CommandError> {
    RoomName::parse(room).map_err(|e| CommandError {
        code: ErrorCode::InvalidRoom,
        detail: e.to_string(),
        reference: reference.clone(),
    })
}

pub(super) fn malformed(detail: String) -> CommandError {
    CommandError {
        code: ErrorCode::MalformedFrame,
        detail,
        reference: None,
    }
}

pub(super) fn invalid(detail: String) -> CommandError {
    CommandError {
        code: ErrorCode::InvalidCommand,
        detail,
        reference: None,
    }
}

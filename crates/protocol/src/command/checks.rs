//! Field checks shared by the commands: each failure becomes one error code.

use super::{
    CommandError, CommandKind, MAX_ATTACHMENTS, MAX_CLIENT_MSG_ID_BYTES, MAX_EMOJI_BYTES,
    MAX_MENTIONS, MAX_REF_BYTES, MAX_TOKEN_BYTES, MAX_USER_ID_BYTES, Ref, Target, commands,
};
use crate::{ErrorCode, RoomName};

/// Why a field is not acceptable (the command's `ref` is added by the caller).
pub(super) struct Invalid {
    /// What the client should match on.
    pub(super) code: ErrorCode,
    /// Human-readable detail.
    pub(super) detail: String,
}

impl Invalid {
    /// An `invalid_command` saying `detail`.
    pub(super) fn command(detail: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidCommand,
            detail: detail.into(),
        }
    }
}

/// The `ref`, unless it is too long (then the error cannot carry it).
pub(super) fn reference(reference: Ref) -> Result<Ref, CommandError> {
    match reference {
        Some(r) if r.len() > MAX_REF_BYTES => Err(CommandError {
            code: ErrorCode::InvalidRef,
            detail: format!("ref is longer than {MAX_REF_BYTES} bytes"),
            reference: None,
        }),
        other => Ok(other),
    }
}

pub(super) fn room(name: &str) -> Result<RoomName, Invalid> {
    RoomName::parse(name).map_err(|e| Invalid {
        code: ErrorCode::InvalidRoom,
        detail: e.to_string(),
    })
}

pub(super) fn token(token: String) -> Result<String, Invalid> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(Invalid {
            code: ErrorCode::InvalidToken,
            detail: format!("token must be 1 to {MAX_TOKEN_BYTES} bytes"),
        });
    }
    Ok(token)
}

pub(super) fn client_msg_id(id: Option<String>) -> Result<Option<String>, Invalid> {
    match id {
        Some(id)
            if id.is_empty()
                || id.len() > MAX_CLIENT_MSG_ID_BYTES
                || id.chars().any(char::is_control) =>
        {
            Err(Invalid::command(format!(
                "client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_BYTES} bytes without control characters"
            )))
        }
        other => Ok(other),
    }
}

pub(super) fn mentions(mut mentions: Vec<String>) -> Result<Vec<String>, Invalid> {
    mentions.sort();
    mentions.dedup();
    if mentions.len() > MAX_MENTIONS {
        return Err(Invalid {
            code: ErrorCode::TooManyMentions,
            detail: format!("at most {MAX_MENTIONS} users may be mentioned in one message"),
        });
    }
    if mentions
        .iter()
        .any(|m| m.is_empty() || m.len() > MAX_USER_ID_BYTES || m.chars().any(char::is_control))
    {
        return Err(Invalid::command(format!(
            "mentions are user ids of 1 to {MAX_USER_ID_BYTES} bytes"
        )));
    }
    Ok(mentions)
}

/// File ids: UUIDs, repeats dropped (the first kept), at most [`MAX_ATTACHMENTS`].
pub(super) fn attachments(ids: Vec<String>) -> Result<Vec<uuid::Uuid>, Invalid> {
    let mut parsed: Vec<uuid::Uuid> = Vec::with_capacity(ids.len().min(MAX_ATTACHMENTS));
    for id in &ids {
        let id = uuid::Uuid::parse_str(id)
            .map_err(|_| Invalid::command("attachments are file ids (UUIDs)"))?;
        if !parsed.contains(&id) {
            parsed.push(id);
        }
        if parsed.len() > MAX_ATTACHMENTS {
            return Err(Invalid {
                code: ErrorCode::TooManyAttachments,
                detail: format!("at most {MAX_ATTACHMENTS} files may be attached to one message"),
            });
        }
    }
    Ok(parsed)
}

pub(super) fn target(seq: u64, id: Option<String>) -> Result<Target, Invalid> {
    if seq == 0 {
        return Err(Invalid::command(
            "seq must be a message's sequence number (1 or more)",
        ));
    }
    let id = match id {
        None => None,
        Some(id) => Some(
            uuid::Uuid::parse_str(&id)
                .map_err(|_| Invalid::command("id must be the message's id (a UUID)"))?,
        ),
    };
    Ok(Target { seq, id })
}

pub(super) fn react(
    room_name: &str,
    seq: u64,
    id: Option<String>,
    emoji: String,
    add: bool,
) -> Result<CommandKind, Invalid> {
    if emoji.is_empty()
        || emoji.len() > MAX_EMOJI_BYTES
        || emoji.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Invalid::command(format!(
            "emoji must be 1 to {MAX_EMOJI_BYTES} bytes without spaces"
        )));
    }
    Ok(CommandKind::React(commands::React {
        room: room(room_name)?,
        target: target(seq, id)?,
        emoji,
        add,
    }))
}

#[cfg(test)]
mod tests {
    use crate::{Command, CommandKind, ErrorCode, commands, decode_json};

    #[test]
    fn attachments_are_distinct_file_ids_and_bounded() {
        let id = uuid::Uuid::now_v7();
        let send = |ids: serde_json::Value| {
            let json =
                serde_json::json!({"type": "send", "room": "r", "body": "", "attachments": ids});
            decode_json(&json.to_string())
        };
        assert!(matches!(
            send(serde_json::json!([id, id])),
            Ok(Command { kind: CommandKind::Send(commands::Send { ref attachments, .. }), .. }) if attachments == &[id]
        ));
        let bad = send(serde_json::json!(["not-an-id"])).unwrap_err();
        assert_eq!(bad.code, ErrorCode::InvalidCommand);
        let many: Vec<uuid::Uuid> = (0..11).map(|_| uuid::Uuid::now_v7()).collect();
        let too_many = send(serde_json::json!(many)).unwrap_err();
        assert_eq!(too_many.code, ErrorCode::TooManyAttachments);
    }
}

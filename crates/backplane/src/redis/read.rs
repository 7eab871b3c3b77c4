//! Reading the answer of `read.lua`: a page of entries with their overlays,
//! the room's position and, for a reader, their marker and unread count.

use fred::prelude::Value;

use super::reply::{Reply, bytes_of, text_of};
use crate::{BackplaneError, Overlay, Page, Position, Read, Reader, Stored};

/// The script's mode and argument for `read`.
pub(super) fn mode(read: &Read) -> (&'static str, String) {
    match read {
        Read::Latest { .. } => ("latest", String::new()),
        Read::After { seq, .. } => ("after", seq.to_string()),
        Read::Before { seq, .. } => ("before", seq.to_string()),
        Read::BeforeId { id, .. } => ("before_id", id.clone()),
    }
}

/// The page in `reply` (which holds one entry more than asked when more lie
/// beyond), oldest first.
pub(super) fn page(
    mut reply: Reply,
    read: &Read,
    for_reader: bool,
) -> Result<Page, BackplaneError> {
    let position = Position {
        epoch: reply.number("epoch")?,
        seq: reply.number("seq")?,
    };
    let raw = reply.value("entries")?;
    if text_of(&raw) == Some(b"unknown") {
        return Err(BackplaneError::UnknownMessage);
    }
    let mut entries = Reply::new("read", raw)?
        .rest()
        .map(entry)
        .collect::<Result<Vec<_>, _>>()?;
    for (entry, overlay) in entries.iter_mut().zip(reply.array("overlays")?) {
        // An overlay this node cannot read is left off: the message shows as sent.
        entry.overlay = bytes_of(overlay)
            .filter(|json| !json.is_empty())
            .and_then(|json| serde_json::from_slice::<Overlay>(&json).ok());
    }
    let reader = if for_reader {
        let marker = reply.bytes("marker")?;
        Some(Reader {
            marker: std::str::from_utf8(&marker)
                .ok()
                .and_then(super::markers::parse_marker),
            unread: reply.number("unread")?,
        })
    } else {
        None
    };
    let limit = read.limit();
    let more = entries.len() > limit;
    entries.truncate(limit);
    if !matches!(read, Read::After { .. }) {
        // Backwards reads come newest first.
        entries.reverse();
    }
    Ok(Page {
        position,
        entries,
        more,
        reader,
    })
}

/// One Stream entry: `[id, [field, value, ...]]`, id `<seq>-0`, envelope in `m`.
fn entry(value: Value) -> Result<Stored, BackplaneError> {
    let mut entry = Reply::new("read", value)?;
    let id = entry.bytes("entry id")?;
    let seq = std::str::from_utf8(&id)
        .ok()
        .and_then(|id| id.strip_suffix("-0"))
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(|| entry.bad("entry id"))?;
    let mut fields = entry.array("entry fields")?.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if text_of(&name) == Some(b"m") {
            let payload = bytes_of(value).ok_or_else(|| entry.bad("entry payload"))?;
            return Ok(Stored {
                seq,
                payload,
                overlay: None,
            });
        }
    }
    Err(entry.bad("entry payload"))
}

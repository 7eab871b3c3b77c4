//! Full-text search over the archive: PostgreSQL's text search (the
//! configured language), ranked, with highlighted snippets, only in rooms
//! the caller may read, never finding deleted messages, and finding edited
//! ones by their current text. The query is the user's text as web search
//! engines take it (`websearch_to_tsquery`: words, "quoted phrases", `or`,
//! `-word`), so no input is a syntax error, and every value travels as a
//! statement parameter.

use chorus_protocol::ChatMessage;

use crate::{Archive, ArchiveError};

/// Most hits in one page.
pub const MAX_LIMIT: usize = 100;
/// Furthest a page may start (deeper paging: narrow the query).
pub const MAX_OFFSET: usize = 1_000;

/// Marks a highlighted word's start and end in PostgreSQL's headline
/// (private-use characters: they cannot be confused with message text,
/// which is split on them into [`Fragment`]s).
const START: char = '\u{E000}';
const STOP: char = '\u{E001}';

/// What to search for, and where the caller may look.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// The user's query text.
    pub text: String,
    /// The caller's user id: their direct-message rooms are searched too
    /// (none: every direct-message room, for the server API).
    pub user: Option<String>,
    /// Room patterns the caller may read (`*` matches any run of characters,
    /// `?` any one),
    /// never opening a direct-message room.
    pub readable: Vec<String>,
    /// Only these rooms, when given (still within what the caller may read).
    pub rooms: Option<Vec<String>>,
    /// Hits per page (1 to [`MAX_LIMIT`]).
    pub limit: usize,
    /// Hits to skip (at most [`MAX_OFFSET`]).
    pub offset: usize,
}

/// A piece of a snippet: text, highlighted when it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The text (plain: to be shown as text, never as HTML).
    pub text: String,
    /// Whether it is a matched word.
    pub hit: bool,
}

/// One message found.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The message in its current state.
    pub message: ChatMessage,
    /// The room's epoch when it was stored.
    pub epoch: u64,
    /// Where the query matched, in context.
    pub snippet: Vec<Fragment>,
    /// How well it matched (higher is better).
    pub rank: f32,
}

/// A `LIKE` pattern matching what `pattern` (with `*`) matches, nothing else.
pub(crate) fn like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Splits a headline at the markers into plain and highlighted pieces.
fn fragments(headline: &str) -> Vec<Fragment> {
    let mut out = Vec::new();
    let mut hit = false;
    for (i, piece) in headline.split([START, STOP]).enumerate() {
        if i > 0 {
            hit = !hit;
        }
        if !piece.is_empty() {
            out.push(Fragment {
                text: piece.to_owned(),
                hit,
            });
        }
    }
    out
}

impl Archive {
    /// The page of messages matching `query`, best first, and whether more follow.
    pub async fn search(&self, query: &SearchQuery) -> Result<(Vec<Hit>, bool), ArchiveError> {
        let readable: Vec<String> = query.readable.iter().map(|p| like(p)).collect();
        let direct = match &query.user {
            Some(user) => {
                let user = like(user);
                vec![format!("dm:{user}+%"), format!("dm:%+{user}")]
            }
            None => vec!["dm:%".to_owned()],
        };
        let wanted = query.limit.clamp(1, MAX_LIMIT);
        // One more than wanted says whether more follow.
        let limit = wanted as i64 + 1;
        let offset = query.offset.min(MAX_OFFSET) as i64;
        let options = format!(
            "StartSel={START}, StopSel={STOP}, MaxWords=24, MinWords=8, MaxFragments=2, FragmentDelimiter=\" … \""
        );
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT message, epoch, seq, \
                        ts_headline($1::text::regconfig, message->>'body', q, $8), \
                        ts_rank(search, q) AS rank \
                 FROM chorus_messages, websearch_to_tsquery($1::text::regconfig, $2) AS q \
                 WHERE search @@ q AND NOT deleted \
                   AND ((room NOT LIKE 'dm:%' AND room LIKE ANY($3)) OR room LIKE ANY($4)) \
                   AND ($5::text[] IS NULL OR room = ANY($5)) \
                 ORDER BY rank DESC, ts DESC, id \
                 LIMIT $6 OFFSET $7",
                &[
                    &self.language,
                    &query.text,
                    &readable,
                    &direct,
                    &query.rooms,
                    &limit,
                    &offset,
                    &options,
                ],
            )
            .await?;
        let more = rows.len() > wanted;
        let hits = rows
            .iter()
            .take(wanted)
            .map(|row| {
                let seq = row.get::<_, i64>(2) as u64;
                let mut message: ChatMessage =
                    serde_json::from_value(row.get(0)).map_err(|e| ArchiveError::Entry {
                        seq,
                        why: format!("archived message does not decode: {e}"),
                    })?;
                let epoch = row.get::<_, i64>(1) as u64;
                (message.seq, message.epoch) = (seq, Some(epoch));
                Ok(Hit {
                    message,
                    epoch,
                    snippet: fragments(row.get(3)),
                    rank: row.get(4),
                })
            })
            .collect::<Result<Vec<_>, ArchiveError>>()?;
        Ok((hits, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_only_what_they_say() {
        assert_eq!(like("team-42.*"), "team-42.%");
        assert_eq!(like("100%_off\\"), "100\\%\\_off\\\\");
    }

    #[test]
    fn a_headline_splits_into_plain_and_matched_pieces() {
        let headline = format!("the {START}quick{STOP} fox {START}jumps{STOP}");
        let pieces: Vec<(String, bool)> = fragments(&headline)
            .into_iter()
            .map(|f| (f.text, f.hit))
            .collect();
        assert_eq!(
            pieces,
            [
                ("the ", false),
                ("quick", true),
                (" fox ", false),
                ("jumps", true)
            ]
            .map(|(t, h)| (t.to_owned(), h))
        );
    }
}

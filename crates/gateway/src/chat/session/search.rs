//! `search` on a session: full-text search of the archive in the rooms the
//! connection's token may read, rate-limited like `history`.

use chorus_protocol::{ErrorCode, ServerEvent, commands};

use super::{Handled, Limited, Refusal, Session};
use crate::chat::search::{SearchError, Searcher};

impl Session {
    pub(super) async fn search(
        &mut self,
        search: commands::Search,
        reference: Option<&str>,
    ) -> Handled {
        self.take(Limited::Join)?;
        let authed = self
            .authed
            .as_ref()
            .expect("commands past auth have a user");
        let searcher = Searcher::User {
            id: &authed.identity.user.id,
            grants: &authed.identity.grants,
        };
        let found = self.chat.search(searcher, &search).await.map_err(refusal)?;
        self.reply(&ServerEvent::Search {
            q: &search.q,
            hits: &found.hits,
            more: found.more,
            reference,
        });
        Ok(())
    }
}

fn refusal(error: SearchError) -> Refusal {
    let code = match error {
        SearchError::Forbidden(_) => ErrorCode::Forbidden,
        SearchError::Unavailable | SearchError::NoArchive => ErrorCode::ArchiveUnavailable,
    };
    Refusal::new(code, error.to_string())
}

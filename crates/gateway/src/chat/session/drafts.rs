//! Drafts: a user's unsent text per room, saved server-side (bounded), synced
//! live to the user's other connections and listed for a new device.

use chorus_protocol::{ErrorCode, NoticeKind, SavedDraft, ServerEvent, commands};

use super::{Handled, Refusal, Session};

/// Most rooms one user keeps a draft for.
pub const MAX_DRAFTS: usize = 100;

impl Session {
    pub(super) async fn save_draft(
        &mut self,
        draft: commands::Draft,
        reference: Option<&str>,
    ) -> Handled {
        let room = draft.room;
        self.may_post(&room)?;
        self.check_text(&draft.text, "draft", None)?;
        let user = self.user().id.clone();
        let users = &self.chat.backplane().users;
        if !users
            .save_draft(&user, &room, &draft.text, MAX_DRAFTS)
            .await?
        {
            let message =
                format!("you keep drafts for {MAX_DRAFTS} rooms already; send or clear one");
            return Err(Refusal::new(ErrorCode::TooManyDrafts, message));
        }
        self.reply(&ServerEvent::DraftSaved {
            room: &room,
            reference,
        });
        self.notice_self(&room, NoticeKind::Draft(draft.text)).await;
        Ok(())
    }

    pub(super) async fn list_drafts(&mut self, reference: Option<&str>) -> Handled {
        let user = &self.user().id;
        let drafts: Vec<SavedDraft> = self
            .chat
            .backplane()
            .users
            .drafts(user)
            .await?
            .into_iter()
            .map(|(room, text)| SavedDraft { room, text })
            .collect();
        self.reply(&ServerEvent::Drafts {
            drafts: &drafts,
            reference,
        });
        Ok(())
    }
}

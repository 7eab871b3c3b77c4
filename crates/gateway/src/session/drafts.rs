//! Drafts: a user's unsent text per room, saved server-side (bounded), synced
//! live to the user's other connections and listed for a new device.

use chorus_protocol::{ErrorCode, NoticeKind, RoomName, SavedDraft, ServerEvent};

use super::Session;

/// Most rooms one user keeps a draft for.
pub const MAX_DRAFTS: usize = 100;

impl Session {
    pub(super) async fn save_draft(
        &mut self,
        room: RoomName,
        text: String,
        reference: Option<String>,
    ) {
        let Some(user) = self.authed.as_ref().map(|a| a.identity.user.id.clone()) else {
            return;
        };
        if !self.may_post(&room, &reference) {
            return;
        }
        let max = self.node.config.max_body_bytes;
        if text.len() > max {
            let message = format!("draft is {} bytes; the limit is {max}", text.len());
            return self.error(ErrorCode::BodyTooLarge, message, reference, Some(&room));
        }
        match self
            .node
            .backplane
            .save_draft(&user, &room, &text, MAX_DRAFTS)
            .await
        {
            Ok(true) => {
                self.reply(&ServerEvent::DraftSaved {
                    room: &room,
                    reference: reference.as_deref(),
                });
                self.notice_self(&room, NoticeKind::Draft(text)).await;
            }
            Ok(false) => self.error(
                ErrorCode::TooManyDrafts,
                format!("you keep drafts for {MAX_DRAFTS} rooms already; send or clear one"),
                reference,
                Some(&room),
            ),
            Err(error) => self.error(
                ErrorCode::BackplaneUnavailable,
                format!("draft not saved: {error}"),
                reference,
                Some(&room),
            ),
        }
    }

    pub(super) async fn list_drafts(&mut self, reference: Option<String>) {
        let Some(user) = self.authed.as_ref().map(|a| a.identity.user.id.clone()) else {
            return;
        };
        match self.node.backplane.drafts(&user).await {
            Ok(drafts) => {
                let drafts: Vec<SavedDraft> = drafts
                    .into_iter()
                    .map(|(room, text)| SavedDraft { room, text })
                    .collect();
                self.reply(&ServerEvent::Drafts {
                    drafts: &drafts,
                    reference: reference.as_deref(),
                });
            }
            Err(error) => self.error(
                ErrorCode::BackplaneUnavailable,
                format!("drafts not read: {error}"),
                reference,
                None,
            ),
        }
    }
}

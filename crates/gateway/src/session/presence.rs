//! Presence of a session's user in its rooms: counted in on a join, out on a
//! leave, a lost room or the close; and the `presence` query.

use chorus_protocol::{Envelope, EnvelopeBody, ErrorCode, Present, RoomName, Sender, ServerEvent};

use super::Session;
use crate::presence;

/// Most users one `members` answer lists (`total` says how many are present).
pub const MEMBERS_MAX: usize = 1000;

impl Session {
    /// After a successful join: the user's first local connection in the room
    /// makes them present (awaited, so the join precedes a later leave).
    pub(super) async fn presence_enter(&self, room: &RoomName) {
        let Some(user) = self.authed.as_ref().map(|a| &a.identity.user) else {
            return;
        };
        if !self.node.presence.enter(room, user) {
            return;
        }
        let node_id = self.node.config.node_id.as_str();
        let entry = presence::entry(node_id, room, user);
        let ttl = self.node.config.ops.presence_ttl;
        let up = self
            .node
            .backplane
            .presence_up(room, node_id, vec![entry], ttl);
        if let Err(error) = up.await {
            // The next refresh tries again.
            tracing::debug!(%error, %room, "presence not recorded");
        }
    }

    /// After leaving `room` (any way): the user's last local connection in it
    /// ends their presence here. Not awaited: it may run from `close`.
    pub(super) fn presence_exit(&self, room: &RoomName) {
        let Some(user) = self.authed.as_ref().map(|a| a.identity.user.id.clone()) else {
            return;
        };
        if !self.node.presence.exit(room, &user) {
            return;
        }
        let node = self.node.clone();
        let room = room.clone();
        tokio::spawn(async move {
            let node_id = node.config.node_id.as_str();
            let down = node.backplane.presence_down(&room, node_id, vec![user]);
            if let Err(error) = down.await {
                // The entry expires by itself after the presence TTL.
                tracing::debug!(%error, %room, "presence not ended");
            }
        });
    }

    pub(super) async fn list_presence(&mut self, room: RoomName, reference: Option<String>) {
        if !self.in_room(&room, "asking who is in it", &reference) {
            return;
        }
        let listed = self.node.backplane.presence_list(&room, MEMBERS_MAX).await;
        let (total, signals) = match listed {
            Ok(listed) => listed,
            Err(error) => {
                let message = format!("could not read who is here: {error}");
                let code = ErrorCode::BackplaneUnavailable;
                return self.error(code, message, reference, Some(&room));
            }
        };
        let mut members: Vec<Sender> = signals
            .iter()
            .filter_map(|bytes| match Envelope::decode(bytes) {
                Ok(Envelope {
                    body: EnvelopeBody::Presence(signal),
                    ..
                }) => Some(signal.user),
                _ => None,
            })
            .collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members.dedup_by(|a, b| a.id == b.id);
        let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
        // A status that cannot be read shows as online: presence is what matters.
        let statuses = match self.node.backplane.statuses(&ids).await {
            Ok(statuses) => statuses,
            Err(error) => {
                tracing::debug!(%error, %room, "statuses not read");
                vec![None; ids.len()]
            }
        };
        let members: Vec<Present> = members
            .into_iter()
            .zip(statuses)
            .map(|(user, status)| Present {
                user,
                status: status.unwrap_or_else(|| "online".into()),
            })
            .collect();
        self.reply(&ServerEvent::Members {
            room: &room,
            members: &members,
            total,
            reference: reference.as_deref(),
        });
    }
}

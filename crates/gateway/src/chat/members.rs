//! Who is in a room now, across the cluster, with their status: the
//! `presence` command's answer and the server API's.

use chorus_backplane::BackplaneError;
use chorus_protocol::{Envelope, EnvelopeBody, Present, RoomName, Sender};

use super::Chat;

/// Most users one answer lists (`total` says how many are present).
pub const MEMBERS_MAX: usize = 1000;

impl Chat {
    /// How many users are present in `room`, and at most [`MEMBERS_MAX`] of
    /// them by id, with their status.
    pub async fn members(&self, room: &RoomName) -> Result<(u64, Vec<Present>), BackplaneError> {
        let backplane = self.backplane();
        let (mut total, signals) = backplane.presence.list(room, MEMBERS_MAX).await?;
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
        // This node's users are present even before the presence task has
        // written their entries (a join does not wait for it).
        if members.len() < MEMBERS_MAX {
            for user in self.presence.users_in(room) {
                if let Err(at) = members.binary_search_by(|m| m.id.cmp(&user.id)) {
                    members.insert(at, user);
                    total += 1;
                }
            }
            members.truncate(MEMBERS_MAX);
        }
        let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
        // A status that cannot be read shows as online: presence is what matters.
        let statuses = match backplane.users.statuses(&ids).await {
            Ok(statuses) => statuses,
            Err(error) => {
                tracing::debug!(%error, %room, "statuses not read");
                vec![None; ids.len()]
            }
        };
        let members = members
            .into_iter()
            .zip(statuses)
            .map(|(user, status)| Present {
                user,
                status: status.unwrap_or_else(|| "online".into()),
            })
            .collect();
        Ok((total, members))
    }
}

//! Typing indicators of a session: relayed to the room as unstored signals,
//! throttled per connection and room, ended by a stop, a send, a leave or the
//! connection closing, and lapsing by themselves after `TYPING_EXPIRES`.

use chorus_protocol::{Envelope, RoomName, TypingSignal};
use tokio::time::Instant;

use super::Session;
use crate::hub::TYPING_EXPIRES;

/// At most one `start` per room and connection is relayed per this window;
/// clients repeat `start` while the user keeps typing (well within the expiry).
pub const TYPING_THROTTLE: std::time::Duration = std::time::Duration::from_secs(2);

impl Session {
    pub(super) async fn typing(&mut self, room: RoomName, active: bool, reference: Option<String>) {
        if !self.in_room(&room, "typing in it", &reference) || !self.may_post(&room, &reference) {
            return;
        }
        let now = Instant::now();
        let relay = if active {
            match self.typing.get(&room) {
                Some(last) if now.duration_since(*last) < TYPING_THROTTLE => false,
                _ => {
                    self.typing.insert(room.clone(), now);
                    true
                }
            }
        } else {
            // A stop only matters after a start that has not lapsed yet.
            self.typing
                .remove(&room)
                .is_some_and(|last| now.duration_since(last) < TYPING_EXPIRES)
        };
        // Awaited, so the signal keeps its place among this connection's
        // commands (a start before the send that ends it).
        if let Some(publish) = relay.then(|| self.typing_publish(room, active)).flatten() {
            publish.await;
        }
    }

    /// Ends this connection's typing in `room` (a send, a leave): others are told
    /// at once instead of waiting for the indicator to lapse.
    pub(super) fn stop_typing(&mut self, room: &RoomName) {
        let lapsed = |last: Instant| last.elapsed() >= TYPING_EXPIRES;
        if self.typing.remove(room).is_some_and(|last| !lapsed(last))
            && let Some(publish) = self.typing_publish(room.clone(), false)
        {
            tokio::spawn(publish);
        }
    }

    /// Publishing the signal. Typing is best effort: a failed relay only means
    /// the indicator lapses by itself.
    fn typing_publish(
        &self,
        room: RoomName,
        active: bool,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let authed = self.authed.as_ref()?;
        let envelope = Envelope::typing(
            self.node.config.node_id.clone(),
            TypingSignal {
                room: room.clone(),
                from: authed.identity.user.clone(),
                active,
            },
        );
        let backplane = self.node.backplane.clone();
        Some(async move {
            if let Err(error) = backplane.signal(&room, envelope.encode()).await {
                tracing::debug!(%error, %room, "typing signal not relayed");
            }
        })
    }
}

//! `typing`: relayed to the room as an unstored signal, throttled per
//! connection and room (see [`crate::chat::typing`]).

use chorus_protocol::commands;
use tokio::time::Instant;

use super::{Handled, Session};

impl Session {
    pub(super) async fn typing(&mut self, typing: commands::Typing) -> Handled {
        let room = typing.room;
        self.in_room(&room, "typing in it")?;
        self.may_post(&room)?;
        let user = self.user().clone();
        let now = Instant::now();
        let state = self.memberships.typing(&room).expect("in the room");
        let relay = if typing.active {
            state.start(now)
        } else {
            // A stop only matters after a start that has not lapsed yet.
            state.stop(now)
        };
        if relay {
            // Awaited, so the signal keeps its place among this connection's
            // commands (a start before the send that ends it).
            self.memberships
                .typing_signal(&room, &user, typing.active)
                .await;
        }
        Ok(())
    }
}

//! Typing indicators: never stored, relayed to the room as signals, throttled
//! per connection and room, and lapsing by themselves on the clients.

use bytes::Bytes;
use chorus_protocol::{Envelope, RoomName, Sender, ServerEvent, TypingSignal};
use tokio::time::Instant;

/// How long a typing start lasts unless repeated; clients are told in each event.
pub const TYPING_EXPIRES: std::time::Duration = std::time::Duration::from_secs(6);

/// At most one `start` per room and connection is relayed per this window;
/// clients repeat `start` while the user keeps typing (well within the expiry).
pub const TYPING_THROTTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// One connection's typing in one room: when its last start was relayed.
#[derive(Debug, Default)]
pub struct Typing(Option<Instant>);

impl Typing {
    /// A start: `true` when it should be relayed (the throttle window passed).
    pub fn start(&mut self, now: Instant) -> bool {
        match self.0 {
            Some(last) if now.duration_since(last) < TYPING_THROTTLE => false,
            _ => {
                self.0 = Some(now);
                true
            }
        }
    }

    /// A stop (asked for, or implied by a send or a leave): `true` when a start
    /// that has not lapsed yet should be ended for the others.
    pub fn stop(&mut self, now: Instant) -> bool {
        self.0
            .take()
            .is_some_and(|last| now.duration_since(last) < TYPING_EXPIRES)
    }

    /// Forgets the start without telling anyone (a sent message ends it on
    /// the clients when it arrives).
    pub fn forget(&mut self) {
        self.0 = None;
    }
}

/// The signal that `from` started (`active`) or stopped typing in `room`.
pub fn signal(node_id: &str, room: &RoomName, from: &Sender, active: bool) -> Bytes {
    let signal = TypingSignal {
        room: room.clone(),
        from: from.clone(),
        active,
    };
    Envelope::typing(node_id, signal).encode()
}

/// The event members get for a typing signal.
pub fn event(signal: &TypingSignal) -> ServerEvent<'_> {
    ServerEvent::Typing {
        room: &signal.room,
        user: &signal.from,
        state: if signal.active { "start" } else { "stop" },
        expires_in_ms: TYPING_EXPIRES.as_millis() as u64,
    }
}

//! What the backplane delivers into: numbered entries go to their room's
//! sequencer in the hub; signals are decoded once and handed to the module
//! they belong to (typing and receipts to the room's members, presence to the
//! batches, notices to their user's connections, the nodes' rooms' questions
//! and answers to the queries task).

use std::sync::Arc;

use bytes::Bytes;
use chorus_backplane::{Delivery, Inbound};
use chorus_protocol::{Envelope, EnvelopeBody, RoomName, ServerEvent};
use tokio::sync::mpsc;

use crate::{
    chat::{hub::Hub, notices::Notices, presence::PresenceBatches, typing},
    metrics::Metrics,
};

/// The node's [`Inbound`].
pub struct Inbox {
    /// Rooms and their sequenced fan-out.
    pub(super) hub: Arc<Hub>,
    /// Local connections by user.
    pub(super) notices: Arc<Notices>,
    /// Presence changes gathered per room.
    pub(super) presence: Arc<PresenceBatches>,
    /// Cluster questions and answers, for the queries task (dropped and
    /// counted when it falls behind: the asker names this node as missing).
    pub(super) queries: mpsc::Sender<Bytes>,
    /// Counts undecodable and dropped signals.
    pub(super) metrics: Metrics,
}

impl Inbound for Inbox {
    fn deliver(&self, room: &RoomName, delivery: Delivery) {
        self.hub.deliver(room, delivery);
    }

    fn signal(&self, room: &RoomName, payload: Bytes) {
        // Not counted in `backplane_received`: that counts room messages.
        if room.is_nodes_room() {
            if self.queries.try_send(payload).is_err() {
                self.metrics.signals_dropped.inc();
            }
            return;
        }
        let body = match Envelope::decode(&payload) {
            Ok(envelope) => envelope.body,
            Err(error) => {
                self.metrics.backplane_undecodable.inc();
                tracing::debug!(%error, %room, "dropping undecodable signal");
                return;
            }
        };
        match body {
            EnvelopeBody::Notice(notice) => self.notices.notify(&notice, &self.hub),
            // Typing is chatter: the first thing a slow member loses.
            EnvelopeBody::Typing(signal) => self.hub.with_members(room, |members| {
                let dropped = members.push_ephemeral(&typing::event(&signal));
                self.metrics.signals_dropped.inc_by(dropped);
            }),
            // Receipts and statuses are state: queued like messages.
            EnvelopeBody::Receipt(signal) => self.hub.with_members(room, |members| {
                members.push_state(&ServerEvent::Receipt {
                    room: &signal.room,
                    user: &signal.from,
                    seq: signal.seq,
                })
            }),
            EnvelopeBody::Status(signal) => self.hub.with_members(room, |members| {
                members.push_state(&ServerEvent::Status {
                    room: Some(&signal.room),
                    user: &signal.user,
                    status: &signal.status,
                })
            }),
            // Presence is state too, gathered for the room's next flush.
            EnvelopeBody::Presence(signal) => self.presence.gather(room, signal),
            EnvelopeBody::Message(_) | EnvelopeBody::Change(_) => {}
        }
    }
}

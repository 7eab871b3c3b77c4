//! Read markers of a session: `read` moves the user's marker in a room forward
//! (stored per user and room, relayed to the room as a receipt), `receipts`
//! lists a room's markers (a join's unread count comes with its history read).

use chorus_backplane::{Marked, Position};
use chorus_protocol::{
    Envelope, ErrorCode, NoticeKind, ReadMarker, ReceiptSignal, RoomName, ServerEvent,
};

use super::Session;

impl Session {
    pub(super) async fn mark_read(&mut self, room: RoomName, seq: u64, reference: Option<String>) {
        if !self.in_room(&room, "marking it read", &reference) {
            return;
        }
        let Some(authed) = &self.authed else {
            return;
        };
        let user = authed.identity.user.clone();
        let epoch = match self.room_epoch(&room).await {
            Ok(epoch) => epoch,
            Err(message) => {
                return self.error(
                    ErrorCode::BackplaneUnavailable,
                    message,
                    reference,
                    Some(&room),
                );
            }
        };
        let signal = Envelope::receipt(
            self.node.config.node_id.clone(),
            ReceiptSignal {
                room: room.clone(),
                from: user.clone(),
                seq,
            },
        )
        .encode();
        let mark = Position { epoch, seq };
        match self
            .node
            .backplane
            .mark_read(&room, &user.id, mark, signal)
            .await
        {
            Ok(Marked::Moved(seq)) => {
                self.reply(&ServerEvent::Marked {
                    room: &room,
                    seq,
                    reference: reference.as_deref(),
                });
                // The user's connections outside the room hear it too.
                self.notice_self(&room, NoticeKind::Read(seq)).await;
            }
            Ok(Marked::Unchanged(seq)) => self.reply(&ServerEvent::Marked {
                room: &room,
                seq,
                reference: reference.as_deref(),
            }),
            Ok(Marked::BeyondHead(head)) => self.error(
                ErrorCode::BeyondHead,
                format!(
                    "seq {seq} is past the room's last message ({})",
                    head.seq
                ),
                reference,
                Some(&room),
            ),
            Ok(Marked::OtherEpoch(_)) => self.error(
                ErrorCode::InvalidCommand,
                "the room's numbering restarted (see reset); mark a sequence number of the new epoch"
                    .into(),
                reference,
                Some(&room),
            ),
            Err(error) => self.error(
                ErrorCode::BackplaneUnavailable,
                format!("could not mark read: {error}"),
                reference,
                Some(&room),
            ),
        }
    }

    pub(super) async fn receipts(&mut self, room: RoomName, reference: Option<String>) {
        if !self.in_room(&room, "asking for its receipts", &reference) {
            return;
        }
        let (epoch, markers) = match tokio::try_join!(self.room_epoch(&room), async {
            self.node
                .backplane
                .read_markers(&room)
                .await
                .map_err(|e| format!("could not read receipts: {e}"))
        }) {
            Ok(found) => found,
            Err(message) => {
                return self.error(
                    ErrorCode::BackplaneUnavailable,
                    message,
                    reference,
                    Some(&room),
                );
            }
        };
        let receipts: Vec<ReadMarker> = markers
            .into_iter()
            .filter(|(_, at)| at.epoch == epoch)
            .map(|(user, at)| ReadMarker { user, seq: at.seq })
            .collect();
        self.reply(&ServerEvent::Receipts {
            room: &room,
            epoch,
            receipts: &receipts,
            reference: reference.as_deref(),
        });
    }

    /// The room's current epoch: as this node follows it, else from the backplane.
    async fn room_epoch(&self, room: &RoomName) -> Result<u64, String> {
        if let Some(position) = self.node.hub.position(room) {
            return Ok(position.epoch);
        }
        match self
            .node
            .backplane
            .positions(std::slice::from_ref(room))
            .await
        {
            Ok(positions) => positions
                .first()
                .map(|p| p.epoch)
                .ok_or_else(|| "the room's position is unknown".to_owned()),
            Err(error) => Err(format!("could not read the room's position: {error}")),
        }
    }
}

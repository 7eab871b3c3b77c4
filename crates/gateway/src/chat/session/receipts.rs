//! Read markers of a session: `read` moves the user's marker in a room forward
//! (stored per user and room, relayed to the room as a receipt), `receipts`
//! lists a room's markers (a join's unread count comes with its history read).

use chorus_backplane::{Marked, Position};
use chorus_protocol::{
    Envelope, ErrorCode, NoticeKind, ReadMarker, ReceiptSignal, RoomName, ServerEvent, commands,
};

use super::{Handled, Refusal, Session};

impl Session {
    pub(super) async fn mark_read(
        &mut self,
        read: commands::Read,
        reference: Option<&str>,
    ) -> Handled {
        let (room, seq) = (read.room, read.seq);
        self.in_room(&room, "marking it read")?;
        let user = self.user().clone();
        let epoch = self.room_epoch(&room).await?;
        let signal = Envelope::receipt(
            self.chat.config().node_id.clone(),
            ReceiptSignal {
                room: room.clone(),
                from: user.clone(),
                seq,
            },
        )
        .encode();
        let mark = Position { epoch, seq };
        let markers = &self.chat.backplane().markers;
        let marked = match markers.mark(&room, &user.id, mark, signal).await? {
            Marked::Moved(seq) => {
                // The user's connections outside the room hear it too.
                self.notice_self(&room, NoticeKind::Read(seq)).await;
                seq
            }
            Marked::Unchanged(seq) => seq,
            Marked::BeyondHead(head) => {
                let message = format!("seq {seq} is past the room's last message ({})", head.seq);
                return Err(Refusal::new(ErrorCode::BeyondHead, message));
            }
            Marked::OtherEpoch(_) => {
                let message = "the room's numbering restarted (see reset); mark a sequence number of the new epoch";
                return Err(Refusal::new(ErrorCode::InvalidCommand, message));
            }
        };
        self.reply(&ServerEvent::Marked {
            room: &room,
            seq: marked,
            reference,
        });
        Ok(())
    }

    pub(super) async fn receipts(
        &mut self,
        receipts: commands::Receipts,
        reference: Option<&str>,
    ) -> Handled {
        let room = receipts.room;
        self.in_room(&room, "asking for its receipts")?;
        let markers = self.chat.backplane().markers.markers(&room);
        let (epoch, markers) = tokio::try_join!(self.room_epoch(&room), async {
            markers.await.map_err(Refusal::from)
        })?;
        let receipts: Vec<ReadMarker> = markers
            .into_iter()
            .filter(|(_, at)| at.epoch == epoch)
            .map(|(user, at)| ReadMarker { user, seq: at.seq })
            .collect();
        self.reply(&ServerEvent::Receipts {
            room: &room,
            epoch,
            receipts: &receipts,
            reference,
        });
        Ok(())
    }

    /// The room's current epoch: as this node follows it, else from the backplane.
    async fn room_epoch(&self, room: &RoomName) -> Result<u64, Refusal> {
        if let Some(position) = self.chat.hub.position(room) {
            return Ok(position.epoch);
        }
        let log = &self.chat.backplane().log;
        let positions = log.positions(std::slice::from_ref(room)).await?;
        positions.first().map(|p| p.epoch).ok_or_else(|| {
            Refusal::new(
                ErrorCode::BackplaneUnavailable,
                "the room's position is unknown",
            )
        })
    }
}

//! Each room's ordered, bounded log: messages and the changes to them.

use async_trait::async_trait;
use chorus_protocol::RoomName;

use crate::{BackplaneError, Change, Changed, Outgoing, Page, Position, Published, Read};

/// The numbered history of every room.
///
/// Numbers start at 1 in each epoch; a new epoch (a larger number) means the
/// room's previous history was lost (it expired, or the store lost it).
#[async_trait]
pub trait RoomLog: Send + Sync + 'static {
    /// Stores `message` as `room`'s next entry and relays it to every node
    /// subscribed to `room` (this one included); or, when its dedup key was
    /// seen within the window, does nothing and returns the original acceptance.
    async fn publish(
        &self,
        room: &RoomName,
        message: Outgoing,
    ) -> Result<Published, BackplaneError>;
    /// Applies `change` to the message it targets and stores and relays the
    /// change as `room`'s next entry (see [`Change`]), in one atomic step.
    async fn change(&self, room: &RoomName, change: Change) -> Result<Changed, BackplaneError>;
    /// Reads a page of `room`'s history, with the room's current position.
    async fn read(&self, room: &RoomName, read: Read) -> Result<Page, BackplaneError>;
    /// Like [`RoomLog::read`], with `user`'s read marker and unread count
    /// ([`Page::reader`]) from the same instant.
    async fn read_as(
        &self,
        room: &RoomName,
        read: Read,
        user: &str,
    ) -> Result<Page, BackplaneError>;
    /// The current position of each room, in the order given.
    async fn positions(&self, rooms: &[RoomName]) -> Result<Vec<Position>, BackplaneError>;
    /// Records that the archive holds `room`'s entries up to `position`, so
    /// trimming may drop them (until then a log that keeps unarchived entries,
    /// [`crate::HistorySettings::unarchived_max`], keeps them). A log that
    /// trims regardless (the in-process one) ignores it.
    async fn archived(&self, room: &RoomName, position: Position) -> Result<(), BackplaneError> {
        let _ = (room, position);
        Ok(())
    }
}

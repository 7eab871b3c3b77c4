//! Acting on a user everywhere in the cluster (the server API): closing
//! their connections, revoking their tokens.

use chorus_backplane::{BackplaneError, Revocation};
use chorus_protocol::{Envelope, NoticeKind, RoomName, Sender, SenderKind, UserNotice, close};

use super::{Chat, publish::unix_millis};

impl Chat {
    /// Closes every connection of `user`, on every node, with close `code`.
    pub async fn disconnect(&self, user: &str, code: u16) -> Result<(), BackplaneError> {
        let shard = RoomName::user_shard(user);
        // A notice names a room; a disconnect is about none (and a user
        // shard's internal name does not decode as a room).
        let room = RoomName::parse("disconnect").expect("a valid room name");
        let notice = UserNotice {
            to: user.to_owned(),
            room,
            by: Sender {
                id: "server-api".into(),
                name: None,
                avatar: None,
                kind: Some(SenderKind::System),
            },
            kind: NoticeKind::Disconnect(code),
        };
        let payload = Envelope::notice(self.config.node_id.as_str(), notice).encode();
        self.backplane.pubsub.signal(&shard, payload).await
    }

    /// Refuses `user`'s tokens issued before `revocation.issued_before` until
    /// `revocation.until`, on every node, and closes their connections;
    /// `false` when the cluster holds as many revocations as it may.
    pub async fn revoke(&self, user: &str, revocation: Revocation) -> Result<bool, BackplaneError> {
        let users = &self.backplane.users;
        if !users.revoke(user, revocation, unix_millis()).await? {
            return Ok(false);
        }
        self.revocations.record(user, revocation);
        self.disconnect(user, close::TOKEN_REVOKED).await?;
        Ok(true)
    }
}

//! What leaves the archive: messages past their room's retention
//! (`--archive-retention`, swept by one node now and then) and a user's
//! messages erased on request (the server API). Both delete rows in bounded
//! batches; the rooms' positions stay, so nothing is archived again.

use uuid::Uuid;

use crate::{Archive, ArchiveError, RetentionRule};

/// Rows deleted per statement (a sweep repeats until none are left).
const DELETE_BATCH: i64 = 5_000;

/// One of a user's archived messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its room.
    pub room: String,
    /// Its sequence number in the room's epoch.
    pub seq: u64,
    /// Its id.
    pub id: Uuid,
}

impl Archive {
    /// Deletes the messages of rooms past their rule's retention at `now_ms`
    /// (each room by the first rule matching it); returns how many went.
    pub async fn expire(&self, rules: &[RetentionRule], now_ms: u64) -> Result<u64, ArchiveError> {
        let client = self.pool.get().await?;
        let mut deleted = 0;
        for (i, rule) in rules.iter().enumerate() {
            let earlier: Vec<String> = rules[..i]
                .iter()
                .map(|r| crate::search::like(&r.pattern))
                .collect();
            let pattern = crate::search::like(&rule.pattern);
            let cutoff = now_ms.saturating_sub(rule.keep.as_millis() as u64) as i64;
            loop {
                let n = client
                    .execute(
                        "DELETE FROM chorus_messages WHERE ctid IN ( \
                           SELECT ctid FROM chorus_messages \
                           WHERE ts < $1 AND room LIKE $2 AND NOT (room LIKE ANY($3)) LIMIT $4)",
                        &[&cutoff, &pattern, &earlier, &DELETE_BATCH],
                    )
                    .await?;
                deleted += n;
                if n < DELETE_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Up to `limit` of `user`'s archived messages, oldest first.
    pub async fn messages_of(&self, user: &str, limit: usize) -> Result<Vec<Sent>, ArchiveError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT room, seq, id FROM chorus_messages WHERE sender = $1 ORDER BY ts, id LIMIT $2",
                &[&user, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Sent {
                room: row.get(0),
                seq: row.get::<_, i64>(1) as u64,
                id: row.get(2),
            })
            .collect())
    }

    /// Deletes the messages with these ids; returns how many there were.
    pub async fn erase(&self, ids: &[Uuid]) -> Result<u64, ArchiveError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute("DELETE FROM chorus_messages WHERE id = ANY($1)", &[&ids])
            .await?)
    }
}

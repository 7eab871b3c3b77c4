//! User statuses in Redis: `<prefix>:user:{<user>}:status`, `online` or
//! `away`, expiring like a room's state.

use fred::{clients::Client, interfaces::KeysInterface, types::Expiration};

use super::log::unavailable;
use crate::{BackplaneError, ChannelNames};

/// Most statuses read in one round trip.
const BATCH: usize = 256;

/// Key naming and lifetime of statuses.
pub(super) struct Statuses {
    /// Key naming.
    names: ChannelNames,
    /// A status nobody sets again for this long is forgotten.
    ttl: std::time::Duration,
}

impl Statuses {
    pub(super) fn new(names: ChannelNames, ttl: std::time::Duration) -> Self {
        Self { names, ttl }
    }

    pub(super) async fn set(
        &self,
        client: &Client,
        user: &str,
        status: &str,
    ) -> Result<(), BackplaneError> {
        let expiry = Expiration::PX(self.ttl.as_millis().max(1) as i64);
        let _: () = client
            .set(
                self.names.user_key(user, "status"),
                status,
                Some(expiry),
                None,
                false,
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn get(
        &self,
        client: &Client,
        users: &[String],
    ) -> Result<Vec<Option<String>>, BackplaneError> {
        let mut statuses = Vec::with_capacity(users.len());
        for batch in users.chunks(BATCH) {
            let keys: Vec<String> = batch
                .iter()
                .map(|user| self.names.user_key(user, "status"))
                .collect();
            let answers: Vec<Option<String>> = client.mget(keys).await.map_err(unavailable)?;
            statuses.extend(answers);
        }
        Ok(statuses)
    }
}

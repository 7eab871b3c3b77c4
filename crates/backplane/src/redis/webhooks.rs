//! The webhook queue on Redis, every key under one hash tag (one slot, so it
//! works the same on a Redis Cluster): `<prefix>:{webhooks}:events:<p>` (a
//! Stream per partition: `e` the event, `o` the one endpoint of a replayed
//! dead letter), `...:lease:<p>` (the node delivering the partition, with a
//! TTL), `...:cursors` (hash `<endpoint>/<p>` -> last delivered id, written
//! only by the lease holder) and `...:dead:<endpoint>` (a list, bounded).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::{
    clients::Client,
    interfaces::{HashesInterface, ListInterface},
    prelude::Value,
};

use super::reply::{OpScript, WhenFull, array, bytes_of, failed, millis, number};
use crate::{
    BackplaneError,
    webhooks::{DEAD_LETTERS_MAX, QueuedEvent, WEBHOOK_QUEUE_MAX, WebhookQueue},
};

/// Most events [`WebhookQueue::behind`] counts.
const LAG_COUNT_MAX: usize = 10_000;

const APPEND: &str = "
local fields = {'e', ARGV[1]}
if ARGV[2] ~= '' then fields[3] = 'o'; fields[4] = ARGV[2] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))";

const LEASE: &str = "
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1";

const READ: &str = "
local out = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])) do
  local e, o, f = '', '', entry[2]
  for i = 1, #f, 2 do
    if f[i] == 'e' then e = f[i + 1] elseif f[i] == 'o' then o = f[i + 1] end
  end
  out[#out + 1] = entry[1]; out[#out + 1] = e; out[#out + 1] = o
end
return out";

const ADVANCE: &str = "
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1";

const BURY: &str = "
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return 1";

const BEHIND: &str = "
return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])";

/// The webhook queue on Redis.
pub(super) struct RedisHooks {
    /// The connection commands go through.
    client: Client,
    /// `<prefix>:{webhooks}` (or `{archive}`).
    base: String,
    /// One script per operation that needs one.
    scripts: Scripts,
}

struct Scripts {
    append: OpScript,
    lease: OpScript,
    read: OpScript,
    advance: OpScript,
    bury: OpScript,
    behind: OpScript,
}

impl RedisHooks {
    /// The queue under `<prefix>:{<namespace>}` (`webhooks`, `archive`).
    pub(super) fn new(client: Client, prefix: &str, namespace: &str) -> Self {
        Self {
            client,
            base: format!("{prefix}:{{{namespace}}}"),
            scripts: Scripts {
                append: OpScript::new("webhook_append", WhenFull::Refuse, APPEND),
                lease: OpScript::new("webhook_lease", WhenFull::Run, LEASE),
                read: OpScript::new("webhook_read", WhenFull::Run, READ),
                advance: OpScript::new("webhook_advance", WhenFull::Run, ADVANCE),
                bury: OpScript::new("webhook_bury", WhenFull::Run, BURY),
                behind: OpScript::new("webhook_behind", WhenFull::Run, BEHIND),
            },
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.base)
    }
}

fn text(value: Value) -> String {
    bytes_of(value)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[async_trait]
impl WebhookQueue for RedisHooks {
    async fn append(
        &self,
        partition: u32,
        event: Bytes,
        only: Option<&str>,
    ) -> Result<(), BackplaneError> {
        let keys = vec![self.key(&format!("events:{partition}"))];
        let args: Vec<Value> = vec![
            Value::Bytes(event),
            only.unwrap_or("").into(),
            WEBHOOK_QUEUE_MAX.to_string().into(),
        ];
        self.scripts.append.call(&self.client, keys, args).await?;
        Ok(())
    }

    async fn lease(
        &self,
        partition: u32,
        node: &str,
        ttl: Duration,
    ) -> Result<bool, BackplaneError> {
        let keys = vec![self.key(&format!("lease:{partition}"))];
        let args: Vec<Value> = vec![node.into(), millis(ttl).into()];
        let answer = self.scripts.lease.call(&self.client, keys, args).await?;
        Ok(number(&answer) == Some(1))
    }

    async fn read(
        &self,
        partition: u32,
        after: &str,
        count: usize,
    ) -> Result<Vec<QueuedEvent>, BackplaneError> {
        let keys = vec![self.key(&format!("events:{partition}"))];
        let args: Vec<Value> = vec![after.into(), count.to_string().into()];
        let answer = self.scripts.read.call(&self.client, keys, args).await?;
        let mut values = array("webhook_read", answer)?.into_iter();
        let mut events = Vec::new();
        while let (Some(id), Some(event), Some(only)) =
            (values.next(), values.next(), values.next())
        {
            let only = text(only);
            events.push(QueuedEvent {
                id: text(id),
                event: bytes_of(event).unwrap_or_default(),
                only: (!only.is_empty()).then_some(only),
            });
        }
        Ok(events)
    }

    async fn cursor(&self, partition: u32, endpoint: &str) -> Result<String, BackplaneError> {
        let cursor: Option<String> = self
            .client
            .hget(self.key("cursors"), format!("{endpoint}/{partition}"))
            .await
            .map_err(failed("webhook_cursor"))?;
        Ok(cursor.unwrap_or_else(|| "0".into()))
    }

    async fn advance(
        &self,
        partition: u32,
        endpoint: &str,
        (node, id): (&str, &str),
    ) -> Result<bool, BackplaneError> {
        let keys = vec![self.key(&format!("lease:{partition}")), self.key("cursors")];
        let args: Vec<Value> = vec![
            node.into(),
            format!("{endpoint}/{partition}").into(),
            id.into(),
        ];
        let answer = self.scripts.advance.call(&self.client, keys, args).await?;
        Ok(number(&answer) == Some(1))
    }

    async fn bury(&self, endpoint: &str, event: Bytes) -> Result<(), BackplaneError> {
        let keys = vec![self.key(&format!("dead:{endpoint}"))];
        let args: Vec<Value> = vec![Value::Bytes(event), DEAD_LETTERS_MAX.to_string().into()];
        self.scripts.bury.call(&self.client, keys, args).await?;
        Ok(())
    }

    async fn dead_letters(&self, endpoint: &str, max: usize) -> Result<Vec<Bytes>, BackplaneError> {
        let last = i64::try_from(max).unwrap_or(i64::MAX) - 1;
        let letters: Vec<Bytes> = self
            .client
            .lrange(self.key(&format!("dead:{endpoint}")), 0, last)
            .await
            .map_err(failed("webhook_dead_letters"))?;
        Ok(letters)
    }

    async fn exhume(&self, endpoint: &str, max: usize) -> Result<Vec<Bytes>, BackplaneError> {
        let letters: Value = self
            .client
            .lpop(self.key(&format!("dead:{endpoint}")), Some(max))
            .await
            .map_err(failed("webhook_exhume"))?;
        Ok(array("webhook_exhume", letters)?
            .into_iter()
            .filter_map(bytes_of)
            .collect())
    }

    async fn behind(&self, partition: u32, after: &str) -> Result<u64, BackplaneError> {
        let keys = vec![self.key(&format!("events:{partition}"))];
        let args: Vec<Value> = vec![after.into(), LAG_COUNT_MAX.to_string().into()];
        let answer = self.scripts.behind.call(&self.client, keys, args).await?;
        Ok(number(&answer).unwrap_or(0))
    }
}

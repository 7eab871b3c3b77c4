//! The archive's database: a bounded pool of connections, the schema
//! (migrations embedded in the binary, run by one node at a time), appending
//! a room's log entries exactly once, and paging back through them.

use std::time::Duration;

use chorus_protocol::ChatMessage;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Transaction;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{
    ArchiveError,
    entry::{self, Entry, EntryBody},
};

refinery::embed_migrations!("migrations");

/// Any number, the same on every node: taken while migrating.
const MIGRATION_LOCK: i64 = 0x6368_6f72_7573;

/// How to reach the database.
#[derive(Clone)]
pub struct ArchiveSettings {
    /// `postgres://user:password@host:port/database` (never logged: it may hold a password).
    pub url: String,
    /// Most connections open at once.
    pub pool_size: usize,
    /// The text search configuration (`english`, `simple`, `german` ...).
    pub language: String,
    /// Longest wait for a connection, new or from the pool.
    pub connect_timeout: Duration,
    /// CA certificates (PEM) the database's certificate must chain to, when
    /// it uses TLS (`sslmode=require` in the URL); the system's roots
    /// without it.
    pub ca_file: Option<std::path::PathBuf>,
    /// Most entries per room Redis keeps for the archive past its history
    /// bounds while the archive is behind (past it they are trimmed and
    /// counted as lost).
    pub unarchived_max: u64,
    /// How long messages are kept, per room pattern (none: for ever).
    pub retention: Vec<crate::RetentionRule>,
    /// How often one node sweeps out what is past its retention.
    pub retention_every: Duration,
}

impl ArchiveSettings {
    /// Settings for the database at `url`, the rest as the flags' defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 8,
            language: "english".into(),
            connect_timeout: Duration::from_secs(5),
            ca_file: None,
            unarchived_max: 100_000,
            retention: Vec::new(),
            retention_every: Duration::from_secs(600),
        }
    }
}

impl std::fmt::Debug for ArchiveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveSettings")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("language", &self.language)
            .field("connect_timeout", &self.connect_timeout)
            .field("ca_file", &self.ca_file)
            .field("unarchived_max", &self.unarchived_max)
            .field("retention", &self.retention)
            .field("retention_every", &self.retention_every)
            .finish()
    }
}

/// What one append did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Entries written (messages inserted, changes applied).
    pub written: u64,
    /// Entries already archived (a retry, or another writer's), left alone.
    pub skipped: u64,
    /// Entries missing between the archive's position and these (gone from
    /// Redis before they were archived).
    pub lost: u64,
}

/// The archive: PostgreSQL through a bounded pool.
#[derive(Clone)]
pub struct Archive {
    /// The connections.
    pub(crate) pool: Pool,
    /// The text search configuration for new rows and queries.
    pub(crate) language: String,
    /// What the archive counts (registered by the node).
    pub(crate) metrics: crate::ArchiveMetrics,
}

impl Archive {
    /// A pool for `settings` (connections are opened when first needed).
    pub fn new(settings: &ArchiveSettings) -> Result<Self, ArchiveError> {
        let mut config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| ArchiveError::Url(e.to_string()))?;
        config.connect_timeout(settings.connect_timeout);
        config.application_name("chorus");
        let manager = Manager::from_config(
            config,
            tls(settings.ca_file.as_deref())?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| ArchiveError::Url(e.to_string()))?;
        Ok(Self {
            pool,
            language: settings.language.clone(),
            metrics: crate::ArchiveMetrics::default(),
        })
    }

    /// What the archive counts.
    pub fn metrics(&self) -> &crate::ArchiveMetrics {
        &self.metrics
    }

    /// Brings the schema up to date (one node at a time: an advisory lock).
    pub async fn migrate(&self) -> Result<(), ArchiveError> {
        let mut client = self.pool.get().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let migrated = migrations::runner().run_async(&mut **client).await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        let report = migrated?;
        for migration in report.applied_migrations() {
            tracing::info!(migration = %migration, "archive schema migrated");
        }
        Ok(())
    }

    /// Where `room`'s archive stands: its epoch and last entry archived.
    pub async fn position(&self, room: &str) -> Result<Option<(u64, u64)>, ArchiveError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT epoch, seq FROM chorus_rooms WHERE room = $1",
                &[&room],
            )
            .await?;
        Ok(row.map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64)))
    }

    /// Appends `entries` (of `epoch`, in seq order) to `room`'s archive in
    /// one transaction: messages inserted, changes applied to their message,
    /// the room's position moved. Entries at or before the position are
    /// skipped, so a retry or a second writer never archives anything twice.
    pub async fn append(
        &self,
        room: &str,
        epoch: u64,
        entries: &[Entry],
    ) -> Result<Appended, ArchiveError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let epoch = epoch as i64;
        tx.execute(
            "INSERT INTO chorus_rooms (room, epoch, seq) VALUES ($1, $2, 0) ON CONFLICT (room) DO NOTHING",
            &[&room, &epoch],
        )
        .await?;
        let row = tx
            .query_one(
                "SELECT epoch, seq FROM chorus_rooms WHERE room = $1 FOR UPDATE",
                &[&room],
            )
            .await?;
        let (at_epoch, mut at) = (row.get::<_, i64>(0), row.get::<_, i64>(1));
        let mut done = Appended::default();
        if epoch < at_epoch {
            // An epoch the room has left: archived already, or lost with it.
            done.skipped = entries.len() as u64;
            return Ok(done);
        }
        if epoch > at_epoch {
            at = 0;
        }
        for entry in entries {
            let seq = entry.seq as i64;
            if seq <= at {
                done.skipped += 1;
                continue;
            }
            done.lost += (seq - at - 1) as u64;
            match &entry.body {
                EntryBody::Message(message) => self.put(&tx, epoch, message).await?,
                EntryBody::Change(change) => {
                    let target = change.target as i64;
                    let row = tx
                        .query_opt(
                            "SELECT message FROM chorus_messages WHERE room = $1 AND epoch = $2 AND seq = $3 FOR UPDATE",
                            &[&room, &epoch, &target],
                        )
                        .await?;
                    // A change to a message that was lost before archiving: nothing to apply it to.
                    if let Some(row) = row {
                        let mut message = from_json(row.get(0), entry.seq)?;
                        entry::apply(&mut message, change);
                        self.put(&tx, epoch, &message).await?;
                    }
                }
            }
            at = seq;
            done.written += 1;
        }
        tx.execute(
            "UPDATE chorus_rooms SET epoch = $2, seq = $3, lost = lost + $4, updated_at = now() WHERE room = $1",
            &[&room, &epoch, &at, &(done.lost as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Writes `message` in its current state: a new row, or the changed one.
    async fn put(
        &self,
        tx: &Transaction<'_>,
        epoch: i64,
        message: &ChatMessage,
    ) -> Result<(), ArchiveError> {
        let json = serde_json::to_value(message).expect("a message serializes");
        tx.execute(
            "INSERT INTO chorus_messages (room, epoch, seq, id, sender, ts, deleted, message, search) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_tsvector($9::text::regconfig, $10)) \
             ON CONFLICT (room, epoch, seq) DO UPDATE \
             SET deleted = EXCLUDED.deleted, message = EXCLUDED.message, search = EXCLUDED.search",
            &[
                &message.room.as_str(),
                &epoch,
                &(message.seq as i64),
                &message.id,
                &message.from.id,
                &(message.ts as i64),
                &message.deleted,
                &json,
                &self.language,
                &message.body,
            ],
        )
        .await?;
        Ok(())
    }

    /// Up to `limit` of `room`'s messages before `(epoch, seq)` (all of them
    /// without), oldest first, each with its epoch, and whether older ones remain.
    pub async fn page(
        &self,
        room: &str,
        before: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<(Vec<ChatMessage>, bool), ArchiveError> {
        let client = self.pool.get().await?;
        let (epoch, seq) = before.map_or((i64::MAX, i64::MAX), |(e, s)| (as_i64(e), as_i64(s)));
        let rows = client
            .query(
                "SELECT message, epoch, seq FROM chorus_messages \
                 WHERE room = $1 AND (epoch, seq) < ($2, $3) \
                 ORDER BY epoch DESC, seq DESC LIMIT $4",
                &[&room, &epoch, &seq, &(limit as i64 + 1)],
            )
            .await?;
        let more = rows.len() > limit;
        let mut messages = rows
            .iter()
            .take(limit)
            .map(|row| {
                let seq = row.get::<_, i64>(2) as u64;
                let mut message = from_json(row.get(0), seq)?;
                message.seq = seq;
                message.epoch = Some(row.get::<_, i64>(1) as u64);
                Ok(message)
            })
            .collect::<Result<Vec<_>, ArchiveError>>()?;
        messages.reverse();
        Ok((messages, more))
    }

    /// Up to `limit` of `room`'s messages after `(epoch, seq)` (from the
    /// first without), oldest first, each with its epoch: for exports.
    pub async fn after(
        &self,
        room: &str,
        after: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, ArchiveError> {
        let client = self.pool.get().await?;
        let (epoch, seq) = after.map_or((-1, -1), |(e, s)| (as_i64(e), as_i64(s)));
        let rows = client
            .query(
                "SELECT message, epoch, seq FROM chorus_messages \
                 WHERE room = $1 AND (epoch, seq) > ($2, $3) \
                 ORDER BY epoch, seq LIMIT $4",
                &[&room, &epoch, &seq, &(limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let seq = row.get::<_, i64>(2) as u64;
                let mut message = from_json(row.get(0), seq)?;
                (message.seq, message.epoch) = (seq, Some(row.get::<_, i64>(1) as u64));
                Ok(message)
            })
            .collect()
    }

    /// Where the message `id` of `room` is in the archive: its `(epoch, seq)`.
    pub async fn locate(
        &self,
        room: &str,
        id: uuid::Uuid,
    ) -> Result<Option<(u64, u64)>, ArchiveError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT epoch, seq FROM chorus_messages WHERE room = $1 AND id = $2",
                &[&room, &id],
            )
            .await?;
        Ok(row.map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64)))
    }
}

/// TLS for connections whose URL asks for it (`sslmode=prefer`, the
/// default, uses it when the server offers it; `require` insists): the
/// server's certificate must chain to the CAs of `ca_file`, or to the
/// system's roots, and name the host.
fn tls(ca_file: Option<&std::path::Path>) -> Result<MakeRustlsConnect, ArchiveError> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |e: String| ArchiveError::Tls(format!("{}: {e}", path.display()));
            for certificate in
                CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?
            {
                roots
                    .add(certificate.map_err(|e| bad(e.to_string()))?)
                    .map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("no certificate in it".into()));
            }
        }
        None => {
            for certificate in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot use is one the server cannot chain to.
                let _ = roots.add(certificate);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ArchiveError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A position as PostgreSQL's `bigint` (epochs and sequence numbers past its
/// range sort after every stored one).
fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_json(value: serde_json::Value, seq: u64) -> Result<ChatMessage, ArchiveError> {
    serde_json::from_value(value).map_err(|e| ArchiveError::Entry {
        seq,
        why: format!("archived message does not decode: {e}"),
    })
}

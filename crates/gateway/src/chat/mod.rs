//! The message path: everything between a client's WebSocket and the
//! backplane, and back.
//!
//! A command arrives on a [`connection`], which hands it to its [`session`];
//! the session checks it and acts through the [`Chat`] the node's connections
//! share: a `send` goes through [`publish`] to the backplane's room log. What
//! the backplane relays comes back into the [`inbox`]: numbered entries go to
//! the [`hub`], whose per-room [`sequencer`] passes each on once, in order,
//! into every local member's [`outbox`]; signals go to the members, the
//! [`notices`] of one user, or the [`presence`] batches. Gaps are filled by
//! [`repair`]; room subscriptions are counted by [`subscriptions`]; joining
//! and leaving is one lifecycle in [`membership`]. See docs/architecture.md
//! for the path of one message through these files.

use std::sync::Arc;

use chorus_backplane::{Backplane, BackplaneError};
use prometheus::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod archive_notes;
pub mod attachments;
pub mod change;
pub mod connection;
mod event_kinds;
pub mod events;
mod flusher;
mod frames;
pub mod history;
mod hub;
mod inbox;
mod members;
mod membership;
mod moderation;
mod notices;
mod outbox;
mod presence;
pub mod publish;
mod publish_hook;
pub mod queries;
mod repair;
pub mod revocations;
pub mod search;
mod sequencer;
mod session;
pub mod socket;
pub mod stream;
mod subscriptions;
mod typing;
mod users;

use crate::{
    auth::{AuthError, Identity},
    config::{BackplaneConfig, Config},
    metrics::Metrics,
};

/// What every connection of one node shares: the node's rooms and fan-out,
/// its backplane, its users. Built once by [`Chat::start`].
pub struct Chat {
    /// Validated configuration.
    config: Config,
    /// The node's metrics.
    metrics: Metrics,
    /// Rooms with local members and the sequenced fan-out into them.
    hub: Arc<hub::Hub>,
    /// Every part of the backplane.
    backplane: Backplane,
    /// Room subscription reference counts.
    subscriptions: subscriptions::Subscriptions,
    /// Local connections per room and user, for presence across the cluster.
    presence: Arc<presence::LocalPresence>,
    /// Local connections by user, for their notices.
    notices: Arc<notices::Notices>,
    /// Authenticated users here: per-user connection counts and rate buckets.
    users: Arc<users::Users>,
    /// Where webhook events go.
    events: events::EventQueue,
    /// Asked before a user's message is stored, when configured.
    publish_hook: Option<publish_hook::PublishHook>,
    /// Token revocations, refused by [`Self::verify`].
    revocations: Arc<revocations::Revocations>,
    /// Questions to every node (the server API's listings).
    queries: Arc<queries::Queries>,
    /// Describes the files a `send` attaches (set once the file store is up).
    attachments: std::sync::OnceLock<Arc<dyn attachments::AttachmentSource>>,
    /// Write the live frames the fan-out queues: one task per core, each
    /// with its share of the connections.
    flushers: Box<[Arc<flusher::Flusher>]>,
    /// Every message kept in PostgreSQL (`--database-url`): history past
    /// Redis, search, and the archiver's writes.
    archive: Option<chorus_archive::Archive>,
}

impl Chat {
    /// Connects the backplane and starts the message path's tasks (repairs,
    /// position checks, presence), which run until `stopped`.
    pub async fn start(
        config: Config,
        metrics: Metrics,
        stopped: CancellationToken,
    ) -> Result<Arc<Self>, BackplaneError> {
        let (repairs, repair_requests) = mpsc::unbounded_channel();
        let (statuses, status_changes) = mpsc::channel(presence::tasks::STATUS_QUEUE);
        let hub = Arc::new(hub::Hub::new(metrics.clone(), repairs));
        let notices = Arc::new(notices::Notices::new(
            config.auth.policy.clone(),
            statuses,
            metrics.clone(),
        ));
        let batches = Arc::new(presence::PresenceBatches::default());
        let (questions, questions_inbox) = queries::Queries::inbox();
        let inbox = Arc::new(inbox::Inbox {
            hub: hub.clone(),
            notices: notices.clone(),
            presence: batches.clone(),
            queries: questions,
            metrics: metrics.clone(),
        });
        let backplane = connect(&config, inbox, &metrics.registry).await?;
        repair::start(
            backplane.log.clone(),
            hub.clone(),
            repair_requests,
            config.history.position_check,
            stopped.clone(),
        );
        let (subscriptions, _owner) = subscriptions::Subscriptions::start(
            backplane.pubsub.clone(),
            config.unsubscribe_delay,
            metrics.clone(),
        );
        let events = events::EventQueue::new(config.webhooks.clone(), backplane.webhooks.clone());
        // The presence tasks' store: with member events when some endpoint wants them.
        let store: Arc<dyn chorus_backplane::PresenceStore> =
            match events.wanted("member.joined") || events.wanted("member.left") {
                true => Arc::new(events::MemberEvents {
                    store: backplane.presence.clone(),
                    events: events.clone(),
                }),
                false => backplane.presence.clone(),
            };
        let local = Arc::new(presence::LocalPresence::default());
        let node_id = config.node_id.clone();
        let ttl = config.ops.presence_ttl;
        presence::tasks::refresh(
            local.clone(),
            store.clone(),
            (node_id.clone(), ttl),
            stopped.clone(),
        );
        presence::tasks::record(
            local.clone(),
            store,
            (node_id.clone(), ttl),
            stopped.clone(),
        );
        presence::tasks::flush(batches, hub.clone(), stopped.clone());
        presence::tasks::relay_statuses(
            local.clone(),
            backplane.pubsub.clone(),
            node_id,
            (status_changes, stopped.clone()),
        );
        let publish_hook = config
            .publish_hook
            .clone()
            .map(|hook| publish_hook::PublishHook::new(hook, &metrics.registry));
        let queries = queries::Queries::start(
            queries::Parts {
                node_id: config.node_id.clone(),
                pubsub: backplane.pubsub.clone(),
                registry: backplane.registry.clone(),
                notices: notices.clone(),
                presence: local.clone(),
                hub: hub.clone(),
            },
            questions_inbox,
            stopped.clone(),
        );
        let revocations = Arc::new(revocations::Revocations::default());
        revocations::follow(
            revocations.clone(),
            backplane.users.clone(),
            stopped.clone(),
        );
        let users = users::Users::new(config.max_connections_per_user, config.rate_limits);
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let flushers = (0..cores)
            .map(|_| {
                let counts = (metrics.bytes_sent.clone(), metrics.delivery_latency.clone());
                flusher::Flusher::start(counts, stopped.clone())
            })
            .collect();
        let archive = config.archive.as_ref().and_then(|settings| {
            let archive = chorus_archive::Archive::new(settings)
                .inspect_err(|error| tracing::error!(%error, "the archive cannot be opened"))
                .ok()?;
            archive
                .metrics()
                .register(&metrics.registry)
                .expect("archive metric names are unique");
            Some(archive)
        });
        Ok(Arc::new(Self {
            config,
            metrics,
            hub,
            backplane,
            subscriptions,
            presence: local,
            notices,
            users,
            events,
            publish_hook,
            revocations,
            queries,
            attachments: std::sync::OnceLock::new(),
            flushers,
            archive,
        }))
    }

    /// Validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every part of the backplane.
    pub fn backplane(&self) -> &Backplane {
        &self.backplane
    }

    /// The writer of connection `conn`'s live frames.
    pub fn flusher(&self, conn: hub::ConnId) -> &Arc<flusher::Flusher> {
        &self.flushers[conn as usize % self.flushers.len()]
    }

    /// Questions to every node of the cluster (the server API's listings).
    pub fn queries(&self) -> &queries::Queries {
        &self.queries
    }

    /// Where the descriptions of attached files come from (set once).
    pub fn set_attachments(&self, source: Arc<dyn attachments::AttachmentSource>) {
        let _ = self.attachments.set(source);
    }

    /// Authenticated users here.
    pub fn users(&self) -> &Arc<users::Users> {
        &self.users
    }

    /// Verifies a token, counting refusals by reason.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        self.config
            .auth
            .verifier
            .verify(token)
            .and_then(|identity| {
                let now = chorus_protocol::unix_micros() / 1000;
                match self.revocations.refuses(&identity, now) {
                    true => Err(AuthError::Revoked),
                    false => Ok(identity),
                }
            })
            .inspect_err(|error| {
                self.metrics.auth_failed(error.label());
                tracing::debug!(%error, "token refused");
            })
    }

    /// The archive, when the node has one (`--database-url`).
    pub fn archive(&self) -> Option<&chorus_archive::Archive> {
        self.archive.as_ref()
    }

    /// The history reader, within this node's bounds.
    pub fn history(&self) -> history::History<'_> {
        history::History {
            log: self.backplane.log.as_ref(),
            archive: self.archive.as_ref(),
            config: &self.config.history,
            budget: self.config.outbox_bytes / 2,
            metrics: &self.metrics,
        }
    }

    /// Closes the backplane's connections (the node has stopped).
    pub async fn shutdown(&self) {
        self.backplane.pubsub.shutdown().await;
    }
}

/// The history bounds the backplane keeps: with an archive, entries it does
/// not hold yet are kept past them (up to its backlog).
fn history_bounds(config: &Config) -> chorus_backplane::HistorySettings {
    let mut bounds = config.history.bounds;
    if let Some(archive) = &config.archive {
        bounds.unarchived_max = archive.unarchived_max;
    }
    bounds
}

/// The backplane the configuration names, delivering into `inbox`.
async fn connect(
    config: &Config,
    inbox: Arc<inbox::Inbox>,
    registry: &Registry,
) -> Result<Backplane, BackplaneError> {
    match &config.backplane {
        BackplaneConfig::InProcess(bus) => Ok(bus.attach(inbox)),
        BackplaneConfig::Redis(settings) => {
            settings
                .connect(history_bounds(config), inbox, registry)
                .await
        }
    }
}

//! The Chorus gateway: a WebSocket chat node that relays rooms through a backplane.
//!
//! The library takes an already-bound listener and a shutdown token ([`serve`]),
//! so tests run nodes on port 0; the `chorus` binary only parses configuration
//! and calls it. The modules stack without cycles:
//!
//! | folder | what lives there | uses |
//! |---|---|---|
//! | `config/` | flags, typed configuration, validation, `chorus token` | `auth` |
//! | `auth/` | tokens, room grants, origins, rate limits, room-name rules | |
//! | `metrics.rs` | the node's Prometheus metrics | |
//! | `chat/` | the message path: connection, session, hub, sequencer, outbox, subscriptions, repair, presence, notices | `config`, `auth`, `metrics` |
//! | `api/` | the server API under `/api/v1/`: API keys' callers, publish, broadcast, changes, rooms, users, the OpenAPI document | `chat`, `auth` |
//! | `webhooks/` | delivery of the queued events to the configured endpoints: leases per partition, signing, retries, dead letters | `chat`, `config` |
//! | `server/` | HTTP and operations: routes, upgrade, login, history endpoint, web pages, drain, cluster view, health check | `api`, `webhooks`, `chat`, `config`, `auth`, `metrics` |
//!
//! See `docs/architecture.md` for the picture.

mod api;
pub mod auth;
mod chat;
pub mod config;
mod files;
pub mod metrics;
mod server;
mod webhooks;

pub use api::ApiDoc;
pub use config::{BackplaneConfig, Cli, CliCommand, Config, ConfigError, MigrateArgs, token_cmd};
pub use server::{ServeError, healthcheck, serve, serve_with_admin};

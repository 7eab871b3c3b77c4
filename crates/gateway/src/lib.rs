//! The Chorus gateway: a WebSocket chat node that relays rooms through a backplane.
//!
//! The library takes an already-bound listener and a shutdown token ([`serve`]),
//! so tests run nodes on port 0; the `chorus` binary only parses configuration
//! and calls it. See `docs/architecture.md` for the picture.

pub mod auth;
pub mod cluster;
pub mod config;
mod connection;
pub mod drain;
pub mod healthcheck;
mod history;
mod hub;
pub mod limits;
mod login;
pub mod metrics;
mod node;
mod outbox;
mod presence;
mod repair;
mod sequencer;
mod server;
mod session;
mod subscriptions;
pub mod token_cmd;
mod users;
mod web;

pub use config::{BackplaneConfig, Cli, CliCommand, Config, ConfigError};
pub use healthcheck::HealthcheckArgs;
pub use server::{ServeError, serve, serve_with_admin};

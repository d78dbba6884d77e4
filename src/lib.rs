//! q-group-sync mirrors Okta group membership into Amazon Q Business.
//!
//! # Layout
//!
//! - [`config`]: typed configuration from defaults, TOML and environment.
//! - [`model`]: user ids, group names and the Q Business id rules.
//! - [`source`]: the Okta edge ([`source::DirectorySource`]).

pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod engine;
#[cfg(test)]
mod fakes;
pub mod http;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod progress;
pub mod schedule;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod store;
pub mod telemetry;

//! q-group-sync mirrors Okta group membership into Amazon Q Business.
//!
//! # Layout
//!
//! - [`plan`]: the pure core. Scope and mapping ([`plan::select`]), the diff ([`plan::plan`]),
//!   the deletion circuit breaker ([`plan::safety`]). No I/O, no clock.
//! - [`engine`]: one pass: load the snapshot, read Okta (incrementally), plan, guard, apply with
//!   intents and confirmations, record per group.
//! - [`source`] (Okta: client, OAuth/DPoP, rate-limit budget), [`sink`] (Q Business) and
//!   [`store`] (SQLite snapshot): the I/O edges, each behind a trait with an in-memory fake.
//! - [`daemon`], [`http`], [`schedule`], [`shutdown`]: `serve`: the pass queue, the HTTP port,
//!   the cron schedule, signals.
//! - [`cli`], [`config`], [`telemetry`], [`metrics`], [`progress`], [`trace`]: the operator's surface.
//! - [`model`], [`clock`]: ids and the Q Business id rules; time as a parameter.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
#[cfg(test)]
mod fakes;
pub mod leader;
pub mod metrics;
pub mod model;
pub mod pacing;
pub mod plan;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod serve;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod trace;

//! q-group-sync mirrors an identity provider's group membership (Okta's API, or any IdP's SCIM
//! pushes) into Amazon Q Business.
//!
//! # Layout
//!
//! The data path of a pass is list -> select -> read -> desired -> plan -> guard -> apply ->
//! record; `ARCHITECTURE.md` walks through it and says who owns what.
//!
//! - [`plan`]: the pure core, no I/O and no clock. Its input types ([`plan::input`]), which
//!   groups a pass reads and which users changed ([`plan::reads`]), scope and mapping
//!   ([`plan::select`]), the diff ([`plan::plan`]), large groups ([`plan::chunks`]), the circuit
//!   breaker ([`plan::safety`]), `reconcile`'s comparison ([`plan::reconcile`]), `explain`'s
//!   verdict ([`plan::explain`]).
//! - [`engine`]: one pass over the three edges: narrow, read (incrementally, with user
//!   changes), plan and guard, apply with intents and confirmations, record per group.
//! - [`report`]: what a pass was asked ([`report::PassRequest`], [`report::Trigger`]) and what
//!   it did ([`report::RunReport`]).
//! - The edges, each behind a trait with an in-memory fake: [`source`] (Okta: client,
//!   OAuth/DPoP, rate-limit budget, System Log), [`sink`] (Q Business), [`store`] (the
//!   snapshot, run log and held plans in SQLite or PostgreSQL); [`pacing`] paces both clients;
//!   [`leader`] is the leadership the PostgreSQL store fences writes with.
//! - [`scim`]: the second source: a SCIM 2.0 service provider IdPs push to, its record (stored
//!   in the snapshot store) and the record as a directory; [`directory`] is the configured
//!   source, Okta's or SCIM's, that passes read.
//! - [`explain`]: why a user can or cannot see a document: Okta, the snapshot and Q's
//!   CheckDocumentAccess read side by side (`explain`, `GET /explain`).
//! - [`app`]: the wiring: config in, engine, clients and stores out.
//! - [`serve`]: the daemon: pass queue, `/status`, HTTP port, System Log feed, SCIM listener;
//!   [`schedule`] and
//!   [`shutdown`] beside it.
//! - [`cli`]: the commands; [`config`] (by section), [`telemetry`], [`metrics`], [`progress`],
//!   [`trace`]: the operator's surface.
//! - [`model`], [`clock`], [`error`]: ids and Q's id rules; time as a parameter; error chains.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod directory;
pub mod engine;
pub mod error;
pub mod explain;
#[cfg(test)]
mod fakes;
pub mod files;
pub mod leader;
pub mod metrics;
pub mod model;
pub mod pacing;
pub mod plan;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod scim;
pub mod serve;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod trace;

//! Emulators of the Okta Management API and the Amazon Q Business group APIs, served over real
//! HTTP on `127.0.0.1:0`, for q-group-sync's tests, demo and benchmarks. They speak only the wire
//! formats, so what they test is the real reqwest Okta client and the real `aws-sdk-qbusiness`.
//!
//! # Layout
//!
//! - [`okta`]: [`OktaEmulator`] over an [`OktaOrg`]: groups, members, users (a filtered
//!   listing, one user, a user's groups) and the System Log with `link` paging, user lifecycle
//!   transitions, SSWS auth, rate-limit headers and 429s, [`OktaFault`] injection, a request log,
//!   `/_emulator/*` controls.
//! - [`oauth`]: the org's OAuth service app ([`OAuthApp`]): `POST /oauth2/v1/token` with
//!   `private_key_jwt` and DPoP, token expiry, Bearer/DPoP checks on API calls.
//! - [`okta_filter`]: the `filter` / `search` expression language of `GET /api/v1/groups` and
//!   the `filter` of `GET /api/v1/users`.
//! - [`system_log`]: the org's System Log ([`SystemLog`]), appended by [`OktaOrg`]'s mutators,
//!   and the polling/bounded query semantics of `GET /api/v1/logs`.
//! - [`qbusiness`]: [`QEmulator`]: PutGroup / GetGroup / DeleteGroup / ListGroups with async
//!   status, AWS validation, [`QFault`] injection, a call log; CheckDocumentAccess.
//! - [`document_acl`]: document ACLs (wire shape, nested group resolution, evaluation) for
//!   CheckDocumentAccess.
//! - [`generate`]: a deterministic org generator ([`generate::org`]), membership churn
//!   ([`generate::churn`]) and user deactivations ([`generate::deactivate_share`]).
//! - [`scim_idp`]: SCIM clients that push the way Okta, Microsoft Entra ID and PingFederate do
//!   ([`scim_idp::ScimIdp`]), with the IdP's own view of what Q Business must hold.
//! - [`cli`]: the `q-group-sync-emulator` binary (both emulators in one process).
//! - [`measure`]: runs a child process and reports its wall time, CPU time and peak RSS (for
//!   the benchmark).
//!
//! Both emulators keep state behind a `std::sync::Mutex` (short critical sections, never held
//! across an `.await`) and stop when dropped.

#![warn(missing_docs)]

pub mod cli;
pub mod document_acl;
pub mod generate;
pub mod measure;
pub mod oauth;
pub mod okta;
pub mod okta_filter;
pub mod qbusiness;
pub mod scim_idp;
mod server;
pub mod system_log;
mod timefmt;

pub use document_acl::DocumentAcl;
pub use oauth::{OAuthApp, OAuthKey, TokenRequest};
pub use okta::*;
pub use qbusiness::*;
pub use system_log::{LogEvent, SystemLog};

//! The SCIM 2.0 source: a service provider (RFC 7643, RFC 7644) that Okta, Microsoft Entra ID
//! and PingFederate push users and groups to. A push is stored in the snapshot store before it
//! is acknowledged; the engine then brings Q Business to the stored state through
//! [`ScimDirectory`], exactly as it does from Okta.
//!
//! # Layout
//!
//! - [`protocol`]: SCIM as data: resources, filters, PATCH, listing, errors, discovery. Pure:
//!   no I/O, no clock.
//! - [`record`]: the [`ScimRecord`] trait (one transaction per write, a change sequence);
//!   backends in `store::sqlite`, `store::postgres` and `store::Backend`, and [`MemScim`].
//! - [`directory`]: [`ScimDirectory`], the record as the engine's `DirectorySource` and
//!   `UserDirectory`.
//! - [`http`]: [`router`], the `/scim/v2` endpoint over a record, behind a bearer token.
//!
//! # Wiring
//!
//! The record is the store (`Backend` implements [`ScimRecord`]), shared by the endpoint and
//! the directory. The endpoint stamps writes with a `Clock` and calls a [`ChangeHook`] after
//! each commit (in-process wake-up); a replica that did not take the write notices it through
//! [`ScimRecord::change_seq`], which any replica may poll cheaply. SCIM writes are not fenced
//! by leadership: with PostgreSQL every replica can serve the IdP, and the leader applies.
//!
//! The engine's `overlap` must cover the time between a write's stamp (taken before the
//! transaction) and its commit, and the clock skew between replicas: its users step lists the
//! users modified since the previous pass less the overlap. Group changes need no overlap
//! (each has a time of its own, compared for equality).
//!
//! # Left out, and why
//!
//! - **Bulk** (`/Bulk`, 501): Okta, Entra and PingFederate provision without it, and a bulk
//!   request would bring partial failures and a far larger body cap for nothing they use.
//! - **Sorting** (`sortBy`, `sortOrder`): ignored, as `sort.supported: false` announces; pages
//!   come in id order, which is stable between requests.
//! - **ETags** (`If-Match`, `If-None-Match`): `meta.version` is returned (the change sequence
//!   of the resource's last write) but no precondition is checked (`etag.supported: false`);
//!   none of the three IdPs sends them.
//! - **Password change**: `password` is accepted and dropped, never stored or returned.
//! - **`/Me`** (501): there is no authenticated user, only the IdP's token.
//! - **Unauthenticated discovery**: `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas`
//!   need the token too; Okta and Entra send it there, and nothing here is public.
//! - **Nested groups**: a member of type `Group` is refused (400 `invalidValue`); Q Business
//!   groups are written flat.
//! - **Filtering**: the whole grammar is evaluated (attribute names and operators in any
//!   case, `caseExact` per attribute), but only `eq` on `id`, `userName`, `externalId` (users)
//!   and `id`, `displayName`, `externalId` (groups) is answered by an index; other filters
//!   scan the resources of the type. On groups, `members[value eq "id"]` (or several joined by
//!   `or`) selects members only to remove them; other `members` filters are refused.
//! - **Endpoint paths in another case** (`/users`): matched as RFC 7644 spells them.

pub mod directory;
pub mod http;
pub mod memory;
pub mod protocol;
pub mod record;

pub use directory::{ScimDirectory, UserIdSource};
pub use http::{ChangeHook, ChangeOp, ScimChange, ScimSettings, router};
pub use memory::MemScim;
pub use record::{
    DirectoryUser, GroupAttrsUpdate, GroupHead, GroupUpdate, RecordError, ScimRecord, UserUpdate,
    Written,
};

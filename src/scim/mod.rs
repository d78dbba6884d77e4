//! The SCIM 2.0 source: a service provider (RFC 7643, RFC 7644) that Okta, Microsoft Entra ID
//! and PingFederate push users and groups to, stored durably before any 2xx.
//!
//! - [`protocol`]: SCIM as data (resources, filters, PATCH, listing, errors, discovery). Pure.
//!
//! # Left out, and why
//!
//! - **Bulk** (`/Bulk`): none of the three IdPs needs it to provision, and one request
//!   holding many writes would defeat "stored before acknowledged" per change.
//! - **Sorting** (`sortBy`, `sortOrder`): ignored, as RFC 7644 allows when
//!   `/ServiceProviderConfig` says `sort.supported: false`; pages come in id order.
//! - **ETags** (`If-Match`, `If-None-Match`): `meta.version` is returned (the change sequence
//!   of the resource's last write) but preconditions are not checked; no IdP here sends them.
//! - **Password change**: `password` is accepted and dropped; it is never stored or returned.
//! - **`/Me`**: there is no authenticated subject, only the IdP's token.
//! - **Nested groups**: a member of type `Group` is refused (400 `invalidValue`); Q Business
//!   groups are written flat.
//! - **Filtering**: the whole grammar is evaluated, but only `eq` on `id`, `userName`,
//!   `externalId` (users) and `id`, `displayName`, `externalId` (groups) is answered by an
//!   index; other filters scan every resource of the type. `members` filters (`members[value
//!   eq "id"]`) select members only for `remove`.
//! - **Case-insensitive endpoint paths**: `/Users`, `/Groups` and the discovery endpoints are
//!   matched as RFC 7644 spells them.

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

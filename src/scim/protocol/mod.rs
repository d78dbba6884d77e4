//! SCIM 2.0 as data (RFC 7643, RFC 7644): resources, filters, PATCH, listing, errors and the
//! discovery documents. Pure: no I/O and no clock (times are parameters), so every shape an
//! IdP sends is tested here without a server or a store.

pub mod discovery;
pub mod error;
pub mod filter;
pub mod list;
pub mod members;
pub mod patch;
pub mod path;
pub mod resource;
pub mod schema;

#[cfg(test)]
mod tests;

pub use error::{ScimError, ScimType};
pub use filter::{Filter, IndexHint};
pub use list::{ListQuery, Page, Projection, QueryParams};
pub use members::{GroupPatch, MemberChange};
pub use patch::{Operation, PatchKind, PatchPath, parse_patch, patch_group_attrs, patch_user};
pub use path::AttrPath;
pub use resource::{Email, GroupAttrs, Meta, ScimGroup, ScimUser, UserAttrs, fold, timestamp};
pub use schema::ResourceKind;

/// The core User schema.
pub const URN_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema.
pub const URN_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension.
pub const URN_ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// A list response.
pub const URN_LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// A PATCH request.
pub const URN_PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// An error response.
pub const URN_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

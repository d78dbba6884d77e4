//! The SCIM record in memory ([`MemScim`], public as `crate::scim::MemScim` so the contract
//! test in `tests/` runs against it too).

pub use crate::scim::MemScim;

//! What the pure core reads: Okta groups and members as the directory reports them.
//!
//! Plain data, filled in by the directory source (or by tests); no I/O here.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// An Okta group as listed by `GET /api/v1/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OktaGroup {
    /// Immutable Okta id.
    pub id: String,
    /// `profile.name`.
    pub name: String,
    pub kind: GroupType,
    /// When the group's membership last changed (second granularity).
    pub last_membership_updated: Option<DateTime<Utc>>,
    /// When the group's profile last changed.
    pub last_updated: Option<DateTime<Utc>>,
}

/// Okta's group `type`, with a fallback for values this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum GroupType {
    Okta,
    App,
    BuiltIn,
    Other(String),
}

impl GroupType {
    pub fn parse(s: &str) -> GroupType {
        match s {
            "OKTA_GROUP" => GroupType::Okta,
            "APP_GROUP" => GroupType::App,
            "BUILT_IN" => GroupType::BuiltIn,
            other => GroupType::Other(other.to_owned()),
        }
    }
}

/// One member of a group, reduced to what the sync needs. Response bodies are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OktaMember {
    /// Immutable Okta user id.
    pub id: String,
    /// `status` as Okta sent it (e.g. `ACTIVE`, `DEPROVISIONED`, or a value unknown to us).
    pub status: String,
    /// The raw value of the configured `users.id_attribute` (`profile.<attr>`), if it is a
    /// non-empty string.
    pub attribute: Option<String>,
}

/// One Okta user as `GET /api/v1/users/{id}` reports it, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OktaUser {
    /// Immutable Okta user id.
    pub id: String,
    /// `status` as Okta sent it.
    pub status: String,
    /// `profile.login`.
    pub login: Option<String>,
    /// `profile.email`.
    pub email: Option<String>,
    /// The raw value of the configured `users.id_attribute`, if it is a non-empty string.
    pub attribute: Option<String>,
}

/// The result of reading one group's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRead {
    /// Every page was read.
    Members(Vec<OktaMember>),
    /// Okta answered 404 (E0000007): the group was deleted after it was listed.
    GroupGone,
}

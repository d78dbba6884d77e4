//! The configured source of groups: Okta's API (`[okta]`) or the stored SCIM pushes (`[scim]`),
//! one [`DirectorySource`] and [`UserDirectory`] for the engine and `explain` either way.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::scim::record::ScimRecord;
use crate::scim::{ScimDirectory, UserIdSource};
use crate::source::okta::OktaSource;
use crate::source::okta::OktaStats;
use crate::source::{
    DirectorySource, MemberRead, OktaGroup, OktaMember, SourceError, SourceInfo, UserDirectory,
    UserLookup,
};

/// Where a pass reads groups from.
pub enum Directory<R> {
    /// Okta's Management API. Shared (by reference count) with the System Log poller, so both
    /// draw on one rate-limit budget.
    Okta(Arc<OktaSource>),
    /// What IdPs pushed over SCIM, as stored in the snapshot store.
    Scim(ScimDirectory<R>),
}

impl<R: ScimRecord> Directory<R> {
    /// The Okta client, when Okta is the source (the System Log poller and `check-config`
    /// need it).
    pub fn okta(&self) -> Option<&Arc<OktaSource>> {
        match self {
            Directory::Okta(o) => Some(o),
            Directory::Scim(_) => None,
        }
    }

    /// The SCIM directory, when SCIM is the source.
    pub fn scim(&self) -> Option<&ScimDirectory<R>> {
        match self {
            Directory::Okta(_) => None,
            Directory::Scim(s) => Some(s),
        }
    }

    /// Which user attribute becomes the Q user id: `users.id_attribute` (Okta), or
    /// `scim.user_id` (`email` or `userName`).
    pub fn id_attribute(&self) -> &str {
        match self {
            Directory::Okta(o) => OktaSource::id_attribute(o),
            Directory::Scim(s) => match s.user_id() {
                UserIdSource::Email => "email",
                UserIdSource::UserName => "userName",
            },
        }
    }
}

impl<R: ScimRecord> DirectorySource for Directory<R> {
    async fn list_groups(&self) -> Result<Vec<OktaGroup>, SourceError> {
        match self {
            Directory::Okta(o) => o.list_groups().await,
            Directory::Scim(s) => s.list_groups().await,
        }
    }

    async fn list_members(&self, group_id: &str) -> Result<MemberRead, SourceError> {
        match self {
            Directory::Okta(o) => o.list_members(group_id).await,
            Directory::Scim(s) => s.list_members(group_id).await,
        }
    }

    async fn list_users_updated_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OktaMember>, SourceError> {
        match self {
            Directory::Okta(o) => o.list_users_updated_since(since).await,
            Directory::Scim(s) => s.list_users_updated_since(since).await,
        }
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<String>, SourceError> {
        match self {
            Directory::Okta(o) => o.groups_of_user(user_id).await,
            Directory::Scim(s) => s.groups_of_user(user_id).await,
        }
    }

    async fn list_groups_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OktaGroup>, SourceError> {
        match self {
            Directory::Okta(o) => o.list_groups_changed_since(since).await,
            Directory::Scim(s) => s.list_groups_changed_since(since).await,
        }
    }

    async fn list_users_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<crate::source::UsersListed, SourceError> {
        match self {
            Directory::Okta(o) => o.list_users_changed_since(since).await,
            Directory::Scim(s) => s.list_users_changed_since(since).await,
        }
    }
}

impl<R: ScimRecord> UserDirectory for Directory<R> {
    async fn find_user(&self, key: &str) -> Result<UserLookup, SourceError> {
        match self {
            Directory::Okta(o) => o.find_user(key).await,
            Directory::Scim(s) => s.find_user(key).await,
        }
    }

    async fn user_groups(&self, user_id: &str) -> Result<Vec<OktaGroup>, SourceError> {
        match self {
            Directory::Okta(o) => o.user_groups(user_id).await,
            Directory::Scim(s) => s.user_groups(user_id).await,
        }
    }
}

impl<R: ScimRecord> SourceInfo for Directory<R> {
    fn id_attribute(&self) -> Option<&str> {
        Some(Directory::id_attribute(self))
    }

    fn request_stats(&self) -> Option<OktaStats> {
        self.okta().map(|o| o.stats())
    }
}

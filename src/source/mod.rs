//! The directory side: what q-group-sync reads from Okta, behind [`DirectorySource`].
//!
//! Nothing here decides scope or membership; it only reports what Okta says, faithfully and
//! completely, or says that it could not.

pub mod budget;
pub mod oauth;
pub mod okta;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::plan::input::{GroupType, MemberRead, OktaGroup, OktaMember, OktaUser};
pub use okta::OktaSource;

/// The OAuth scope (and, for SSWS tokens, the permission) an Okta API path needs.
pub fn scope_for(path: &str) -> &'static str {
    if path.starts_with("/api/v1/logs") {
        "okta.logs.read"
    } else if path.starts_with("/api/v1/users") {
        "okta.users.read"
    } else {
        "okta.groups.read"
    }
}

/// Why a read from Okta failed for good (after the retries the client allows).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// 401: the token is wrong, expired or revoked.
    #[error("Okta rejected the credentials ({code}): check okta.api_token")]
    Unauthorized { code: String },
    /// 403: the token lacks a scope or admin role.
    #[error(
        "Okta denied access to {path} ({code}): the token needs {} and a read-only admin role",
        scope_for(path)
    )]
    Forbidden { code: String, path: String },
    /// 400: Okta rejected the request, e.g. a bad `okta.group_filter`.
    #[error("Okta rejected the request to {path} ({code}): {summary}")]
    BadRequest {
        path: String,
        code: String,
        summary: String,
    },
    /// Still rate limited after the allowed retries.
    #[error("Okta kept answering 429 for {path}")]
    RateLimited { path: String },
    /// 5xx (or another unexpected status) after the allowed retries.
    #[error("Okta answered HTTP {status} for {path}")]
    Server { path: String, status: u16 },
    /// Connection failure or timeout after the allowed retries.
    #[error("request to Okta {path} failed")]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// A body that is not the JSON Okta documents.
    #[error("Okta sent a response that is not valid JSON for {path}: {detail}")]
    Malformed { path: String, detail: String },
    /// OAuth (`okta.auth = "oauth"`): the service app is misconfigured or Okta refused it; the
    /// message says what to fix (client id, key, scopes, DPoP).
    #[error(transparent)]
    OAuth(#[from] oauth::OAuthError),
    /// A `Link: rel="next"` pointing outside the configured org; never followed.
    #[error(
        "Okta's next link for {path} points outside okta.org_url ({link_origin}); not followed"
    )]
    ForeignLink { path: String, link_origin: String },
    /// A response body over the cap; not read further.
    #[error("Okta's response for {path} is larger than {limit_mib} MiB; not read further")]
    TooLarge { path: String, limit_mib: usize },
    /// The SCIM source's stored record could not be read (`[scim]`); the cause is logged where
    /// it happened. Retried by the next pass.
    #[error("reading the stored SCIM record ({what}) failed")]
    Record { what: String },
    /// A listing whose `next` links go on past the page cap.
    #[error(
        "Okta's listing at {path} went on past {pages} pages; stopped (a next link chain that does not end)"
    )]
    TooManyPages { path: String, pages: usize },
}

impl SourceError {
    /// Bounded label for metrics and status.
    pub fn kind(&self) -> SourceErrorKind {
        match self {
            SourceError::Unauthorized { .. } => SourceErrorKind::Unauthorized,
            SourceError::Forbidden { .. } => SourceErrorKind::Forbidden,
            SourceError::BadRequest { .. } => SourceErrorKind::BadRequest,
            SourceError::RateLimited { .. } => SourceErrorKind::RateLimited,
            SourceError::Server { .. } => SourceErrorKind::Server,
            SourceError::Transport { .. } => SourceErrorKind::Transport,
            SourceError::Malformed { .. } => SourceErrorKind::Malformed,
            SourceError::ForeignLink { .. } => SourceErrorKind::ForeignLink,
            SourceError::TooLarge { .. } => SourceErrorKind::TooLarge,
            SourceError::TooManyPages { .. } => SourceErrorKind::TooManyPages,
            SourceError::Record { .. } => SourceErrorKind::Record,
            SourceError::OAuth(e) => SourceErrorKind::OAuth(e.kind()),
        }
    }

    /// What to change when the error is the setup's (credentials, permissions, the group
    /// filter, `okta.org_url`): retrying does not help. `None` for an outage, which the next
    /// run retries.
    pub fn fix(&self) -> Option<&'static str> {
        Some(match self {
            SourceError::Unauthorized { .. } => {
                "check the token (okta.api_token_file or Q_GROUP_SYNC_OKTA__API_TOKEN): it must be this org's, active and not revoked"
            }
            SourceError::Forbidden { path, .. } => match scope_for(path) {
                "okta.logs.read" => {
                    "give the token's admin a role that reads the System Log (Read-only Administrator), or grant okta.logs.read to the service app"
                }
                "okta.users.read" => {
                    "give the token's admin a role that reads users (Read-only Administrator), or grant okta.users.read to the service app"
                }
                _ => {
                    "give the token's admin a role that reads groups and members (Read-only Administrator), or grant okta.groups.read to the service app"
                }
            },
            // Each OAuth message names the setting or the grant already.
            SourceError::OAuth(_) => {
                "change what the message names in the Okta service app or in [okta] (client_id, private_key_file, key_id, scopes, dpop)"
            }
            SourceError::BadRequest { .. } => {
                "check okta.group_filter and the other [okta] settings"
            }
            SourceError::ForeignLink { .. } => {
                "set okta.org_url to the org's own URL (the one its next links use)"
            }
            _ => return None,
        })
    }

    /// True when no other request can succeed either (credentials or permissions): the pass stops.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SourceError::Unauthorized { .. }
                | SourceError::Forbidden { .. }
                | SourceError::OAuth(_)
        )
    }
}

/// What kind of [`SourceError`] happened: a fixed set, for metrics labels, `/status` and the
/// checks that tell a misconfiguration from an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// `unauthorized`: 401 with an SSWS token.
    Unauthorized,
    /// `forbidden`: 403 with an SSWS token.
    Forbidden,
    /// `bad_request`: 400, e.g. a bad `okta.group_filter`.
    BadRequest,
    /// `rate_limited`: still 429 after the retries.
    RateLimited,
    /// `server`: 5xx or another unexpected status after the retries.
    Server,
    /// `transport`: connection failure or timeout after the retries.
    Transport,
    /// `malformed`: a body that is not the JSON Okta documents.
    Malformed,
    /// `foreign_link`: a next link outside `okta.org_url`.
    ForeignLink,
    /// `too_large`: a response body over the cap.
    TooLarge,
    /// `too_many_pages`: a listing past the page cap.
    TooManyPages,
    /// `record`: the stored SCIM record could not be read.
    Record,
    /// OAuth (`okta.auth = "oauth"`); labelled by the OAuth kind (`oauth_client`, ...).
    OAuth(oauth::OAuthErrorKind),
}

impl SourceErrorKind {
    /// The label: snake_case, from a fixed set.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceErrorKind::Unauthorized => "unauthorized",
            SourceErrorKind::Forbidden => "forbidden",
            SourceErrorKind::BadRequest => "bad_request",
            SourceErrorKind::RateLimited => "rate_limited",
            SourceErrorKind::Server => "server",
            SourceErrorKind::Transport => "transport",
            SourceErrorKind::Malformed => "malformed",
            SourceErrorKind::ForeignLink => "foreign_link",
            SourceErrorKind::TooLarge => "too_large",
            SourceErrorKind::TooManyPages => "too_many_pages",
            SourceErrorKind::Record => "record",
            SourceErrorKind::OAuth(k) => k.as_str(),
        }
    }
}

impl std::fmt::Display for SourceErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SourceErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Compares the label, so `kind() == "server"` reads as it did when kinds were strings.
impl PartialEq<&str> for SourceErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The only way q-group-sync reads the identity provider's groups (the change feed,
/// [`ChangeFeed`], only says which to read again).
pub trait DirectorySource: Send + Sync {
    /// Every group matching `okta.group_filter`, all pages, or an error (never a partial list).
    fn list_groups(&self) -> impl Future<Output = Result<Vec<OktaGroup>, SourceError>> + Send;

    /// Every member of one group, all pages, or an error (never a partial list).
    fn list_members(
        &self,
        group_id: &str,
    ) -> impl Future<Output = Result<MemberRead, SourceError>> + Send;

    /// Every user whose `lastUpdated` is after `since`, whatever their status (deactivated
    /// users included), all pages, or an error (never a partial list).
    fn list_users_updated_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<OktaMember>, SourceError>> + Send;

    /// The ids of the groups a user belongs to (none when the user no longer exists).
    fn groups_of_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send;

    /// The groups matching `okta.group_filter` whose profile or membership changed after
    /// `since` (Okta's `lastUpdated`, `lastMembershipUpdated`), all pages, or an error. Deleted
    /// groups are not among them. A source that cannot tell lists every group.
    fn list_groups_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<OktaGroup>, SourceError>> + Send {
        let _ = since;
        self.list_groups()
    }

    /// [`DirectorySource::list_users_updated_since`], with the newest `lastUpdated` among the
    /// users listed when the source knows it.
    fn list_users_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<UsersListed, SourceError>> + Send {
        async move {
            Ok(UsersListed {
                users: self.list_users_updated_since(since).await?,
                newest: None,
            })
        }
    }
}

/// The users a users listing returned, and the newest `lastUpdated` among them (Okta's clock).
#[derive(Debug, Clone, Default)]
pub struct UsersListed {
    pub users: Vec<OktaMember>,
    pub newest: Option<DateTime<Utc>>,
}

/// A shared source (e.g. one [`OktaSource`], and so one rate-limit budget, for the passes and the
/// change feed) is a source too.
impl<T: DirectorySource + ?Sized> DirectorySource for std::sync::Arc<T> {
    fn list_groups(&self) -> impl Future<Output = Result<Vec<OktaGroup>, SourceError>> + Send {
        (**self).list_groups()
    }

    fn list_members(
        &self,
        group_id: &str,
    ) -> impl Future<Output = Result<MemberRead, SourceError>> + Send {
        (**self).list_members(group_id)
    }

    fn list_users_updated_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<OktaMember>, SourceError>> + Send {
        (**self).list_users_updated_since(since)
    }

    fn groups_of_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send {
        (**self).groups_of_user(user_id)
    }

    fn list_groups_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<OktaGroup>, SourceError>> + Send {
        (**self).list_groups_changed_since(since)
    }

    fn list_users_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<UsersListed, SourceError>> + Send {
        (**self).list_users_changed_since(since)
    }
}

/// What `explain` finds for a `--user` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLookup {
    Found(OktaUser),
    /// No user has that id, login or email.
    NotFound,
    /// Several users have that email (their Okta ids).
    Ambiguous(Vec<String>),
}

/// One user's facts, for `explain` (read-only, one user at a time).
pub trait UserDirectory: Send + Sync {
    /// The user whose Okta id or login is `key` (`GET /api/v1/users/{key}`), else the one whose
    /// `profile.email` is `key`.
    fn find_user(&self, key: &str) -> impl Future<Output = Result<UserLookup, SourceError>> + Send;

    /// The groups Okta lists for the user (`GET /api/v1/users/{id}/groups`), all pages.
    fn user_groups(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<OktaGroup>, SourceError>> + Send;
}

impl<T: UserDirectory + ?Sized> UserDirectory for std::sync::Arc<T> {
    fn find_user(&self, key: &str) -> impl Future<Output = Result<UserLookup, SourceError>> + Send {
        (**self).find_user(key)
    }

    fn user_groups(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<OktaGroup>, SourceError>> + Send {
        (**self).user_groups(user_id)
    }
}

/// What a source can say about itself beyond the directory, for reports and `explain`. Each
/// answer is optional: a source that has no such fact answers `None`.
pub trait SourceInfo {
    /// The profile attribute users' Q ids come from (`users.id_attribute`).
    fn id_attribute(&self) -> Option<&str> {
        None
    }

    /// The client's request counters so far.
    fn request_stats(&self) -> Option<okta::OktaStats> {
        None
    }
}

impl SourceInfo for OktaSource {
    fn id_attribute(&self) -> Option<&str> {
        Some(OktaSource::id_attribute(self))
    }

    fn request_stats(&self) -> Option<okta::OktaStats> {
        Some(self.stats())
    }
}

impl<T: SourceInfo + ?Sized> SourceInfo for std::sync::Arc<T> {
    fn id_attribute(&self) -> Option<&str> {
        (**self).id_attribute()
    }

    fn request_stats(&self) -> Option<okta::OktaStats> {
        (**self).request_stats()
    }
}

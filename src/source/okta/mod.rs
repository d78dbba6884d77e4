//! Okta Management API client: SSWS or OAuth ([`super::oauth`]) auth, `Link: rel="next"` paging,
//! 429/5xx retries with backoff.
//!
//! Read-only. A listing is complete or an error: any page that still fails after the retries, or
//! a `next` link outside `okta.org_url`, fails the whole listing. Response bodies are parsed
//! straight into the few fields the sync needs and dropped; headers, tokens and bodies are
//! never logged.

pub mod events;
mod links;
mod request;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::Semaphore;
use url::Url;

use super::budget::Budget;
use super::oauth::{ClientKey, OAuthClient, OAuthSettings};
use super::{
    DirectorySource, MemberRead, OktaGroup, OktaMember, OktaUser, SourceError, UserDirectory,
    UserLookup, UsersListed,
};
use crate::clock::SystemClock;
use crate::config::{Config, ConfigError, OktaCredentials};
pub(crate) use links::same_origin;
use request::Credentials;
pub(crate) use request::{Capped, backoff, rate_limit_wait, read_capped};
pub use request::{MAX_BODY_BYTES, MAX_PAGES};
use wire::{parse_groups, parse_members, parse_updated_users, parse_user, parse_users};

/// Sent as `User-Agent` on every request.
const USER_AGENT: &str = concat!("q-group-sync/", env!("CARGO_PKG_VERSION"));

/// Everything the Okta client needs, resolved from [`Config`] (credentials included).
#[derive(Debug, Clone)]
pub struct OktaSettings {
    /// The org's base URL; the only origin requests (and followed `next` links) may go to.
    pub org_url: Url,
    /// How requests authenticate; `Debug` shows no secret.
    pub auth: OktaAuth,
    /// `filter` for `GET /api/v1/groups`, sent URL-encoded.
    pub group_filter: String,
    /// `limit` on every list call except member reads.
    pub page_size: u32,
    /// `limit` on member reads (`GET /api/v1/groups/{id}/users`).
    pub member_page_size: u32,
    /// Requests in flight at most.
    pub max_concurrency: usize,
    /// Timeout of one HTTP request, body included.
    pub request_timeout: Duration,
    /// Retries of one request (429, 5xx, timeout, connection error, broken body).
    pub max_retries: u32,
    /// Longest single wait before a retry (before jitter).
    pub max_retry_wait: Duration,
    /// Profile attribute reported as [`OktaMember::attribute`].
    pub id_attribute: String,
    /// Share of each Okta rate-limit bucket this client may use (0 < share <= 1).
    pub rate_limit_share: f64,
}

/// `okta.auth`, resolved: the SSWS token, or the OAuth service app with its parsed key.
#[derive(Debug, Clone)]
pub enum OktaAuth {
    /// SSWS API token; `Debug` shows `[REDACTED]`.
    Ssws(SecretString),
    /// OAuth 2.0 service app (`private_key_jwt`, optionally DPoP).
    OAuth(OAuthSettings),
}

impl OktaSettings {
    /// Takes `[okta]` and `users.id_attribute` from `config`, reading the token or private key
    /// file now.
    pub fn from_config(config: &Config) -> Result<OktaSettings, ConfigError> {
        let o = config.okta("the Okta client")?;
        let auth = match o.credentials()? {
            OktaCredentials::Ssws { token } => OktaAuth::Ssws(token),
            OktaCredentials::OAuth {
                client_id,
                private_key_source,
                private_key_pem,
                key_id,
                scopes,
                dpop,
            } => {
                let key = ClientKey::from_pem(private_key_pem.expose_secret())
                    .map_err(|e| ConfigError(format!("{private_key_source} {e}")))?;
                OktaAuth::OAuth(OAuthSettings {
                    client_id,
                    key,
                    key_id,
                    scopes,
                    dpop,
                })
            }
        };
        Ok(OktaSettings {
            org_url: o.org_url.clone(),
            auth,
            group_filter: o.group_filter.clone(),
            page_size: o.page_size,
            member_page_size: o.member_page_size,
            max_concurrency: o.max_concurrency,
            request_timeout: o.request_timeout,
            max_retries: o.max_retries,
            max_retry_wait: o.max_retry_wait,
            rate_limit_share: o.rate_limit_share,
            id_attribute: config.users.id_attribute.clone(),
        })
    }
}

/// Why [`OktaSource::new`] could not build a client.
#[derive(Debug, thiserror::Error)]
pub enum OktaBuildError {
    /// The token holds characters that cannot go in an HTTP header (e.g. a newline).
    #[error("the Okta API token holds characters not allowed in an HTTP header")]
    InvalidToken,
    /// `org_url` is not an http(s) base URL with a host.
    #[error("okta.org_url must be an http(s) URL with a host")]
    OrgUrl,
    /// reqwest could not build its client (TLS setup).
    #[error("building the Okta HTTP client")]
    Client(#[source] reqwest::Error),
    /// The OAuth client could not be set up (DPoP key generation).
    #[error("setting up Okta OAuth")]
    OAuth(#[source] super::oauth::OAuthBuildError),
}

/// Request counters since the client was built, for the run report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OktaStats {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// 429 answers seen (rate and concurrency limits).
    pub rate_limited: u64,
    /// Requests sent again after a 429, 5xx, timeout, connection error or broken body.
    pub retries: u64,
    /// Seconds spent waiting out 429s.
    pub rate_limit_wait_secs: f64,
}

/// Shared counters behind [`OktaStats`]; atomics because listings run concurrently.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    rate_limit_wait_ms: AtomicU64,
}

/// The Okta [`DirectorySource`]: `GET /api/v1/groups` and `GET /api/v1/groups/{id}/users`.
pub struct OktaSource {
    http: reqwest::Client,
    org_url: Url,
    credentials: Credentials,
    group_filter: String,
    page_size: u32,
    /// `okta.member_page_size`: the `limit` member reads start each pass with.
    member_page_size: u32,
    /// The `limit` member reads use now: `member_page_size`, or less once a large page failed
    /// with a 5xx or timed out this pass (reset when a pass lists the groups).
    member_limit: AtomicU32,
    max_retries: u32,
    max_retry_wait: Duration,
    id_attribute: String,
    /// Bounds requests in flight to `max_concurrency`; not held while waiting to retry.
    permits: Semaphore,
    /// Paces requests to this client's share of each rate-limit bucket.
    budget: Budget,
    counters: Counters,
    /// Caps against hostile or broken answers.
    limits: ResponseLimits,
}

/// Caps on what one response and one listing may be.
#[derive(Debug, Clone, Copy)]
pub(in crate::source) struct ResponseLimits {
    /// Bytes of one response body ([`MAX_BODY_BYTES`]).
    pub(in crate::source) max_body_bytes: usize,
    /// Pages one listing follows ([`MAX_PAGES`]).
    pub(in crate::source) max_pages: usize,
}

impl fmt::Debug for OktaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OktaSource")
            .field("org_url", &self.org_url.as_str())
            .finish_non_exhaustive()
    }
}

/// One page, or Okta's 404 E0000007.
pub(in crate::source) enum Fetched<T> {
    Page { items: T, next: Option<Url> },
    NotFound,
}

impl OktaSource {
    /// Builds the HTTP client: rustls, `request_timeout`, no redirects (the token never leaves the org).
    pub fn new(settings: OktaSettings) -> Result<OktaSource, OktaBuildError> {
        let org = &settings.org_url;
        if !matches!(org.scheme(), "http" | "https")
            || org.host_str().is_none()
            || org.cannot_be_a_base()
        {
            return Err(OktaBuildError::OrgUrl);
        }
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(OktaBuildError::Client)?;
        let credentials = match settings.auth {
            OktaAuth::Ssws(token) => {
                let mut auth = HeaderValue::try_from(format!("SSWS {}", token.expose_secret()))
                    .map_err(|_| OktaBuildError::InvalidToken)?;
                auth.set_sensitive(true);
                Credentials::Ssws(auth)
            }
            OktaAuth::OAuth(oauth) => Credentials::OAuth(Arc::new(
                OAuthClient::new(
                    oauth,
                    org,
                    http.clone(),
                    Arc::new(SystemClock),
                    settings.max_retries,
                    settings.max_retry_wait,
                )
                .map_err(OktaBuildError::OAuth)?,
            )),
        };
        Ok(OktaSource {
            http,
            org_url: settings.org_url,
            credentials,
            group_filter: settings.group_filter,
            page_size: settings.page_size,
            member_page_size: settings.member_page_size.max(1),
            member_limit: AtomicU32::new(settings.member_page_size.max(1)),
            max_retries: settings.max_retries,
            max_retry_wait: settings.max_retry_wait,
            id_attribute: settings.id_attribute,
            permits: Semaphore::new(settings.max_concurrency.max(1)),
            budget: Budget::new(settings.rate_limit_share, settings.max_concurrency),
            counters: Counters::default(),
            limits: ResponseLimits {
                max_body_bytes: MAX_BODY_BYTES,
                max_pages: MAX_PAGES,
            },
        })
    }

    /// Tighter caps than [`MAX_BODY_BYTES`] and [`MAX_PAGES`] (tests of the caps; they are
    /// never raised).
    pub fn with_response_limits(mut self, max_body_bytes: usize, max_pages: usize) -> OktaSource {
        self.limits = ResponseLimits {
            max_body_bytes: max_body_bytes.min(MAX_BODY_BYTES),
            max_pages: max_pages.clamp(1, MAX_PAGES),
        };
        self
    }

    /// One read-only `GET /api/v1/groups?limit=1&filter=…` (for `check-config`): proves the URL,
    /// token, scope and filter. Returns the number of groups on that page (0 or 1).
    pub async fn check(&self) -> Result<usize, SourceError> {
        let url = self.groups_url(1);
        match self.fetch_page(&url, &parse_groups).await? {
            Fetched::Page { items, .. } => Ok(items.len()),
            Fetched::NotFound => Err(SourceError::Server {
                path: url.path().to_owned(),
                status: 404,
            }),
        }
    }

    /// One read-only page of the first selected group's members (for `check-config`): proves
    /// the token may read memberships, not only list groups. `None` when the filter selects
    /// no group (nothing to read).
    pub async fn check_members(&self) -> Result<Option<usize>, SourceError> {
        let first = match self.fetch_page(&self.groups_url(1), &parse_groups).await? {
            Fetched::Page { items, .. } => items.into_iter().next(),
            Fetched::NotFound => None,
        };
        let Some(group) = first else {
            return Ok(None);
        };
        let mut url = self.endpoint(&["api", "v1", "groups", &group.id, "users"]);
        url.set_query(Some("limit=1"));
        let attr = self.id_attribute.as_str();
        let parse = |body: &[u8]| parse_members(body, attr);
        match self.fetch_page(&url, &parse).await? {
            Fetched::Page { items, .. } => Ok(Some(items.len())),
            // The group went away between the two calls: the read itself was allowed.
            Fetched::NotFound => Ok(Some(0)),
        }
    }

    /// Counters since this client was built.
    pub fn stats(&self) -> OktaStats {
        let c = &self.counters;
        OktaStats {
            requests: c.requests.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rate_limit_wait_secs: c.rate_limit_wait_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    /// `{org}/api/v1/groups?limit=N&filter=…`.
    fn groups_url(&self, limit: u32) -> Url {
        let mut url = self.endpoint(&["api", "v1", "groups"]);
        url.set_query(Some(&format!(
            "limit={limit}&filter={}",
            encode_query_value(&self.group_filter)
        )));
        url
    }

    /// `{org}/api/v1/groups?limit=N&filter=…` for the groups (of `okta.group_filter`) whose
    /// profile or membership changed after `since`.
    fn changed_groups_url(&self, since: DateTime<Utc>, limit: u32) -> Url {
        let mut url = self.endpoint(&["api", "v1", "groups"]);
        url.set_query(Some(&format!(
            "limit={limit}&filter={}",
            encode_query_value(&groups_changed_filter(&self.group_filter, since))
        )));
        url
    }

    /// `{org}/api/v1/users?limit=N&filter=…` for the users updated after `since`.
    fn users_url(&self, since: DateTime<Utc>, limit: u32) -> Url {
        let mut url = self.endpoint(&["api", "v1", "users"]);
        url.set_query(Some(&format!(
            "limit={limit}&filter={}",
            encode_query_value(&users_updated_filter(since))
        )));
        url
    }

    /// One read-only `GET /api/v1/users?limit=1&filter=…` for the users updated since `now`
    /// (for `check-config`): proves the token may list users (`okta.users.read`), which every
    /// incremental pass needs.
    pub async fn check_users(&self, now: DateTime<Utc>) -> Result<usize, SourceError> {
        let url = self.users_url(now, 1);
        let attr = self.id_attribute.as_str();
        let parse = |body: &[u8]| parse_members(body, attr);
        match self.fetch_page(&url, &parse).await? {
            Fetched::Page { items, .. } => Ok(items.len()),
            Fetched::NotFound => Err(SourceError::Server {
                path: url.path().to_owned(),
                status: 404,
            }),
        }
    }

    /// `{org}/api/v1/users/{id}/groups` (the user's groups, for the users step and for
    /// `explain`): documented without `limit`, so none is sent; a `next` link is followed if
    /// one comes. An id that cannot be a path segment is refused before any request.
    fn user_groups_url(&self, user_id: &str) -> Result<Url, SourceError> {
        usable_segment("user id", user_id, "/api/v1/users/{id}/groups")?;
        Ok(self.endpoint(&["api", "v1", "users", user_id, "groups"]))
    }

    /// `okta.org_url`: the only origin requests go to.
    pub(in crate::source) fn org_url(&self) -> &Url {
        &self.org_url
    }

    /// `{org}/{segments…}` with each segment percent-encoded.
    pub(in crate::source) fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.org_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .expect("new() checked org_url can be a base")
            .clear()
            .extend(segments);
        url
    }
}

/// Whether `id` stays one path segment: percent-encoding keeps every value inside its segment
/// except the empty one, `.` and `..`.
fn is_path_segment(id: &str) -> bool {
    !(id.is_empty() || id == "." || id == "..")
}

/// An id that would not stay one path segment is refused before any request, naming `path`.
fn usable_segment(what: &str, id: &str, path: &str) -> Result<(), SourceError> {
    if !is_path_segment(id) {
        return Err(SourceError::Malformed {
            path: path.to_owned(),
            detail: format!("{what} {id:?} cannot be used in a URL"),
        });
    }
    Ok(())
}

impl DirectorySource for OktaSource {
    async fn list_groups(&self) -> Result<Vec<OktaGroup>, SourceError> {
        // Listing the groups starts a pass: member reads try the configured page size again.
        self.member_limit
            .store(self.member_page_size, Ordering::Relaxed);
        let url = self.groups_url(self.page_size);
        let path = url.path().to_owned();
        match self.paginate(url, &parse_groups).await? {
            Some(groups) => Ok(groups),
            None => Err(SourceError::Server { path, status: 404 }),
        }
    }

    async fn list_members(&self, group_id: &str) -> Result<MemberRead, SourceError> {
        usable_segment("group id", group_id, "/api/v1/groups/{id}/users")?;
        let mut url = self.endpoint(&["api", "v1", "groups", group_id, "users"]);
        let limit = self.member_limit.load(Ordering::Relaxed);
        url.set_query(Some(&format!("limit={limit}")));
        let attr = self.id_attribute.as_str();
        let parse = |body: &[u8]| parse_members(body, attr);
        Ok(match self.paginate_members(url, &parse).await? {
            Some(members) => MemberRead::Members(members),
            None => MemberRead::GroupGone,
        })
    }

    async fn list_users_updated_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OktaMember>, SourceError> {
        Ok(self.list_users_changed_since(since).await?.users)
    }

    async fn list_groups_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OktaGroup>, SourceError> {
        self.member_limit
            .store(self.member_page_size, Ordering::Relaxed);
        let url = self.changed_groups_url(since, self.page_size);
        let path = url.path().to_owned();
        match self.paginate(url, &parse_groups).await? {
            Some(groups) => Ok(groups),
            None => Err(SourceError::Server { path, status: 404 }),
        }
    }

    async fn list_users_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<UsersListed, SourceError> {
        let url = self.users_url(since, USERS_PAGE_SIZE.min(self.page_size));
        let path = url.path().to_owned();
        let attr = self.id_attribute.as_str();
        let parse = |body: &[u8]| parse_updated_users(body, attr);
        match self.paginate(url, &parse).await? {
            Some(listed) => {
                let newest = listed.iter().filter_map(|(_, at)| *at).max();
                Ok(UsersListed {
                    users: listed.into_iter().map(|(u, _)| u).collect(),
                    newest,
                })
            }
            None => Err(SourceError::Server { path, status: 404 }),
        }
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<String>, SourceError> {
        let url = self.user_groups_url(user_id)?;
        Ok(self
            .paginate(url, &wire::parse_group_ids)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|id| id.as_str().to_owned())
            .collect())
    }
}

impl OktaSource {
    /// `users.id_attribute`.
    pub fn id_attribute(&self) -> &str {
        &self.id_attribute
    }

    /// Users whose `profile.email` is exactly `email`, DEPROVISIONED ones included.
    async fn users_by_email(&self, email: &str) -> Result<Vec<OktaUser>, SourceError> {
        let value = email.replace('\\', "\\\\").replace('"', "\\\"");
        let filter = format!(
            r#"profile.email eq "{value}" or (status eq "DEPROVISIONED" and profile.email eq "{value}")"#
        );
        let mut url = self.endpoint(&["api", "v1", "users"]);
        url.set_query(Some(&format!(
            "limit={USERS_PAGE_SIZE}&filter={}",
            encode_query_value(&filter)
        )));
        let path = url.path().to_owned();
        let attr = self.id_attribute.as_str();
        let parse = |body: &[u8]| parse_users(body, attr);
        match self.paginate(url, &parse).await? {
            Some(users) => Ok(users),
            None => Err(SourceError::Server { path, status: 404 }),
        }
    }
}

impl UserDirectory for OktaSource {
    async fn find_user(&self, key: &str) -> Result<UserLookup, SourceError> {
        let key = key.trim();
        if !is_path_segment(key) {
            return Ok(UserLookup::NotFound);
        }
        let url = self.endpoint(&["api", "v1", "users", key]);
        let attr = self.id_attribute.as_str();
        let parse = |body: &[u8]| parse_user(body, attr);
        if let Fetched::Page { items, .. } = self.fetch_page(&url, &parse).await? {
            return Ok(UserLookup::Found(items));
        }
        if !key.contains('@') {
            return Ok(UserLookup::NotFound);
        }
        // Okta compares filter values exactly: try the address as given, then lowercased.
        let mut found = self.users_by_email(key).await?;
        if found.is_empty() && key.to_lowercase() != key {
            found = self.users_by_email(&key.to_lowercase()).await?;
        }
        Ok(match found.len() {
            0 => UserLookup::NotFound,
            1 => UserLookup::Found(found.remove(0)),
            _ => UserLookup::Ambiguous(found.into_iter().map(|u| u.id).collect()),
        })
    }

    async fn user_groups(&self, user_id: &str) -> Result<Vec<OktaGroup>, SourceError> {
        let url = self.user_groups_url(user_id)?;
        Ok(self.paginate(url, &parse_groups).await?.unwrap_or_default())
    }
}

/// Most users `GET /api/v1/users` returns per page.
const USERS_PAGE_SIZE: u32 = 200;

/// The filter of the users whose `lastUpdated` is after `since`, deactivated ones included:
/// Okta leaves DEPROVISIONED users out of user listings unless the filter asks for that status,
/// so the filter names it in a second branch (a user matches at most once either way).
pub fn users_updated_filter(since: DateTime<Utc>) -> String {
    let at = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!(r#"lastUpdated gt "{at}" or (status eq "DEPROVISIONED" and lastUpdated gt "{at}")"#)
}

/// The filter of the groups whose profile (`lastUpdated`) or membership
/// (`lastMembershipUpdated`) changed after `since`, within `group_filter` when one is set.
pub fn groups_changed_filter(group_filter: &str, since: DateTime<Utc>) -> String {
    let at = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let changed = format!(r#"lastUpdated gt "{at}" or lastMembershipUpdated gt "{at}""#);
    if group_filter.trim().is_empty() {
        changed
    } else {
        format!("({}) and ({changed})", group_filter.trim())
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (spaces become `%20`).
pub(in crate::source) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use reqwest::header::{HeaderMap, HeaderName};

    use super::links::{link_values, next_link};
    use super::*;
    use crate::source::GroupType;

    /// `interactions[i].response` of a recorded fixture: (headers, body bytes).
    fn fixture(json: &str, i: usize) -> (HeaderMap, Vec<u8>) {
        let doc: serde_json::Value = serde_json::from_str(json).unwrap();
        let response = &doc["interactions"][i]["response"];
        let mut headers = HeaderMap::new();
        for (name, value) in response["headers"].as_object().unwrap() {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).unwrap();
            headers.append(
                name,
                HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
            );
        }
        (headers, serde_json::to_vec(&response["body"]).unwrap())
    }

    const LIST_GROUPS: &str = include_str!("../../../tests/fixtures/okta/list_groups.json");
    const GROUP_USERS: &str = include_str!("../../../tests/fixtures/okta/group_users.json");
    const REMOVE_GROUP: &str = include_str!("../../../tests/fixtures/okta/remove_group.json");
    const SEARCH_GROUP: &str = include_str!("../../../tests/fixtures/okta/search_group.json");

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    // ----- fixtures -----

    #[test]
    fn recorded_group_list_parses() {
        let (headers, body) = fixture(LIST_GROUPS, 0);
        let groups = parse_groups(&body).unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(
            groups[0],
            OktaGroup {
                id: "00gc04qatkiyWnGoq4x6".into(),
                name: "Everyone".into(),
                kind: GroupType::BuiltIn,
                last_membership_updated: Some(utc("2020-08-27T18:15:41Z")),
                last_updated: Some(utc("2020-05-13T13:29:23Z")),
            }
        );
        // `description: null` and unknown fields (_links, objectClass) are tolerated.
        assert_eq!(groups[1].name, "Group-Target-Test");
        assert_eq!(groups[1].kind, GroupType::Okta);
        assert_eq!(groups[2].name, "NBA Players");
        // Only rel="self": the last page.
        assert_eq!(
            next_link(link_values(&headers).unwrap().iter().map(String::as_str)),
            Ok(None)
        );
    }

    #[test]
    fn recorded_search_and_remove_parse() {
        let (headers, body) = fixture(SEARCH_GROUP, 0);
        assert_eq!(parse_groups(&body).unwrap().len(), 1);
        assert!(link_values(&headers).unwrap().is_empty());
        let (_, body) = fixture(REMOVE_GROUP, 1);
        let groups = parse_groups(&body).unwrap();
        assert_eq!(
            groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["Everyone", "NBA Players"]
        );
        let (_, body) = fixture(REMOVE_GROUP, 0);
        let members = parse_members(&body, "email").unwrap();
        assert_eq!(
            members[0].attribute.as_deref(),
            Some("John.Doe-Remove-Group@example.com")
        );
    }

    #[test]
    fn recorded_members_parse_staged_and_mixed_case() {
        let (headers, body) = fixture(GROUP_USERS, 0);
        let members = parse_members(&body, "email").unwrap();
        assert_eq!(
            members,
            [OktaMember {
                id: "00usfbpcapvcITLwi4x6".into(),
                status: "STAGED".into(),
                // Raw value: normalising case is the core's job, not the client's.
                attribute: Some("John.Doe-Activate@example.com".into()),
            }]
        );
        assert_eq!(
            parse_members(&body, "login").unwrap()[0]
                .attribute
                .as_deref(),
            Some("John.Doe-Activate@example.com")
        );
        assert_eq!(
            parse_members(&body, "firstName").unwrap()[0]
                .attribute
                .as_deref(),
            Some("John")
        );
        // Null profile fields and absent ones are None.
        assert_eq!(
            parse_members(&body, "secondEmail").unwrap()[0].attribute,
            None
        );
        assert_eq!(
            parse_members(&body, "mobilePhone").unwrap()[0].attribute,
            None
        );
        assert_eq!(parse_members(&body, "nickName").unwrap()[0].attribute, None);
        // `credentials.emails[].value` or `_links` never leak into the attribute.
        assert_eq!(parse_members(&body, "value").unwrap()[0].attribute, None);
        assert_eq!(
            next_link(link_values(&headers).unwrap().iter().map(String::as_str)),
            Ok(None)
        );

        let (_, body) = fixture(GROUP_USERS, 1);
        assert_eq!(parse_members(&body, "email").unwrap(), []);
    }

    #[test]
    fn recorded_429_headers_give_the_documented_wait() {
        // Date 18:15:50 GMT = 1598552150; reset 1598552209: 59 s + 1 s.
        let (headers, _) = fixture(LIST_GROUPS, 0);
        assert_eq!(
            rate_limit_wait(&headers, Duration::from_secs(90)),
            Duration::from_secs(60)
        );
        assert_eq!(
            rate_limit_wait(&headers, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }

    // ----- URLs and settings -----

    fn settings() -> OktaSettings {
        OktaSettings {
            org_url: Url::parse("https://acme.okta.com").unwrap(),
            auth: OktaAuth::Ssws(SecretString::from("00secret-token")),
            group_filter:
                r#"type eq "OKTA_GROUP" and lastMembershipUpdated gt "2024-01-01T00:00:00.000Z""#
                    .into(),
            page_size: 200,
            member_page_size: 1000,
            max_concurrency: 2,
            request_timeout: Duration::from_secs(5),
            max_retries: 2,
            max_retry_wait: Duration::from_secs(5),
            id_attribute: "email".into(),
            rate_limit_share: 0.5,
        }
    }

    #[test]
    fn the_changed_groups_filter_keeps_the_group_filter() {
        let since = utc("2026-01-02T03:04:05.678Z");
        assert_eq!(
            groups_changed_filter("", since),
            r#"lastUpdated gt "2026-01-02T03:04:05.678Z" or lastMembershipUpdated gt "2026-01-02T03:04:05.678Z""#
        );
        assert_eq!(
            groups_changed_filter(r#"type eq "OKTA_GROUP""#, since),
            r#"(type eq "OKTA_GROUP") and (lastUpdated gt "2026-01-02T03:04:05.678Z" or lastMembershipUpdated gt "2026-01-02T03:04:05.678Z")"#
        );
    }

    #[test]
    fn urls_are_encoded() {
        let source = OktaSource::new(settings()).unwrap();
        assert_eq!(
            source.groups_url(200).as_str(),
            "https://acme.okta.com/api/v1/groups?limit=200&filter=type%20eq%20%22OKTA_GROUP%22%20and%20lastMembershipUpdated%20gt%20%222024-01-01T00%3A00%3A00.000Z%22"
        );
        assert_eq!(
            source
                .endpoint(&["api", "v1", "groups", "00g/x?y", "users"])
                .as_str(),
            "https://acme.okta.com/api/v1/groups/00g%2Fx%3Fy/users"
        );
    }

    #[test]
    fn token_stays_out_of_debug_and_bad_tokens_are_refused() {
        let s = settings();
        assert!(!format!("{s:?}").contains("00secret"));
        let source = OktaSource::new(s).unwrap();
        assert!(!format!("{source:?}").contains("00secret"));
        assert!(matches!(&source.credentials, Credentials::Ssws(h) if h.is_sensitive()));
        let mut s = settings();
        s.auth = OktaAuth::Ssws(SecretString::from("line\nbreak"));
        assert!(matches!(
            OktaSource::new(s),
            Err(OktaBuildError::InvalidToken)
        ));
        let mut s = settings();
        s.org_url = Url::parse("mailto:x@acme.test").unwrap();
        assert!(matches!(OktaSource::new(s), Err(OktaBuildError::OrgUrl)));
    }

    #[test]
    fn settings_come_from_config() {
        use figment::Figment;
        use figment::providers::{Format, Toml};
        let toml = r#"
            [okta]
            org_url = "https://acme.okta.com"
            api_token = "00from-config"
            page_size = 50
            max_retries = 7
            max_retry_wait = "20s"
            [users]
            id_attribute = "login"
            [qbusiness]
            application_id = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
            index_id = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"
            region = "us-east-1"
        "#;
        let config = Config::from_figment(Figment::from(Toml::string(toml))).unwrap();
        let s = OktaSettings::from_config(&config).unwrap();
        assert_eq!(s.org_url.as_str(), "https://acme.okta.com/");
        assert!(matches!(&s.auth, OktaAuth::Ssws(t) if t.expose_secret() == "00from-config"));
        assert_eq!(s.group_filter, r#"type eq "OKTA_GROUP""#);
        assert_eq!((s.page_size, s.max_concurrency, s.max_retries), (50, 4, 7));
        assert_eq!(
            (s.request_timeout, s.max_retry_wait),
            (Duration::from_secs(30), Duration::from_secs(20))
        );
        assert_eq!(s.id_attribute, "login");
    }

    #[tokio::test]
    async fn odd_group_ids_are_refused_before_any_request() {
        let source = OktaSource::new(settings()).unwrap();
        for id in ["", ".", ".."] {
            let err = source.list_members(id).await.unwrap_err();
            assert_eq!(err.kind(), "malformed", "{id:?}");
        }
        assert_eq!(source.stats().requests, 0);
    }
}

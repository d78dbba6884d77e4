//! Okta Management API client: SSWS or OAuth ([`super::oauth`]) auth, `Link: rel="next"` paging,
//! 429/5xx retries with backoff.
//!
//! Read-only. A listing is complete or an error: any page that still fails after the retries, or
//! a `next` link outside `okta.org_url`, fails the whole listing. Response bodies are parsed
//! straight into the few fields the sync needs and dropped; headers, tokens and bodies are
//! never logged.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, DATE, HeaderMap, HeaderName, HeaderValue, LINK};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use url::Url;

use super::budget::{Budget, bucket_of};
use super::oauth::{AuthHeaders, ClientKey, OAuthClient, OAuthError, OAuthSettings};
use super::{DirectorySource, GroupType, MemberRead, OktaGroup, OktaMember, SourceError};
use crate::clock::SystemClock;
use crate::config::{Config, ConfigError, OktaAuthMode};

/// Sent as `User-Agent` on every request.
const USER_AGENT: &str = concat!("q-group-sync/", env!("CARGO_PKG_VERSION"));
/// Wait after a 429 that lacks `Date` or `X-Rate-Limit-Reset` (before the cap and jitter).
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// First backoff after a 5xx, timeout, connection error or broken body; doubles per retry.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest backoff after a 5xx, timeout, connection error or broken body (before jitter).
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Most jitter added to a 429 wait.
const RATE_LIMIT_JITTER: Duration = Duration::from_millis(500);
/// Okta's error code for "not found" (a deleted group).
const E_NOT_FOUND: &str = "E0000007";

const X_RATE_LIMIT_RESET: HeaderName = HeaderName::from_static("x-rate-limit-reset");
const X_OKTA_REQUEST_ID: HeaderName = HeaderName::from_static("x-okta-request-id");
const X_OKTA_RETRY_FOR: HeaderName = HeaderName::from_static("x-okta-retry-for");
const X_OKTA_RETRY_COUNT: HeaderName = HeaderName::from_static("x-okta-retry-count");

/// Everything the Okta client needs, resolved from [`Config`] (credentials included).
#[derive(Debug, Clone)]
pub struct OktaSettings {
    /// The org's base URL; the only origin requests (and followed `next` links) may go to.
    pub org_url: Url,
    /// How requests authenticate; `Debug` shows no secret.
    pub auth: OktaAuth,
    /// `filter` for `GET /api/v1/groups`, sent URL-encoded.
    pub group_filter: String,
    /// `limit` on every list call.
    pub page_size: u32,
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
        let o = &config.okta;
        let auth = match o.auth {
            OktaAuthMode::Ssws => OktaAuth::Ssws(config.okta_token()?),
            OktaAuthMode::OAuth => {
                let pem = config.okta_private_key_pem()?;
                let path = o
                    .private_key_file
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""));
                let key = ClientKey::from_pem(pem.expose_secret()).map_err(|e| {
                    ConfigError(format!("okta.private_key_file: {} {e}", path.display()))
                })?;
                OktaAuth::OAuth(OAuthSettings {
                    client_id: o.client_id.clone().unwrap_or_default(),
                    key,
                    key_id: o.key_id.clone(),
                    scopes: o.scopes.clone(),
                    dpop: o.dpop,
                })
            }
        };
        Ok(OktaSettings {
            org_url: o.org_url.clone(),
            auth,
            group_filter: o.group_filter.clone(),
            page_size: o.page_size,
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

/// How each request authenticates.
enum Credentials {
    /// `SSWS <token>`, marked sensitive; the only copy of the token the client keeps.
    Ssws(HeaderValue),
    /// The shared OAuth token (and DPoP proofs), refreshed as needed.
    OAuth(Arc<OAuthClient>),
}

impl Credentials {
    /// The auth headers of one attempt: for DPoP a fresh proof every time.
    async fn headers(&self, url: &Url) -> Result<AuthHeaders, SourceError> {
        match self {
            Credentials::Ssws(value) => Ok(AuthHeaders {
                authorization: value.clone(),
                dpop: None,
                generation: 0,
            }),
            Credentials::OAuth(client) => client.headers("GET", url).await,
        }
    }
}

/// The Okta [`DirectorySource`]: `GET /api/v1/groups` and `GET /api/v1/groups/{id}/users`.
pub struct OktaSource {
    http: reqwest::Client,
    org_url: Url,
    credentials: Credentials,
    group_filter: String,
    page_size: u32,
    max_retries: u32,
    max_retry_wait: Duration,
    id_attribute: String,
    /// Bounds requests in flight to `max_concurrency`; not held while waiting to retry.
    permits: Semaphore,
    /// Paces requests to this client's share of each rate-limit bucket.
    budget: Budget,
    counters: Counters,
}

impl fmt::Debug for OktaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OktaSource")
            .field("org_url", &self.org_url.as_str())
            .finish_non_exhaustive()
    }
}

/// One page, or Okta's 404 E0000007.
pub(super) enum Fetched<T> {
    Page { items: T, next: Option<Url> },
    NotFound,
}

/// What one attempt at a request produced, when it did not fail for good.
enum Attempt<T> {
    Done(Fetched<T>),
    /// OAuth: a 401 the client handled (new token or DPoP nonce); send again once, at once.
    Reauth,
    Retry {
        cause: RetryCause,
        request_id: Option<HeaderValue>,
    },
}

/// A failure worth another attempt; becomes the matching [`SourceError`] when retries run out.
enum RetryCause {
    RateLimited { wait: Duration },
    Server(u16),
    Transport(reqwest::Error),
    Malformed(String),
}

impl RetryCause {
    fn into_error(self, path: &str) -> SourceError {
        let path = path.to_owned();
        match self {
            RetryCause::RateLimited { .. } => SourceError::RateLimited { path },
            RetryCause::Server(status) => SourceError::Server { path, status },
            RetryCause::Transport(source) => SourceError::Transport { path, source },
            RetryCause::Malformed(detail) => SourceError::Malformed { path, detail },
        }
    }

    fn label(&self) -> &'static str {
        match self {
            RetryCause::RateLimited { .. } => "rate_limited",
            RetryCause::Server(_) => "server",
            RetryCause::Transport(e) if e.is_timeout() => "timeout",
            RetryCause::Transport(_) => "transport",
            RetryCause::Malformed(_) => "malformed",
        }
    }
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
            max_retries: settings.max_retries,
            max_retry_wait: settings.max_retry_wait,
            id_attribute: settings.id_attribute,
            permits: Semaphore::new(settings.max_concurrency.max(1)),
            budget: Budget::new(settings.rate_limit_share, settings.max_concurrency),
            counters: Counters::default(),
        })
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

    /// `{org}/api/v1/users?limit=N&filter=…` for the users updated after `since`.
    fn users_url(&self, since: DateTime<Utc>, limit: u32) -> Url {
        let mut url = self.endpoint(&["api", "v1", "users"]);
        url.set_query(Some(&format!(
            "limit={limit}&filter={}",
            encode_query_value(&users_updated_filter(since))
        )));
        url
    }

    /// One read-only `GET /api/v1/users?limit=1&filter=…` (for `check-config`): proves the
    /// token may list users (`okta.users.read`), which every incremental pass needs.
    pub async fn check_users(&self) -> Result<usize, SourceError> {
        let url = self.users_url(Utc::now(), 1);
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

    /// `okta.org_url`: the only origin requests go to.
    pub(super) fn org_url(&self) -> &Url {
        &self.org_url
    }

    /// `{org}/{segments…}` with each segment percent-encoded.
    pub(super) fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.org_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .expect("new() checked org_url can be a base")
            .clear()
            .extend(segments);
        url
    }

    /// Every item of a listing, following `rel="next"` to the end; `None` on 404 E0000007.
    pub(super) async fn paginate<T, F>(
        &self,
        first: Url,
        parse: &F,
    ) -> Result<Option<Vec<T>>, SourceError>
    where
        F: Fn(&[u8]) -> Result<Vec<T>, serde_json::Error> + Sync,
        T: Send,
    {
        let mut all = Vec::new();
        let mut visited = BTreeSet::new();
        let mut url = first;
        loop {
            visited.insert(url.as_str().to_owned());
            match self.fetch_page(&url, parse).await? {
                Fetched::NotFound => return Ok(None),
                Fetched::Page { items, next: None } => {
                    all.extend(items);
                    return Ok(Some(all));
                }
                Fetched::Page {
                    items,
                    next: Some(next),
                } => {
                    all.extend(items);
                    if visited.contains(next.as_str()) {
                        return Err(SourceError::Malformed {
                            path: url.path().to_owned(),
                            detail: "the next link points to a page already read (pagination loop)"
                                .to_owned(),
                        });
                    }
                    url = next;
                }
            }
        }
    }

    /// One page, with the retries the settings allow.
    pub(super) async fn fetch_page<T, F>(
        &self,
        url: &Url,
        parse: &F,
    ) -> Result<Fetched<T>, SourceError>
    where
        F: Fn(&[u8]) -> Result<T, serde_json::Error> + Sync,
        T: Send,
    {
        let mut retries = 0u32;
        let mut retry_for = None;
        let mut reauthed = false;
        loop {
            let (cause, request_id) = match self
                .attempt(url, retries, retry_for.take(), !reauthed, parse)
                .await?
            {
                Attempt::Done(fetched) => return Ok(fetched),
                Attempt::Reauth => {
                    reauthed = true;
                    continue;
                }
                Attempt::Retry { cause, request_id } => (cause, request_id),
            };
            if retries >= self.max_retries {
                return Err(cause.into_error(url.path()));
            }
            let wait = match &cause {
                RetryCause::RateLimited { wait } => {
                    let wait = *wait + jitter(RATE_LIMIT_JITTER);
                    // Every request to this bucket waits, not just this one, and the pace slows.
                    self.budget.throttled(bucket_of(url.path()), wait);
                    crate::metrics::rate_limit_wait("okta", "throttled", wait);
                    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                    self.counters
                        .rate_limit_wait_ms
                        .fetch_add(ms, Ordering::Relaxed);
                    wait
                }
                _ => {
                    let base = backoff(retries, self.max_retry_wait);
                    base / 2 + jitter(base / 2)
                }
            };
            retries += 1;
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                method = "GET",
                url = path_and_query(url),
                cause = cause.label(),
                retry = retries,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying Okta request"
            );
            tokio::time::sleep(wait).await;
            retry_for = request_id;
        }
    }

    /// One HTTP request under a concurrency permit. `Err` is final; `Ok(Retry)` may be retried;
    /// `Ok(Reauth)` (OAuth 401, only while `allow_reauth`) is sent again at once.
    async fn attempt<T, F>(
        &self,
        url: &Url,
        retries: u32,
        retry_for: Option<HeaderValue>,
        allow_reauth: bool,
        parse: &F,
    ) -> Result<Attempt<T>, SourceError>
    where
        F: Fn(&[u8]) -> Result<T, serde_json::Error> + Sync,
    {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if retries > 0 {
            headers.insert(X_OKTA_RETRY_COUNT, HeaderValue::from(retries));
            if let Some(id) = retry_for {
                headers.insert(X_OKTA_RETRY_FOR, id);
            }
        }
        let path = url.path();
        let bucket = bucket_of(path);
        let paced = self.budget.acquire(bucket).await;
        if paced >= Duration::from_millis(1) {
            crate::metrics::rate_limit_wait("okta", "pacing", paced);
        }
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        // After the permit: a DPoP proof's iat is as fresh as it can be.
        let auth = self.credentials.headers(url).await?;
        let generation = auth.generation;
        auth.apply(&mut headers);
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(
            method = "GET",
            url = path_and_query(url),
            attempt = retries + 1,
            "Okta request"
        );
        let response = match self.http.get(url.clone()).headers(headers).send().await {
            Ok(response) => response,
            Err(source) if source.is_builder() => {
                return Err(SourceError::Transport {
                    path: path.to_owned(),
                    source,
                });
            }
            Err(e) => {
                crate::metrics::api_request("okta", operation(path), None);
                return Ok(Attempt::Retry {
                    cause: RetryCause::Transport(e),
                    request_id: None,
                });
            }
        };
        let status = response.status();
        crate::metrics::api_request("okta", operation(path), Some(status.as_u16()));
        self.budget.observe(bucket, response.headers());
        let request_id = response.headers().get(X_OKTA_REQUEST_ID).cloned();
        tracing::debug!(
            method = "GET",
            url = path_and_query(url),
            status = status.as_u16(),
            attempt = retries + 1,
            "Okta response"
        );
        let retry = |cause| {
            Ok(Attempt::Retry {
                cause,
                request_id: request_id.clone(),
            })
        };
        match status {
            StatusCode::OK => {
                let links =
                    link_values(response.headers()).map_err(|detail| SourceError::Malformed {
                        path: path.to_owned(),
                        detail,
                    })?;
                let body = match response.bytes().await {
                    Ok(body) => body,
                    Err(e) => return retry(RetryCause::Transport(e)),
                };
                drop(permit);
                let items = match parse(&body) {
                    Ok(items) => items,
                    Err(e) => return retry(RetryCause::Malformed(e.to_string())),
                };
                drop(body);
                let next = self.resolve_next(url, &links)?;
                Ok(Attempt::Done(Fetched::Page { items, next }))
            }
            StatusCode::TOO_MANY_REQUESTS => {
                self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                let wait = rate_limit_wait(response.headers(), self.max_retry_wait);
                retry(RetryCause::RateLimited { wait })
            }
            StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => retry(RetryCause::Server(status.as_u16())),
            StatusCode::UNAUTHORIZED => {
                if let Credentials::OAuth(client) = &self.credentials
                    && allow_reauth
                {
                    // E0000011, invalid_dpop_proof or use_dpop_nonce: refresh/retry once.
                    client.rejected(response.headers(), generation).await;
                    return Ok(Attempt::Reauth);
                }
                let code = error_body(response).await.code_or_status(status);
                Err(match &self.credentials {
                    Credentials::Ssws(_) => SourceError::Unauthorized { code },
                    Credentials::OAuth(_) => OAuthError::TokenRejected { code }.into(),
                })
            }
            StatusCode::FORBIDDEN => {
                let code = error_body(response).await.code_or_status(status);
                Err(match &self.credentials {
                    Credentials::Ssws(_) => SourceError::Forbidden {
                        code,
                        path: path.to_owned(),
                    },
                    Credentials::OAuth(_) => OAuthError::Forbidden {
                        code,
                        path: path.to_owned(),
                    }
                    .into(),
                })
            }
            StatusCode::BAD_REQUEST => {
                let err = error_body(response).await;
                Err(SourceError::BadRequest {
                    path: path.to_owned(),
                    code: err.code_or_status(status),
                    summary: err.error_summary.unwrap_or_default(),
                })
            }
            StatusCode::NOT_FOUND => {
                // Only Okta's own E0000007 means "deleted"; a proxy's bare 404 is an error.
                let err = error_body(response).await;
                if err.error_code.as_deref() == Some(E_NOT_FOUND) {
                    Ok(Attempt::Done(Fetched::NotFound))
                } else {
                    Err(SourceError::Server {
                        path: path.to_owned(),
                        status: 404,
                    })
                }
            }
            other => Err(SourceError::Server {
                path: path.to_owned(),
                status: other.as_u16(),
            }),
        }
    }

    /// The `rel="next"` URL of a page, resolved against it; only ever on the org's origin.
    fn resolve_next(&self, current: &Url, links: &[String]) -> Result<Option<Url>, SourceError> {
        let path = current.path();
        let target =
            next_link(links.iter().map(String::as_str)).map_err(|e| SourceError::Malformed {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        let Some(target) = target else {
            return Ok(None);
        };
        let next = current.join(target).map_err(|e| SourceError::Malformed {
            path: path.to_owned(),
            detail: format!("the next link is not a URL: {e}"),
        })?;
        if !same_origin(&next, &self.org_url) {
            return Err(SourceError::ForeignLink {
                path: path.to_owned(),
                link_origin: next.origin().ascii_serialization(),
            });
        }
        Ok(Some(next))
    }
}

impl DirectorySource for OktaSource {
    async fn list_groups(&self) -> Result<Vec<OktaGroup>, SourceError> {
        let url = self.groups_url(self.page_size);
        let path = url.path().to_owned();
        match self.paginate(url, &parse_groups).await? {
            Some(groups) => Ok(groups),
            None => Err(SourceError::Server { path, status: 404 }),
        }
    }

    async fn list_members(&self, group_id: &str) -> Result<MemberRead, SourceError> {
        if group_id.is_empty() || group_id == "." || group_id == ".." {
            return Err(SourceError::Malformed {
                path: "/api/v1/groups/{id}/users".to_owned(),
                detail: format!("group id {group_id:?} cannot be used in a URL"),
            });
        }
        let mut url = self.endpoint(&["api", "v1", "groups", group_id, "users"]);
        url.set_query(Some(&format!("limit={}", self.page_size)));
        let attr = self.id_attribute.as_str();
        let parse = |body: &[u8]| parse_members(body, attr);
        Ok(match self.paginate(url, &parse).await? {
            Some(members) => MemberRead::Members(members),
            None => MemberRead::GroupGone,
        })
    }

    async fn list_users_updated_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OktaMember>, SourceError> {
        let url = self.users_url(since, USERS_PAGE_SIZE.min(self.page_size));
        let path = url.path().to_owned();
        let attr = self.id_attribute.as_str();
        let parse = |body: &[u8]| parse_members(body, attr);
        match self.paginate(url, &parse).await? {
            Some(users) => Ok(users),
            None => Err(SourceError::Server { path, status: 404 }),
        }
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<String>, SourceError> {
        if user_id.is_empty() || user_id == "." || user_id == ".." {
            return Err(SourceError::Malformed {
                path: "/api/v1/users/{id}/groups".to_owned(),
                detail: format!("user id {user_id:?} cannot be used in a URL"),
            });
        }
        let mut url = self.endpoint(&["api", "v1", "users", user_id, "groups"]);
        url.set_query(Some(&format!("limit={}", self.page_size)));
        Ok(self
            .paginate(url, &super::events::parse_group_ids)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|id| id.as_str().to_owned())
            .collect())
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

/// `path?query` of a URL: what logs may show (no host, no credentials).
fn path_and_query(url: &Url) -> &str {
    &url[url::Position::BeforePath..url::Position::AfterQuery]
}

/// Percent-encodes everything but RFC 3986 unreserved characters (spaces become `%20`).
pub(super) fn encode_query_value(value: &str) -> String {
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

/// The `errorCode`/`errorSummary` of an Okta error body; other fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_code: Option<String>,
    error_summary: Option<String>,
}

impl ErrorBody {
    fn code_or_status(&self, status: StatusCode) -> String {
        self.error_code
            .clone()
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()))
    }
}

/// Reads an error body; a missing or non-JSON body gives an empty [`ErrorBody`].
async fn error_body(response: reqwest::Response) -> ErrorBody {
    match response.bytes().await {
        Ok(body) => serde_json::from_slice(&body).unwrap_or_default(),
        Err(_) => ErrorBody::default(),
    }
}

/// Every `link` header line as text; a line that is not UTF-8 is an error, never skipped
/// (it might hold the next link).
fn link_values(headers: &HeaderMap) -> Result<Vec<String>, String> {
    headers
        .get_all(LINK)
        .iter()
        .map(|v| {
            std::str::from_utf8(v.as_bytes())
                .map(str::to_owned)
                .map_err(|_| "a link header is not valid UTF-8".to_owned())
        })
        .collect()
}

/// A `Link` header that cannot be read with certainty.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("a link header entry has no <target>: {0:?}")]
    Syntax(String),
    #[error("the link headers hold more than one different rel=\"next\" target")]
    AmbiguousNext,
}

/// The `rel="next"` target among all `link` header values, or `None` on the last page.
///
/// Values may be separate header lines or comma-joined; commas inside `<…>` or quotes do not
/// split entries. `rel` is matched case-insensitively, quoted or not, and may list several
/// space-separated relation types.
pub(crate) fn next_link<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Option<&'a str>, LinkError> {
    let mut next: Option<&'a str> = None;
    for value in values {
        for entry in split_outside(value, ',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (target, params) = entry
                .strip_prefix('<')
                .and_then(|rest| rest.split_once('>'))
                .ok_or_else(|| LinkError::Syntax(entry.to_owned()))?;
            if !rel_is_next(params) {
                continue;
            }
            let target = target.trim();
            match next {
                Some(seen) if seen != target => return Err(LinkError::AmbiguousNext),
                _ => next = Some(target),
            }
        }
    }
    Ok(next)
}

/// True when the first `rel` parameter of a link entry lists `next`.
fn rel_is_next(params: &str) -> bool {
    for param in split_outside(params, ';') {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("rel") {
            // RFC 8288 §3: only the first rel parameter counts.
            return unquote(value.trim())
                .split_ascii_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"));
        }
    }
    false
}

/// Strips the double quotes around a parameter value (and backslash escapes inside them).
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    c => out.push(c),
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

/// Splits `s` on `sep`, except inside `<…>` and inside double-quoted strings.
fn split_outside(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_angle, mut in_quotes, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '<' if !in_angle => in_angle = true,
            '>' if in_angle => in_angle = false,
            '"' if !in_angle => in_quotes = true,
            c if c == sep && !in_angle => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// True when both URLs have the same scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// Wait before retrying a 429: `max(1 s, X-Rate-Limit-Reset − Date + 1 s)`, using the response's
/// own `Date` (not the local clock) and the smallest of duplicated reset headers; a bounded
/// default if either is missing or unreadable. Capped at `cap`; jitter is added by the caller.
pub(crate) fn rate_limit_wait(headers: &HeaderMap, cap: Duration) -> Duration {
    let reset = headers
        .get_all(X_RATE_LIMIT_RESET)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .min();
    let date = headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let wait = match (reset, date) {
        (Some(reset), Some(date)) => {
            let secs = reset.saturating_sub(date).saturating_add(1).max(1);
            Duration::from_secs(secs)
        }
        _ => DEFAULT_RATE_LIMIT_WAIT,
    };
    wait.min(cap)
}

/// Backoff before retry number `retry + 1` after a 5xx, timeout, connection error or broken
/// body: 500 ms doubling, capped at `min(cap, 30 s)`. The caller adds jitter.
pub(crate) fn backoff(retry: u32, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
    BACKOFF_BASE
        .saturating_mul(factor)
        .min(BACKOFF_CAP)
        .min(cap)
}

/// A uniformly random duration in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::rng().random_range(0..=max_ms))
}

// ---------- parsing ----------

/// A group as Okta sends it; unknown fields (`_links`, `objectClass`, …) are skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireGroup {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "rfc3339")]
    last_membership_updated: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "rfc3339")]
    last_updated: Option<DateTime<Utc>>,
    profile: WireGroupProfile,
}

#[derive(Deserialize)]
struct WireGroupProfile {
    name: String,
}

fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| de::Error::custom(format!("date {s:?} is not RFC 3339: {e}"))),
    }
}

/// One page of `GET /api/v1/groups`.
fn parse_groups(body: &[u8]) -> Result<Vec<OktaGroup>, serde_json::Error> {
    let wire: Vec<WireGroup> = serde_json::from_slice(body)?;
    Ok(wire
        .into_iter()
        .map(|g| OktaGroup {
            id: g.id,
            name: g.profile.name,
            kind: GroupType::parse(&g.kind),
            last_membership_updated: g.last_membership_updated,
            last_updated: g.last_updated,
        })
        .collect())
}

/// One page of `GET /api/v1/groups/{id}/users`, keeping only `id`, `status` and
/// `profile.<attr>` of each user.
fn parse_members(body: &[u8], attr: &str) -> Result<Vec<OktaMember>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let members = MembersSeed { attr }.deserialize(&mut de)?;
    de.end()?;
    Ok(members)
}

/// Seed for a JSON array of users.
#[derive(Clone, Copy)]
struct MembersSeed<'a> {
    attr: &'a str,
}

impl<'de> DeserializeSeed<'de> for MembersSeed<'_> {
    type Value = Vec<OktaMember>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed<'_> {
    type Value = Vec<OktaMember>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of Okta users")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1000));
        while let Some(member) = seq.next_element_seed(MemberSeed { attr: self.attr })? {
            members.push(member);
        }
        Ok(members)
    }
}

/// Seed for one user object.
#[derive(Clone, Copy)]
struct MemberSeed<'a> {
    attr: &'a str,
}

impl<'de> DeserializeSeed<'de> for MemberSeed<'_> {
    type Value = OktaMember;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed<'_> {
    type Value = OktaMember;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Okta user object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut id, mut status, mut attribute) = (None, None, None);
        while let Some(field) = map.next_key::<UserField>()? {
            match field {
                UserField::Id if id.is_some() => return Err(de::Error::duplicate_field("id")),
                UserField::Id => id = Some(map.next_value::<String>()?),
                UserField::Status if status.is_some() => {
                    return Err(de::Error::duplicate_field("status"));
                }
                UserField::Status => status = Some(map.next_value::<String>()?),
                UserField::Profile if attribute.is_some() => {
                    return Err(de::Error::duplicate_field("profile"));
                }
                UserField::Profile => {
                    attribute = Some(map.next_value_seed(ProfileSeed { attr: self.attr })?)
                }
                UserField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OktaMember {
            id: id.ok_or_else(|| de::Error::missing_field("id"))?,
            status: status.ok_or_else(|| de::Error::missing_field("status"))?,
            attribute: attribute.flatten(),
        })
    }
}

/// The user fields the sync reads; everything else is skipped.
enum UserField {
    Id,
    Status,
    Profile,
    Other,
}

impl<'de> Deserialize<'de> for UserField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = UserField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UserField, E> {
                Ok(match v {
                    "id" => UserField::Id,
                    "status" => UserField::Status,
                    "profile" => UserField::Profile,
                    _ => UserField::Other,
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

/// Seed for `profile`: yields `profile.<attr>` if it is a non-empty string.
#[derive(Clone, Copy)]
struct ProfileSeed<'a> {
    attr: &'a str,
}

impl<'de> DeserializeSeed<'de> for ProfileSeed<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ProfileSeed<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user profile object or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value: Option<Option<String>> = None;
        while let Some(is_attr) = map.next_key_seed(KeyIs(self.attr))? {
            if !is_attr {
                map.next_value::<IgnoredAny>()?;
            } else if value.is_some() {
                return Err(de::Error::custom(format!(
                    "duplicate field `{}` in profile",
                    self.attr
                )));
            } else {
                value = Some(map.next_value::<AttrValue>()?.0);
            }
        }
        Ok(value.flatten())
    }
}

/// Seed for a map key: true when it equals the wanted attribute name.
struct KeyIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a profile attribute name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// A profile attribute value: `Some` for a non-empty string; `None` for null, empty, numbers,
/// booleans, arrays and objects (skipped without being kept).
struct AttrValue(Option<String>);

impl<'de> Deserialize<'de> for AttrValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AttrVisitor;
        impl<'de> Visitor<'de> for AttrVisitor {
            type Value = AttrValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AttrValue, E> {
                Ok(AttrValue((!v.is_empty()).then(|| v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<AttrValue, E> {
                Ok(AttrValue((!v.is_empty()).then_some(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<AttrValue, D::Error> {
                AttrValue::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AttrValue, A::Error> {
                IgnoredAny.visit_seq(seq)?;
                Ok(AttrValue(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AttrValue, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(AttrValue(None))
            }
        }
        d.deserialize_any(AttrVisitor)
    }
}

/// Metrics label of an Okta request path.
fn operation(path: &str) -> &'static str {
    if path.trim_end_matches('/') == "/api/v1/groups" {
        "list_groups"
    } else if path.trim_end_matches('/') == "/api/v1/logs" {
        "poll_logs"
    } else if path.starts_with("/api/v1/users/") && path.ends_with("/groups") {
        "list_user_groups"
    } else if path.trim_end_matches('/') == "/api/v1/users" {
        "list_users"
    } else if path.ends_with("/users") {
        "list_members"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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

    const LIST_GROUPS: &str = include_str!("../../tests/fixtures/okta/list_groups.json");
    const GROUP_USERS: &str = include_str!("../../tests/fixtures/okta/group_users.json");
    const REMOVE_GROUP: &str = include_str!("../../tests/fixtures/okta/remove_group.json");
    const SEARCH_GROUP: &str = include_str!("../../tests/fixtures/okta/search_group.json");

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

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

    // ----- member parsing -----

    #[test]
    fn member_attribute_is_a_non_empty_string_or_none() {
        let body = br#"[
            {"id":"u1","status":"ACTIVE","profile":{"email":"a@x.test","extra":{"deep":[1,2,{"email":"no"}]}}},
            {"id":"u2","status":"DEPROVISIONED","profile":{"email":null}},
            {"id":"u3","status":"ACTIVE","profile":{"login":"c"}},
            {"id":"u4","status":"ACTIVE","profile":{"email":42}},
            {"id":"u5","status":"ACTIVE","profile":{"email":["a@x.test"]}},
            {"id":"u6","status":"ACTIVE","profile":{"email":{"v":"a@x.test"}}},
            {"id":"u7","status":"ACTIVE","profile":{"email":""}},
            {"id":"u8","status":"SOMETHING_NEW","profile":null},
            {"status":"ACTIVE","id":"u9","_links":{"self":{"href":"x"}},"email":"top-level is not profile"},
            {"id":"u10","status":"ACTIVE","profile":{"email":"esc\u0061ped@x.test"}}
        ]"#;
        let members = parse_members(body, "email").unwrap();
        let got: Vec<_> = members
            .iter()
            .map(|m| (m.id.as_str(), m.status.as_str(), m.attribute.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("u1", "ACTIVE", Some("a@x.test")),
                ("u2", "DEPROVISIONED", None),
                ("u3", "ACTIVE", None),
                ("u4", "ACTIVE", None),
                ("u5", "ACTIVE", None),
                ("u6", "ACTIVE", None),
                ("u7", "ACTIVE", None),
                ("u8", "SOMETHING_NEW", None),
                ("u9", "ACTIVE", None),
                ("u10", "ACTIVE", Some("escaped@x.test")),
            ]
        );
    }

    #[test]
    fn broken_member_bodies_are_errors() {
        for (body, needle) in [
            (&br#"[{"id":"u1","status":"ACTIVE","profile":{"email":"a@x.test"}},{"id":"u2","sta"#[..], "EOF"),
            (br#"{"not": "an array"}"#, "invalid type"),
            (br#"[{"status":"ACTIVE"}]"#, "missing field `id`"),
            (br#"[{"id":"u1"}]"#, "missing field `status`"),
            (br#"[{"id":"u1","id":"u2","status":"ACTIVE"}]"#, "duplicate field"),
            (br#"[{"id":"u1","status":"ACTIVE","profile":{"email":"a","email":"b"}}]"#, "duplicate field"),
            (br#"[{"id":"u1","status":"ACTIVE","profile":"x"}]"#, "invalid type"),
            (br#"[] trailing"#, "trailing characters"),
        ] {
            let err = parse_members(body, "email").unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn broken_group_bodies_are_errors() {
        let ok = r#"{"id":"g1","type":"APP_GROUP","profile":{"name":"n","description":null,"windowsDomainQualifiedName":"x"},"lastMembershipUpdated":null}"#;
        let groups = parse_groups(format!("[{ok}]").as_bytes()).unwrap();
        assert_eq!(groups[0].kind, GroupType::App);
        assert_eq!(groups[0].last_membership_updated, None);
        assert_eq!(groups[0].last_updated, None);
        let odd = ok.replace("APP_GROUP", "FUTURE_GROUP");
        assert_eq!(
            parse_groups(format!("[{odd}]").as_bytes()).unwrap()[0].kind,
            GroupType::Other("FUTURE_GROUP".into())
        );
        for body in [
            r#"[{"id":"g1","type":"OKTA_GROUP","profile":{}}]"#.to_owned(),
            r#"[{"id":"g1","type":"OKTA_GROUP","profile":{"name":"n"},"lastUpdated":"yesterday"}]"#
                .to_owned(),
            format!("[{ok}")[..20].to_owned(),
        ] {
            assert!(parse_groups(body.as_bytes()).is_err(), "{body}");
        }
    }

    // ----- Link headers -----

    #[test]
    fn next_link_from_separate_lines() {
        let lines = [
            r#"<https://acme.okta.com/api/v1/groups?limit=2>; rel="self""#,
            r#"<https://acme.okta.com/api/v1/groups?after=00g2&limit=2>; rel="next""#,
        ];
        assert_eq!(
            next_link(lines),
            Ok(Some(
                "https://acme.okta.com/api/v1/groups?after=00g2&limit=2"
            ))
        );
    }

    #[test]
    fn next_link_from_comma_joined_line_with_commas_in_urls() {
        let line = r#"<https://acme.okta.com/api/v1/groups?limit=2&filter=a,b>; rel="self", <https://acme.okta.com/api/v1/groups?after=x,y&limit=2>; rel="next""#;
        assert_eq!(
            next_link([line]),
            Ok(Some(
                "https://acme.okta.com/api/v1/groups?after=x,y&limit=2"
            ))
        );
        // The same with the next entry first, and a title holding a comma.
        let line =
            r#"<https://a.test/n?after=1>; title="a, b"; rel=next,<https://a.test/s>; rel=self"#;
        assert_eq!(next_link([line]), Ok(Some("https://a.test/n?after=1")));
    }

    #[test]
    fn next_link_rel_forms() {
        for line in [
            "<https://a.test/n>; rel=next",
            "<https://a.test/n>; REL=\"NEXT\"",
            "<https://a.test/n> ;rel = \"prefetch next\"",
            "<https://a.test/n>; type=\"x\"; rel=\"Next\"",
        ] {
            assert_eq!(next_link([line]), Ok(Some("https://a.test/n")), "{line}");
        }
        for line in [
            "<https://a.test/n>; rel=\"self\"",
            "<https://a.test/n>; rel=\"nextpage\"",
            "<https://a.test/n>; title=\"next\"",
            // Only the first rel parameter counts (RFC 8288 §3).
            "<https://a.test/n>; rel=self; rel=next",
        ] {
            assert_eq!(next_link([line]), Ok(None), "{line}");
        }
        assert_eq!(next_link([]), Ok(None));
        assert_eq!(next_link(["", " , "]), Ok(None));
    }

    #[test]
    fn next_link_refuses_what_it_cannot_read() {
        assert!(matches!(
            next_link(["https://a.test/n; rel=next"]),
            Err(LinkError::Syntax(_))
        ));
        assert!(matches!(
            next_link(["<https://a.test/n; rel=next"]),
            Err(LinkError::Syntax(_))
        ));
        assert_eq!(
            next_link([
                "<https://a.test/1>; rel=next",
                "<https://a.test/2>; rel=next"
            ]),
            Err(LinkError::AmbiguousNext)
        );
        // The same target twice (e.g. a proxy repeating the header) is fine.
        assert_eq!(
            next_link([
                "<https://a.test/1>; rel=next",
                "<https://a.test/1>; rel=\"next\""
            ]),
            Ok(Some("https://a.test/1"))
        );
    }

    #[test]
    fn link_values_reads_every_line() {
        let map = headers(&[
            ("link", "<https://a.test/s>; rel=self"),
            ("link", "<https://a.test/n>; rel=next"),
        ]);
        let values = link_values(&map).unwrap();
        assert_eq!(values.len(), 2);
        assert_eq!(
            next_link(values.iter().map(String::as_str)),
            Ok(Some("https://a.test/n"))
        );
    }

    // ----- origin -----

    #[test]
    fn origin_check() {
        let org = Url::parse("https://acme.okta.com/").unwrap();
        for same in [
            "https://acme.okta.com/api/v1/groups?after=x",
            "https://ACME.okta.com:443/x",
            "https://acme.okta.com",
        ] {
            assert!(same_origin(&Url::parse(same).unwrap(), &org), "{same}");
        }
        for other in [
            "http://acme.okta.com/api/v1/groups",
            "https://acme.okta.com:8443/api/v1/groups",
            "https://evil.example/api/v1/groups",
            "https://acme.okta.com.evil.example/",
            "https://evil.example/@acme.okta.com/",
        ] {
            assert!(!same_origin(&Url::parse(other).unwrap(), &org), "{other}");
        }
        let local = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert!(same_origin(
            &Url::parse("http://127.0.0.1:8080/api/v1/groups").unwrap(),
            &local
        ));
        assert!(!same_origin(
            &Url::parse("http://127.0.0.1:8081/api/v1/groups").unwrap(),
            &local
        ));
        assert!(!same_origin(
            &Url::parse("http://localhost:8080/api/v1/groups").unwrap(),
            &local
        ));
    }

    // ----- waits -----

    #[test]
    fn rate_limit_wait_uses_reset_minus_date() {
        let cap = Duration::from_secs(90);
        let date = "Thu, 27 Aug 2020 18:15:50 GMT"; // 1598552150
        let wait = |pairs: &[(&str, &str)]| rate_limit_wait(&headers(pairs), cap);
        assert_eq!(
            wait(&[("date", date), ("x-rate-limit-reset", "1598552160")]),
            Duration::from_secs(11)
        );
        // Reset already passed, or equal: at least 1 s.
        assert_eq!(
            wait(&[("date", date), ("x-rate-limit-reset", "1598552100")]),
            Duration::from_secs(1)
        );
        assert_eq!(
            wait(&[("date", date), ("x-rate-limit-reset", "1598552150")]),
            Duration::from_secs(1)
        );
        // Duplicated reset headers (separate or joined): the smallest.
        assert_eq!(
            wait(&[
                ("date", date),
                ("x-rate-limit-reset", "1598552170"),
                ("x-rate-limit-reset", "1598552155")
            ]),
            Duration::from_secs(6)
        );
        assert_eq!(
            wait(&[
                ("date", date),
                ("x-rate-limit-reset", "1598552170, 1598552152")
            ]),
            Duration::from_secs(3)
        );
        // Capped.
        assert_eq!(
            wait(&[("date", date), ("x-rate-limit-reset", "1598559999")]),
            cap
        );
        // Missing or unreadable Date or reset: the bounded default, capped too.
        assert_eq!(
            wait(&[("x-rate-limit-reset", "1598552160")]),
            DEFAULT_RATE_LIMIT_WAIT
        );
        assert_eq!(wait(&[("date", date)]), DEFAULT_RATE_LIMIT_WAIT);
        assert_eq!(
            wait(&[("date", "yesterday"), ("x-rate-limit-reset", "1598552160")]),
            DEFAULT_RATE_LIMIT_WAIT
        );
        assert_eq!(
            wait(&[("date", date), ("x-rate-limit-reset", "soon")]),
            DEFAULT_RATE_LIMIT_WAIT
        );
        assert_eq!(
            rate_limit_wait(&HeaderMap::new(), Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let cap = Duration::from_secs(90);
        let got: Vec<_> = (0..8).map(|n| backoff(n, cap).as_millis()).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(backoff(3, Duration::from_secs(3)), Duration::from_secs(3));
        assert_eq!(backoff(u32::MAX, cap), BACKOFF_CAP);
    }

    #[test]
    fn jitter_stays_in_range() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(250)) <= Duration::from_millis(250));
        }
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
            max_concurrency: 2,
            request_timeout: Duration::from_secs(5),
            max_retries: 2,
            max_retry_wait: Duration::from_secs(5),
            id_attribute: "email".into(),
            rate_limit_share: 0.5,
        }
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

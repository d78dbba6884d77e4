//! One Okta request and its retries: pacing, the concurrency permit, auth headers (SSWS or
//! OAuth/DPoP), status handling, 429 waits and backoff, and pagination over `rel="next"`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, DATE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::links::{link_values, next_link, same_origin};
use super::{Fetched, OktaSource};
use crate::source::SourceError;
use crate::source::budget::bucket_of;
use crate::source::oauth::{AuthHeaders, OAuthClient, OAuthError, dpop_challenge};

/// Wait after a 429 that lacks `Date` or `X-Rate-Limit-Reset` (before the cap and jitter).
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// First backoff after a 5xx, timeout, connection error or broken body; doubles per retry.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest backoff after a 5xx, timeout, connection error or broken body (before jitter).
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Most jitter added to a 429 wait.
const RATE_LIMIT_JITTER: Duration = Duration::from_millis(500);
/// The largest response body read (a page of 1000 users with big profiles is a few MiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The most pages one listing follows (200,000 users at 200 a page is 1,000).
pub const MAX_PAGES: usize = 20_000;
/// The largest error body read; error answers are small.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Okta's error code for "not found" (a deleted group).
const E_NOT_FOUND: &str = "E0000007";

const X_RATE_LIMIT_RESET: HeaderName = HeaderName::from_static("x-rate-limit-reset");
const X_OKTA_REQUEST_ID: HeaderName = HeaderName::from_static("x-okta-request-id");
const X_OKTA_RETRY_FOR: HeaderName = HeaderName::from_static("x-okta-retry-for");
const X_OKTA_RETRY_COUNT: HeaderName = HeaderName::from_static("x-okta-retry-count");

/// How each request authenticates.
pub(super) enum Credentials {
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
    /// Every item of a listing, following `rel="next"` to the end; `None` on 404 E0000007.
    pub(in crate::source) async fn paginate<T, F>(
        &self,
        first: Url,
        parse: &F,
    ) -> Result<Option<Vec<T>>, SourceError>
    where
        F: Fn(&[u8]) -> Result<Vec<T>, serde_json::Error> + Sync,
        T: Send,
    {
        self.paginate_sized(first, parse, false).await
    }

    /// A member listing: as [`Self::paginate`], with every page asking for the member page size
    /// in force. A page larger than [`MEMBER_PAGE_FLOOR`] that fails with a 5xx or times out
    /// is asked again at that floor at once (not retried at its size), and the floor is kept
    /// for the member reads of the rest of the pass. Okta may answer fewer members than asked
    /// (some orgs cap pages); its `next` links are followed whatever size they carry.
    pub(in crate::source) async fn paginate_members<T, F>(
        &self,
        first: Url,
        parse: &F,
    ) -> Result<Option<Vec<T>>, SourceError>
    where
        F: Fn(&[u8]) -> Result<Vec<T>, serde_json::Error> + Sync,
        T: Send,
    {
        self.paginate_sized(first, parse, true).await
    }

    async fn paginate_sized<T, F>(
        &self,
        first: Url,
        parse: &F,
        members: bool,
    ) -> Result<Option<Vec<T>>, SourceError>
    where
        F: Fn(&[u8]) -> Result<Vec<T>, serde_json::Error> + Sync,
        T: Send,
    {
        let mut all = Vec::new();
        let mut visited = BTreeSet::new();
        let mut url = first;
        loop {
            if visited.len() >= self.limits.max_pages {
                return Err(SourceError::TooManyPages {
                    path: first_path(&url),
                    pages: self.limits.max_pages,
                });
            }
            visited.insert(url.as_str().to_owned());
            let mut large = false;
            if members {
                let now = self.member_limit.load(Ordering::Relaxed);
                if limit_of(&url).is_some_and(|asked| asked > now) {
                    url = with_limit(&url, now);
                }
                large = limit_of(&url).is_some_and(|asked| asked > MEMBER_PAGE_FLOOR);
            }
            let fetched = match self.fetch_page_sized(&url, parse, large).await {
                Err(e) if large && fails_large_pages(&e) => {
                    let asked = limit_of(&url).unwrap_or(MEMBER_PAGE_FLOOR);
                    let before = self
                        .member_limit
                        .fetch_min(MEMBER_PAGE_FLOOR, Ordering::Relaxed);
                    if before > MEMBER_PAGE_FLOOR {
                        tracing::warn!(
                            asked,
                            now = MEMBER_PAGE_FLOOR,
                            error = %e,
                            "Okta failed a large member page; member reads ask for smaller pages for the rest of the pass"
                        );
                    }
                    url = with_limit(&url, MEMBER_PAGE_FLOOR);
                    continue;
                }
                other => other?,
            };
            match fetched {
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
    pub(in crate::source) async fn fetch_page<T, F>(
        &self,
        url: &Url,
        parse: &F,
    ) -> Result<Fetched<T>, SourceError>
    where
        F: Fn(&[u8]) -> Result<T, serde_json::Error> + Sync,
        T: Send,
    {
        self.fetch_page_sized(url, parse, false).await
    }

    /// One page, with the retries the settings allow; a `large` page that fails with a 5xx or
    /// times out is not retried (the caller asks again with a smaller page).
    async fn fetch_page_sized<T, F>(
        &self,
        url: &Url,
        parse: &F,
        large: bool,
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
            let size_failure = matches!(&cause, RetryCause::Server(_))
                || matches!(&cause, RetryCause::Transport(e) if e.is_timeout());
            if retries >= self.max_retries || (large && size_failure) {
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
        crate::metrics::okta_request(bucket);
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
                let body = match read_capped(response, self.limits.max_body_bytes).await {
                    Ok(body) => body,
                    Err(Capped::Transport(e)) => return retry(RetryCause::Transport(e)),
                    Err(Capped::TooLarge) => {
                        return Err(SourceError::TooLarge {
                            path: path.to_owned(),
                            limit_mib: self.limits.max_body_bytes.div_ceil(1024 * 1024),
                        });
                    }
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
            // Okta refuses a DPoP proof on an API call with 400 (and a DPoP challenge), not
            // RFC 9449's 401 (okta-sdk-python #541, okta-sdk-nodejs #453).
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST
                if status == StatusCode::UNAUTHORIZED
                    || (matches!(self.credentials, Credentials::OAuth(_))
                        && dpop_challenge(response.headers()).is_some()) =>
            {
                let challenge = dpop_challenge(response.headers());
                if let Credentials::OAuth(client) = &self.credentials
                    && allow_reauth
                {
                    // E0000011, invalid_dpop_proof or use_dpop_nonce: a new token, a nonce
                    // or a fresh proof, and one more try.
                    client.rejected(response.headers(), generation).await;
                    return Ok(Attempt::Reauth);
                }
                let code = error_body(response).await.code_or_status(status);
                Err(match (&self.credentials, challenge) {
                    (Credentials::Ssws(_), _) => SourceError::Unauthorized { code },
                    (Credentials::OAuth(_), Some((error, description)))
                        if error == "invalid_dpop_proof" || error == "use_dpop_nonce" =>
                    {
                        OAuthError::DpopRejected { error, description }.into()
                    }
                    (Credentials::OAuth(_), _) => OAuthError::TokenRejected { code }.into(),
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

/// The member page size a failed large page falls back to: Okta's recommended `limit`.
pub(super) const MEMBER_PAGE_FLOOR: u32 = 200;

/// Whether a page's failure may come from its size: a 5xx or a timeout.
fn fails_large_pages(e: &SourceError) -> bool {
    match e {
        SourceError::Server { status, .. } => *status >= 500,
        SourceError::Transport { source, .. } => source.is_timeout(),
        _ => false,
    }
}

/// The `limit` a page URL asks for.
fn limit_of(url: &Url) -> Option<u32> {
    url.query_pairs()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse().ok())
}

/// `url` asking for `limit` items (the other query parameters kept, in order).
fn with_limit(url: &Url, limit: u32) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "limit")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    {
        let mut query = out.query_pairs_mut();
        query.clear();
        query.append_pair("limit", &limit.to_string());
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
    }
    out
}

/// `path?query` of a URL: what logs may show (no host, no credentials).
pub(super) fn path_and_query(url: &Url) -> &str {
    &url[url::Position::BeforePath..url::Position::AfterQuery]
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
    match read_capped(response, MAX_ERROR_BODY_BYTES).await {
        Ok(body) => serde_json::from_slice(&body).unwrap_or_default(),
        Err(_) => ErrorBody::default(),
    }
}

/// Why [`read_capped`] gave up.
pub(crate) enum Capped {
    Transport(reqwest::Error),
    /// The body (declared or received) is over the cap.
    TooLarge,
}

/// A response body, read chunk by chunk and refused as soon as it passes `max` bytes (a
/// declared `Content-Length` over it is refused before reading).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, Capped> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(Capped::TooLarge);
    }
    // One allocation for a body of known length (a 1,000-member page is about a megabyte,
    // and growing by doubling would touch twice that); at most 8 MiB ahead of the data.
    let declared = response.content_length().map_or(0, |n| {
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(max)
            .min(8 << 20)
    });
    let mut body = Vec::with_capacity(declared);
    while let Some(chunk) = response.chunk().await.map_err(Capped::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(Capped::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The path of a listing's URL, for errors (no query: it may carry a cursor).
fn first_path(url: &Url) -> String {
    url.path().to_owned()
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
    } else if path.starts_with("/api/v1/users/") {
        "get_user"
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

    use super::super::links::tests::headers;

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
}

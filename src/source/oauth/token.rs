//! The token client: gets, caches and refreshes the one access token every request shares,
//! handling DPoP nonces, retries and Okta's OAuth errors.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{
    CLIENT_ASSERTION_TYPE, DEFAULT_LIFETIME, DESCRIPTION_MAX, DPOP, DPOP_NONCE, DpopKey,
    MAX_LIFETIME, NONCE_RETRIES, OAuthBuildError, OAuthClient, OAuthError, OAuthSettings,
    REFRESH_MARGIN_MAX, TOKEN_PATH,
};
use crate::clock::Clock;
use crate::source::SourceError;
use crate::source::okta::{Capped, backoff, rate_limit_wait, read_capped};

/// The largest token endpoint answer read (a token response is a few KiB).
const TOKEN_BODY_MAX: usize = 1024 * 1024;

/// When to stop using a token that lives `lifetime` from `sent_at` (when its request left):
/// `min(5 min, lifetime / 4)` before it expires, so short test lifetimes refresh too. The
/// lifetime is clamped to 24 h and the arithmetic checked: no answer can make it overflow.
pub(crate) fn refresh_at(sent_at: DateTime<Utc>, lifetime: Duration) -> DateTime<Utc> {
    let lifetime = lifetime.min(MAX_LIFETIME);
    let margin = REFRESH_MARGIN_MAX.min(lifetime / 4);
    TimeDelta::from_std(lifetime.saturating_sub(margin))
        .ok()
        .and_then(|d| sent_at.checked_add_signed(d))
        .unwrap_or(sent_at)
}

/// `expires_in` as a duration: whole seconds, at most [`MAX_LIFETIME`]; a negative or
/// non-finite number is no lifetime at all.
pub(super) fn lifetime_of(expires_in: &serde_json::Number) -> Duration {
    let secs = expires_in.as_u64().unwrap_or_else(|| {
        expires_in
            .as_f64()
            .filter(|f| f.is_finite() && *f > 0.0)
            .map_or(0, |f| f.min(MAX_LIFETIME.as_secs_f64()) as u64)
    });
    Duration::from_secs(secs).min(MAX_LIFETIME)
}

/// A sensitive header value (never shown by `Debug`, and kept out of HTTP/2 header tables);
/// `None` if `value` cannot be a header.
pub(super) fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

// ---------- the client ----------

/// An access token as cached; `Debug` hides the value.
pub(crate) struct AccessToken {
    pub(super) value: SecretString,
    /// `token_type: DPoP`: every call needs a proof.
    pub(super) dpop_bound: bool,
    /// Which token this is, so a 401 invalidates only the token it was sent with.
    pub(super) generation: u64,
    /// Replace the token from here on.
    pub(super) refresh_at: DateTime<Utc>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("dpop_bound", &self.dpop_bound)
            .field("generation", &self.generation)
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// The headers of one API request: fresh for every attempt. `Debug` shows sensitive values as
/// `Sensitive`.
#[derive(Debug)]
pub(crate) struct AuthHeaders {
    /// `SSWS …`, `Bearer …` or `DPoP …`, marked sensitive.
    pub authorization: HeaderValue,
    /// A fresh proof for this request, marked sensitive.
    pub dpop: Option<HeaderValue>,
    /// The token generation used (0 for SSWS).
    pub generation: u64,
}

impl AuthHeaders {
    /// Puts the headers on a request.
    pub fn apply(self, headers: &mut HeaderMap) {
        headers.insert(reqwest::header::AUTHORIZATION, self.authorization);
        if let Some(proof) = self.dpop {
            headers.insert(DPOP, proof);
        }
    }
}

/// One token request's result.
pub(super) enum TokenStep {
    Issued(AccessToken),
    /// `use_dpop_nonce` with a new nonce: send again with it.
    Nonce(String),
    /// Worth another try after a wait.
    Retry(Transient),
    Failed(SourceError),
}

/// A token-endpoint failure worth retrying.
pub(super) enum Transient {
    RateLimited(Duration),
    Server(u16),
    Transport(reqwest::Error),
    Malformed(String),
}

impl Transient {
    fn into_error(self) -> SourceError {
        let path = TOKEN_PATH.to_owned();
        match self {
            Transient::RateLimited(_) => SourceError::RateLimited { path },
            Transient::Server(status) => SourceError::Server { path, status },
            Transient::Transport(source) => SourceError::Transport { path, source },
            Transient::Malformed(detail) => SourceError::Malformed { path, detail },
        }
    }
}

/// A successful token response; unknown fields are ignored.
#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub(super) token_type: String,
    /// Any JSON number (`3600`, `3.6e3`, `1e13`); clamped when used.
    #[serde(default)]
    pub(super) expires_in: Option<serde_json::Number>,
    pub(super) access_token: SecretString,
    #[serde(default)]
    pub(super) scope: Option<String>,
}

/// An OAuth error body: `{"error": …, "error_description": …}`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct OAuthErrorBody {
    pub(super) error: Option<String>,
    pub(super) error_description: Option<String>,
}

impl OAuthClient {
    /// Builds the client and, with DPoP, this process's DPoP key.
    pub(crate) fn new(
        settings: OAuthSettings,
        org_url: &Url,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        max_retries: u32,
        max_retry_wait: Duration,
    ) -> Result<OAuthClient, OAuthBuildError> {
        let mut token_url = org_url.clone();
        token_url.set_path(TOKEN_PATH);
        token_url.set_query(None);
        token_url.set_fragment(None);
        let dpop = if settings.dpop {
            Some(DpopKey::generate()?)
        } else {
            None
        };
        Ok(OAuthClient {
            http,
            token_url,
            client_id: settings.client_id,
            key: settings.key,
            key_id: settings.key_id,
            scope: settings.scopes.join(" "),
            dpop,
            clock,
            max_retries,
            max_retry_wait,
            token: tokio::sync::Mutex::new(None),
            auth_nonce: Mutex::new(None),
            resource_nonce: Mutex::new(None),
            generations: AtomicU64::new(0),
        })
    }

    /// The headers for one API request: the shared token (refreshed first if due) and, for a
    /// DPoP-bound token, a fresh proof with a new `jti` and `iat`.
    pub(crate) async fn headers(&self, htm: &str, url: &Url) -> Result<AuthHeaders, SourceError> {
        let token = self.token().await?;
        let value = token.value.expose_secret();
        let (scheme, proof) = match (&self.dpop, token.dpop_bound) {
            (Some(dpop), true) => {
                let nonce = lock(&self.resource_nonce).clone();
                let proof = self.proof(dpop, htm, url, Some(value), nonce)?;
                ("DPoP", Some(proof))
            }
            _ => ("Bearer", None),
        };
        let authorization =
            sensitive(&format!("{scheme} {value}")).ok_or_else(|| SourceError::Malformed {
                path: TOKEN_PATH.to_owned(),
                detail: "the access token holds characters not allowed in a header".to_owned(),
            })?;
        Ok(AuthHeaders {
            authorization,
            dpop: proof,
            generation: token.generation,
        })
    }

    /// The API refused a request made with token `generation` (401, or a 400 with a DPoP
    /// challenge): take a new DPoP nonce if that is what it asked for; for a refused proof,
    /// nothing (the next attempt carries a fresh one); else drop the token so the next request
    /// gets a new one.
    pub(crate) async fn rejected(&self, headers: &HeaderMap, generation: u64) {
        let error = dpop_challenge(headers).map(|(error, _)| error);
        if error.as_deref() == Some("use_dpop_nonce")
            && let Some(nonce) = header_text(headers, &DPOP_NONCE)
        {
            tracing::debug!("Okta asked for a DPoP nonce on an API call; retrying with it");
            *lock(&self.resource_nonce) = Some(nonce);
            return;
        }
        if error.as_deref() == Some("invalid_dpop_proof") {
            tracing::debug!("Okta refused a DPoP proof on an API call; retrying with a fresh one");
            return;
        }
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.generation == generation) {
            tracing::debug!(
                generation,
                "Okta rejected the access token; getting a new one"
            );
            *slot = None;
        }
    }

    /// The cached token, or a new one when it is due for refresh. Concurrent callers wait for
    /// the one refresh in flight and then share its token.
    pub(super) async fn token(&self) -> Result<Arc<AccessToken>, SourceError> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && self.clock.now() < token.refresh_at
        {
            return Ok(token.clone());
        }
        let token = Arc::new(self.fetch().await?);
        *slot = Some(token.clone());
        Ok(token)
    }

    /// A new token: answers `use_dpop_nonce` challenges and retries 429s, 5xx and transport
    /// errors like API calls do.
    pub(super) async fn fetch(&self) -> Result<AccessToken, SourceError> {
        let (mut retries, mut nonces) = (0u32, 0u32);
        loop {
            match self.request_token().await {
                TokenStep::Issued(token) => return Ok(token),
                TokenStep::Nonce(nonce) if nonces < NONCE_RETRIES => {
                    nonces += 1;
                    tracing::debug!("Okta asked for a DPoP nonce; requesting the token again");
                    *lock(&self.auth_nonce) = Some(nonce);
                }
                TokenStep::Nonce(_) => {
                    return Err(OAuthError::DpopRejected {
                        error: "use_dpop_nonce".to_owned(),
                        description: "Okta kept asking for a new DPoP nonce".to_owned(),
                    }
                    .into());
                }
                TokenStep::Retry(cause) if retries < self.max_retries => {
                    let wait = match &cause {
                        Transient::RateLimited(wait) => *wait,
                        _ => backoff(retries, self.max_retry_wait),
                    };
                    retries += 1;
                    tracing::debug!(
                        url = TOKEN_PATH,
                        retry = retries,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "retrying the Okta token request"
                    );
                    tokio::time::sleep(wait).await;
                }
                TokenStep::Retry(cause) => return Err(cause.into_error()),
                TokenStep::Failed(err) => return Err(err),
            }
        }
    }

    /// One `POST /oauth2/v1/token` with a fresh client assertion (and proof).
    pub(super) async fn request_token(&self) -> TokenStep {
        let sent_at = self.clock.now();
        let form = match self.token_form(sent_at) {
            Ok(form) => form,
            Err(err) => return TokenStep::Failed(err),
        };
        let mut request = self
            .http
            .post(self.token_url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(dpop) = &self.dpop {
            let nonce = lock(&self.auth_nonce).clone();
            match self.proof(dpop, "POST", &self.token_url, None, nonce) {
                Ok(proof) => request = request.header(DPOP, proof),
                Err(err) => return TokenStep::Failed(err),
            }
        }
        tracing::trace!(method = "POST", url = TOKEN_PATH, "Okta token request");
        let response = match request.body(form.expose_secret().to_owned()).send().await {
            Ok(response) => response,
            Err(source) if source.is_builder() => {
                return TokenStep::Failed(SourceError::Transport {
                    path: TOKEN_PATH.to_owned(),
                    source,
                });
            }
            Err(e) => {
                crate::metrics::api_request("okta", "other", None);
                return TokenStep::Retry(Transient::Transport(e));
            }
        };
        drop(form);
        let status = response.status();
        crate::metrics::api_request("okta", "other", Some(status.as_u16()));
        tracing::debug!(
            method = "POST",
            url = TOKEN_PATH,
            status = status.as_u16(),
            "Okta response"
        );
        let headers = response.headers().clone();
        if let Some(nonce) = header_text(&headers, &DPOP_NONCE)
            && status.is_success()
        {
            *lock(&self.auth_nonce) = Some(nonce);
        }
        match status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                let wait = rate_limit_wait(&headers, self.max_retry_wait);
                return TokenStep::Retry(Transient::RateLimited(wait));
            }
            StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => {
                return TokenStep::Retry(Transient::Server(status.as_u16()));
            }
            _ => {
                let body: OAuthErrorBody = match read_capped(response, TOKEN_BODY_MAX).await {
                    Ok(body) => serde_json::from_slice(&body).unwrap_or_default(),
                    Err(_) => OAuthErrorBody::default(),
                };
                return self.refused(status, body, header_text(&headers, &DPOP_NONCE));
            }
        }
        let body = match read_capped(response, TOKEN_BODY_MAX).await {
            Ok(body) => body,
            Err(Capped::Transport(e)) => return TokenStep::Retry(Transient::Transport(e)),
            Err(Capped::TooLarge) => {
                return TokenStep::Failed(SourceError::TooLarge {
                    path: TOKEN_PATH.to_owned(),
                    limit_mib: 1,
                });
            }
        };
        let parsed: TokenResponse = match serde_json::from_slice(&body) {
            Ok(parsed) => parsed,
            // serde_json's message names the field, never the value.
            Err(e) => return TokenStep::Retry(Transient::Malformed(e.to_string())),
        };
        drop(body);
        let dpop_bound = parsed.token_type.eq_ignore_ascii_case("DPoP");
        if !dpop_bound && !parsed.token_type.eq_ignore_ascii_case("Bearer") {
            return TokenStep::Failed(SourceError::Malformed {
                path: TOKEN_PATH.to_owned(),
                detail: format!("unknown token_type {:?}", parsed.token_type),
            });
        }
        if dpop_bound && self.dpop.is_none() {
            return TokenStep::Failed(SourceError::Malformed {
                path: TOKEN_PATH.to_owned(),
                detail: "a DPoP token although no DPoP proof was sent".to_owned(),
            });
        }
        let lifetime = parsed
            .expires_in
            .as_ref()
            .map_or(DEFAULT_LIFETIME, lifetime_of)
            .min(MAX_LIFETIME);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            token_type = if dpop_bound { "DPoP" } else { "Bearer" },
            expires_in = lifetime.as_secs(),
            scope = parsed.scope.as_deref().unwrap_or_default(),
            generation,
            "Okta access token obtained"
        );
        TokenStep::Issued(AccessToken {
            value: parsed.access_token,
            dpop_bound,
            generation,
            refresh_at: refresh_at(sent_at, lifetime),
        })
    }

    /// What an OAuth error answer means for us.
    pub(super) fn refused(
        &self,
        status: StatusCode,
        body: OAuthErrorBody,
        nonce: Option<String>,
    ) -> TokenStep {
        let description: String = body
            .error_description
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(DESCRIPTION_MAX)
            .collect();
        let error = body.error.unwrap_or_default();
        let code = error.clone();
        let err = match code.as_str() {
            "use_dpop_nonce" if self.dpop.is_some() => match nonce {
                Some(nonce) => return TokenStep::Nonce(nonce),
                None => OAuthError::DpopRejected { error, description },
            },
            "invalid_dpop_proof" | "use_dpop_nonce" if self.dpop.is_none() => {
                OAuthError::DpopRequired { description }
            }
            "invalid_dpop_proof" => OAuthError::DpopRejected { error, description },
            "invalid_client" => OAuthError::InvalidClient {
                description,
                key_id: self.key_id.clone(),
            },
            "invalid_scope" => OAuthError::InvalidScope {
                description,
                scopes: self.scope.clone(),
            },
            "" => OAuthError::Rejected {
                error: format!("HTTP {}", status.as_u16()),
                description,
            },
            _ => OAuthError::Rejected {
                error: error.chars().filter(|c| !c.is_control()).take(60).collect(),
                description,
            },
        };
        TokenStep::Failed(err.into())
    }

    /// The form body of a token request, with a fresh client assertion.
    pub(super) fn token_form(&self, now: DateTime<Utc>) -> Result<SecretString, SourceError> {
        let assertion = self.client_assertion(now)?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &self.scope)
            .append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
            .append_pair("client_assertion", assertion.expose_secret())
            .finish();
        Ok(SecretString::from(form))
    }
}

/// The `error` and `error_description` of a `WWW-Authenticate: DPoP ...` challenge, wherever
/// they stand among its parameters (Okta sends `algs`, `realm` and others first).
pub(crate) fn dpop_challenge(headers: &HeaderMap) -> Option<(String, String)> {
    let challenge = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| {
            v.trim_start()
                .get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case("dpop "))
        })?;
    let error = auth_param(challenge, "error")?;
    let description: String = auth_param(challenge, "error_description")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(DESCRIPTION_MAX)
        .collect();
    Some((error, description))
}

/// The value of parameter `name` in an auth challenge (`name="value"` or `name=token`).
fn auth_param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + name.len()..];
        rest = after;
        if before.is_some_and(|c| !(c == ' ' || c == ',')) {
            continue;
        }
        let Some(value) = after.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        return Some(match value.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or_default().to_owned(),
            None => value
                .split([',', ' '])
                .next()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    None
}

/// A header as text, if present and visible ASCII.
fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Locks a std mutex that only ever holds a nonce (a poisoned one still holds a valid value).
pub(super) fn lock(m: &Mutex<Option<String>>) -> MutexGuard<'_, Option<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! Okta OAuth 2.0 for service apps: client credentials with a `private_key_jwt` client
//! assertion, DPoP proofs (RFC 9449), and the one access token every request shares.
//!
//! Secrets stay in the request that carries them: the private key, client assertions, DPoP
//! proofs and access tokens never reach a log line, an error message or a `Debug` output, and
//! every header built from them is marked sensitive. Okta's `error` / `error_description` are
//! not secret and are quoted in errors, because they tell the admin what to fix.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::SourceError;
use super::okta::{backoff, rate_limit_wait};
use crate::clock::Clock;

/// The org authorization server's token endpoint: the only one that issues Okta API scopes.
pub const TOKEN_PATH: &str = "/oauth2/v1/token";
/// `client_assertion_type` of `private_key_jwt`.
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a client assertion, in seconds: short (Okta accepts up to 1 h).
const ASSERTION_LIFETIME_SECS: i64 = 300;
/// A token is replaced at most this long before it expires (Okta's SDKs use 5 min).
const REFRESH_MARGIN_MAX: Duration = Duration::from_secs(300);
/// Okta's token lifetime, assumed when a response leaves `expires_in` out.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// `use_dpop_nonce` answers taken within one token request: the first challenge and a rotation.
const NONCE_RETRIES: u32 = 2;
/// Longest Okta error description quoted in an error.
const DESCRIPTION_MAX: usize = 200;

const DPOP: HeaderName = HeaderName::from_static("dpop");
const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

// ---------- settings and keys ----------

/// `okta.auth = "oauth"`: the service app and how to prove it is us.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The app's Client ID: `iss` and `sub` of every client assertion.
    pub client_id: String,
    /// The app's private key; `Debug` shows only its algorithm.
    pub key: ClientKey,
    /// `kid` of the key in the app's Public keys, sent in the assertion header.
    pub key_id: Option<String>,
    /// Scopes requested, e.g. `okta.groups.read`.
    pub scopes: Vec<String>,
    /// Bind tokens to a per-process DPoP key.
    pub dpop: bool,
}

/// The service app's private key (`okta.private_key_file`), parsed and test-signed once.
#[derive(Clone)]
pub struct ClientKey {
    key: EncodingKey,
    alg: Algorithm,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a private key file cannot be used. Shown after the file name; never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("holds no PEM block; expected a private key in PEM (-----BEGIN PRIVATE KEY-----)")]
    NotPem,
    #[error("holds an encrypted private key; export it without a passphrase (PKCS#8 PEM)")]
    Encrypted,
    #[error(
        "holds a {0}, not a private key; use the private key whose public key is in the Okta app"
    )]
    NotPrivate(String),
    #[error("holds a {0} block; expected an RSA or EC private key in PEM")]
    Unsupported(String),
    #[error("is not a usable RSA (2048 bits or more) or EC P-256/P-384 private key")]
    Unusable,
}

impl ClientKey {
    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`, RSA or EC), PKCS#1 (`RSA PRIVATE KEY`)
    /// or SEC1 (`EC PRIVATE KEY`). RSA signs RS256; EC P-256 ES256 and P-384 ES384.
    pub fn from_pem(text: &str) -> Result<ClientKey, KeyError> {
        let blocks = pem::parse_many(text).map_err(|_| KeyError::NotPem)?;
        let mut other = None;
        for block in &blocks {
            match block.tag() {
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                    if block
                        .headers()
                        .get("Proc-Type")
                        .is_some_and(|v| v.contains("ENCRYPTED"))
                    {
                        return Err(KeyError::Encrypted);
                    }
                    return ClientKey::from_block(block);
                }
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
                tag => {
                    other.get_or_insert_with(|| tag.to_owned());
                }
            }
        }
        Err(match other {
            None => KeyError::NotPem,
            Some(tag) if tag.ends_with("PUBLIC KEY") || tag == "CERTIFICATE" => {
                KeyError::NotPrivate(tag)
            }
            Some(tag) => KeyError::Unsupported(tag.chars().take(40).collect()),
        })
    }

    fn from_block(block: &pem::Pem) -> Result<ClientKey, KeyError> {
        let der = block.contents();
        let curves: [(Algorithm, &'static EcdsaSigningAlgorithm); 2] = [
            (Algorithm::ES256, &ECDSA_P256_SHA256_FIXED_SIGNING),
            (Algorithm::ES384, &ECDSA_P384_SHA384_FIXED_SIGNING),
        ];
        let (key, alg) = match block.tag() {
            "RSA PRIVATE KEY" => (EncodingKey::from_rsa_der(der), Algorithm::RS256),
            // jsonwebtoken takes RSA keys as PKCS#1; its PEM reader unwraps PKCS#8.
            _ if RsaKeyPair::from_pkcs8(der).is_ok() => (
                EncodingKey::from_rsa_pem(pem::encode(block).as_bytes())
                    .map_err(|_| KeyError::Unusable)?,
                Algorithm::RS256,
            ),
            "PRIVATE KEY" => curves
                .iter()
                .find(|(_, signing)| EcdsaKeyPair::from_pkcs8(signing, der).is_ok())
                .map(|(alg, _)| (EncodingKey::from_ec_der(der), *alg))
                .ok_or(KeyError::Unusable)?,
            // SEC1: re-encoded as PKCS#8, the form jsonwebtoken signs with.
            _ => curves
                .iter()
                .find_map(|(alg, signing)| {
                    let pair = EcdsaKeyPair::from_private_key_der(signing, der).ok()?;
                    let pkcs8 = pair.to_pkcs8v1().ok()?;
                    Some((EncodingKey::from_ec_der(pkcs8.as_ref()), *alg))
                })
                .ok_or(KeyError::Unusable)?,
        };
        jsonwebtoken::crypto::sign(b"q-group-sync key check", &key, alg)
            .map_err(|_| KeyError::Unusable)?;
        Ok(ClientKey { key, alg })
    }

    /// RS256, ES256 or ES384.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public half as a JWK (what the Okta app's Public keys must hold).
    pub fn public_jwk(&self) -> Option<Jwk> {
        Jwk::from_encoding_key(&self.key, self.alg).ok()
    }
}

/// The per-process DPoP key: ES256 on P-256, generated at start-up, never written anywhere.
struct DpopKey {
    key: EncodingKey,
    /// The public key, sent in every proof header.
    jwk: Jwk,
    /// RFC 7638 thumbprint; Okta binds tokens to it (`cnf.jkt`).
    thumbprint: String,
}

impl DpopKey {
    fn generate() -> Result<DpopKey, OAuthBuildError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| OAuthBuildError::DpopKey)?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| OAuthBuildError::DpopKey)?;
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let jwk =
            Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|_| OAuthBuildError::DpopKey)?;
        let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256);
        Ok(DpopKey {
            key,
            jwk,
            thumbprint,
        })
    }
}

/// Why the OAuth client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OAuthBuildError {
    #[error("generating the DPoP key failed")]
    DpopKey,
}

// ---------- errors ----------

/// An OAuth failure an admin must fix; each message names what to change, in one line.
#[derive(Debug)]
pub enum OAuthError {
    /// `invalid_client`: unknown client id, or a key (or `kid`) the app does not have.
    InvalidClient {
        description: String,
        key_id: Option<String>,
    },
    /// `invalid_scope`: a requested scope is not granted to the app.
    InvalidScope { description: String, scopes: String },
    /// 403 (E0000006) on an API call: the token lacks the scope or the app an admin role.
    Forbidden { code: String, path: String },
    /// `invalid_dpop_proof` while `okta.dpop = false`: the app requires DPoP.
    DpopRequired { description: String },
    /// Okta refused our DPoP proof, or asked for a nonce and gave none.
    DpopRejected { error: String, description: String },
    /// A freshly issued token was refused by the API (401 twice).
    TokenRejected { code: String },
    /// Any other OAuth error (`unauthorized_client`, `invalid_request`, ...).
    Rejected { error: String, description: String },
    /// Signing a JWT failed (the key was checked at start-up, so this is unexpected).
    Signing,
}

impl OAuthError {
    /// Bounded label for metrics and status.
    pub fn kind(&self) -> &'static str {
        match self {
            OAuthError::InvalidClient { .. } => "oauth_client",
            OAuthError::InvalidScope { .. } | OAuthError::Forbidden { .. } => "oauth_scope",
            OAuthError::DpopRequired { .. } | OAuthError::DpopRejected { .. } => "oauth_dpop",
            OAuthError::TokenRejected { .. } => "unauthorized",
            OAuthError::Rejected { .. } | OAuthError::Signing => "oauth",
        }
    }
}

/// ` (code: description)` or ` (code)`.
fn quoted(code: &str, description: &str) -> String {
    if description.is_empty() {
        format!("({code})")
    } else {
        format!("({code}: {description})")
    }
}

const REQUIRE_DPOP: &str =
    "\"Require Demonstrating Proof of Possession (DPoP) header in token requests\"";

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OAuthError::InvalidClient {
                description,
                key_id,
            } => {
                let kid = match key_id {
                    Some(kid) => format!(" with KID \"{kid}\" (okta.key_id)"),
                    None => " (set okta.key_id if the app has several keys)".to_owned(),
                };
                write!(
                    f,
                    "Okta rejected the client assertion {}: check that okta.client_id is the \
                     service app's Client ID and that the app's \"Public keys\" hold the public \
                     key of okta.private_key_file{kid}",
                    quoted("invalid_client", description)
                )
            }
            OAuthError::InvalidScope {
                description,
                scopes,
            } => write!(
                f,
                "Okta refused the scopes \"{scopes}\" {}: grant them on the app's \"Okta API \
                 Scopes\" tab (\"okta.groups.read\" and \"okta.users.read\" at least), or change \
                 okta.scopes",
                quoted("invalid_scope", description)
            ),
            OAuthError::Forbidden { code, path } => write!(
                f,
                "Okta denied the access token on {path} ({code}): grant {} on the \
                 app's \"Okta API Scopes\" tab (and list it in okta.scopes) and assign the app \
                 a read-only admin role (\"Admin roles\" tab)",
                super::scope_for(path)
            ),
            OAuthError::DpopRequired { description } => write!(
                f,
                "the Okta app requires DPoP {}: set okta.dpop = true, or untick {REQUIRE_DPOP} \
                 on the app",
                quoted("invalid_dpop_proof", description)
            ),
            OAuthError::DpopRejected { error, description } => write!(
                f,
                "Okta rejected the DPoP proof {}: check the system clock, and that \
                 {REQUIRE_DPOP} on the app matches okta.dpop",
                quoted(error, description)
            ),
            OAuthError::TokenRejected { code } => write!(
                f,
                "Okta rejected a freshly issued access token ({code}): check that {REQUIRE_DPOP} \
                 on the app matches okta.dpop and that the app is active"
            ),
            OAuthError::Rejected { error, description } => write!(
                f,
                "Okta refused the token request {}: the app must be an \"API Services\" app with \
                 the Client Credentials grant and \"Public key / Private key\" client \
                 authentication",
                quoted(error, description)
            ),
            OAuthError::Signing => {
                f.write_str("could not sign a JWT for Okta with okta.private_key_file")
            }
        }
    }
}

impl std::error::Error for OAuthError {}

// ---------- JWTs ----------

/// Claims of the client assertion, exactly as Okta specifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Claims of a DPoP proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProofClaims {
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    /// base64url(SHA-256(access token)); on API calls only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// A fresh random `jti` (144 bits, base64url).
fn new_jti() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}

/// `htu` of a proof: the URL without query string or fragment (RFC 9449 §4.2).
pub(crate) fn htu(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

/// `ath` of a proof: base64url(SHA-256(access token)).
pub(crate) fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// When to stop using a token that lives `lifetime` from `sent_at` (when its request left):
/// `min(5 min, lifetime / 4)` before it expires, so short test lifetimes refresh too.
pub(crate) fn refresh_at(sent_at: DateTime<Utc>, lifetime: Duration) -> DateTime<Utc> {
    let margin = REFRESH_MARGIN_MAX.min(lifetime / 4);
    sent_at + TimeDelta::from_std(lifetime - margin).unwrap_or(TimeDelta::zero())
}

/// A sensitive header value (never shown by `Debug`, and kept out of HTTP/2 header tables);
/// `None` if `value` cannot be a header.
fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

// ---------- the client ----------

/// An access token as cached; `Debug` hides the value.
pub(crate) struct AccessToken {
    value: SecretString,
    /// `token_type: DPoP`: every call needs a proof.
    dpop_bound: bool,
    /// Which token this is, so a 401 invalidates only the token it was sent with.
    generation: u64,
    /// Replace the token from here on.
    refresh_at: DateTime<Utc>,
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

/// Gets, caches and refreshes the service app's access token, and signs DPoP proofs.
pub struct OAuthClient {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    key: ClientKey,
    key_id: Option<String>,
    /// Space-separated `scope` parameter.
    scope: String,
    dpop: Option<DpopKey>,
    clock: Arc<dyn Clock>,
    max_retries: u32,
    max_retry_wait: Duration,
    /// The shared token; the async lock makes concurrent requests wait for one refresh.
    token: tokio::sync::Mutex<Option<Arc<AccessToken>>>,
    /// Latest `DPoP-Nonce` of the token endpoint.
    auth_nonce: Mutex<Option<String>>,
    /// Latest `DPoP-Nonce` of the API (Okta does not currently ask for one there).
    resource_nonce: Mutex<Option<String>>,
    /// Tokens obtained so far; numbers each token.
    generations: AtomicU64,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("alg", &self.key.alg)
            .field("dpop", &self.dpop.is_some())
            .finish_non_exhaustive()
    }
}

/// One token request's result.
enum TokenStep {
    Issued(AccessToken),
    /// `use_dpop_nonce` with a new nonce: send again with it.
    Nonce(String),
    /// Worth another try after a wait.
    Retry(Transient),
    Failed(SourceError),
}

/// A token-endpoint failure worth retrying.
enum Transient {
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
struct TokenResponse {
    token_type: String,
    #[serde(default)]
    expires_in: Option<u64>,
    access_token: SecretString,
    #[serde(default)]
    scope: Option<String>,
}

/// An OAuth error body: `{"error": …, "error_description": …}`.
#[derive(Debug, Default, Deserialize)]
struct OAuthErrorBody {
    error: Option<String>,
    error_description: Option<String>,
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

    /// The API answered 401 to a request made with token `generation`: take a new DPoP nonce
    /// if that is what it asked for, else drop the token so the next request gets a new one.
    pub(crate) async fn rejected(&self, headers: &HeaderMap, generation: u64) {
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if challenge.contains("use_dpop_nonce")
            && let Some(nonce) = header_text(headers, &DPOP_NONCE)
        {
            tracing::debug!("Okta asked for a DPoP nonce on an API call; retrying with it");
            *lock(&self.resource_nonce) = Some(nonce);
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
    async fn token(&self) -> Result<Arc<AccessToken>, SourceError> {
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
    async fn fetch(&self) -> Result<AccessToken, SourceError> {
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
    async fn request_token(&self) -> TokenStep {
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
                let body: OAuthErrorBody = match response.bytes().await {
                    Ok(body) => serde_json::from_slice(&body).unwrap_or_default(),
                    Err(_) => OAuthErrorBody::default(),
                };
                return self.refused(status, body, header_text(&headers, &DPOP_NONCE));
            }
        }
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return TokenStep::Retry(Transient::Transport(e)),
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
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
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
    fn refused(
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
    fn token_form(&self, now: DateTime<Utc>) -> Result<SecretString, SourceError> {
        let assertion = self.client_assertion(now)?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &self.scope)
            .append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
            .append_pair("client_assertion", assertion.expose_secret())
            .finish();
        Ok(SecretString::from(form))
    }

    /// The claims of a client assertion made at `now`.
    pub(crate) fn assertion_claims(&self, now: DateTime<Utc>) -> AssertionClaims {
        let iat = now.timestamp();
        AssertionClaims {
            iss: self.client_id.clone(),
            sub: self.client_id.clone(),
            aud: self.token_url.to_string(),
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
            jti: new_jti(),
        }
    }

    /// A signed client assertion: iss = sub = client id, aud = the token URL, short exp,
    /// unique jti; `kid` in the header when configured.
    fn client_assertion(&self, now: DateTime<Utc>) -> Result<SecretString, SourceError> {
        let mut header = Header::new(self.key.alg);
        header.kid = self.key_id.clone();
        let jwt = jsonwebtoken::encode(&header, &self.assertion_claims(now), &self.key.key)
            .map_err(|_| OAuthError::Signing)?;
        Ok(SecretString::from(jwt))
    }

    /// The claims of a proof for `htm url`, made now.
    pub(crate) fn proof_claims(
        &self,
        htm: &str,
        url: &Url,
        token: Option<&str>,
        nonce: Option<String>,
    ) -> ProofClaims {
        ProofClaims {
            jti: new_jti(),
            htm: htm.to_owned(),
            htu: htu(url),
            iat: self.clock.now().timestamp(),
            ath: token.map(ath),
            nonce,
        }
    }

    /// A signed DPoP proof: `typ: dpop+jwt`, the public `jwk`, ES256.
    fn proof(
        &self,
        dpop: &DpopKey,
        htm: &str,
        url: &Url,
        token: Option<&str>,
        nonce: Option<String>,
    ) -> Result<HeaderValue, SourceError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".to_owned());
        header.jwk = Some(dpop.jwk.clone());
        let claims = self.proof_claims(htm, url, token, nonce);
        let jwt =
            jsonwebtoken::encode(&header, &claims, &dpop.key).map_err(|_| OAuthError::Signing)?;
        sensitive(&jwt).ok_or_else(|| OAuthError::Signing.into())
    }

    /// Thumbprint of this process's DPoP key (the `cnf.jkt` of our tokens), if DPoP is on.
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.dpop.as_ref().map(|d| d.thumbprint.as_str())
    }
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
fn lock(m: &Mutex<Option<String>>) -> MutexGuard<'_, Option<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use jsonwebtoken::{DecodingKey, Validation};

    /// A clock tests can move.
    struct TestClock(Mutex<DateTime<Utc>>);

    impl Clock for TestClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ec_pem() -> String {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()))
    }

    fn rsa_pems() -> (String, String) {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        let pkcs8 = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        // PKCS#1 is the RSAPrivateKey inside the PKCS#8 wrapper.
        let key = ClientKey::from_pem(&pkcs8).unwrap();
        let pkcs1 = pem::encode(&pem::Pem::new("RSA PRIVATE KEY", key.key.inner().to_vec()));
        (pkcs8, pkcs1)
    }

    fn client(dpop: bool, key_id: Option<&str>) -> (OAuthClient, ClientKey, Arc<TestClock>) {
        let key = ClientKey::from_pem(&ec_pem()).unwrap();
        let clock = Arc::new(TestClock(Mutex::new(t0())));
        let settings = OAuthSettings {
            client_id: "0oaClient123".into(),
            key: key.clone(),
            key_id: key_id.map(str::to_owned),
            scopes: vec!["okta.groups.read".into(), "okta.users.read".into()],
            dpop,
        };
        let client = OAuthClient::new(
            settings,
            &Url::parse("https://acme.okta.com/").unwrap(),
            reqwest::Client::new(),
            clock.clone(),
            2,
            Duration::from_secs(1),
        )
        .unwrap();
        (client, key, clock)
    }

    fn verify<T: serde::de::DeserializeOwned>(jwt: &str, jwk: &Jwk, alg: Algorithm) -> T {
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<T>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn assertion_is_signed_with_the_claims_okta_specifies() {
        let (client, key, _) = client(false, Some("kid-1"));
        let jwt = client.client_assertion(t0()).unwrap();
        let jwt = jwt.expose_secret();
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("kid-1"));
        let claims: AssertionClaims = verify(jwt, &key.public_jwk().unwrap(), Algorithm::ES256);
        assert_eq!(claims.iss, "0oaClient123");
        assert_eq!(claims.sub, "0oaClient123");
        assert_eq!(claims.aud, "https://acme.okta.com/oauth2/v1/token");
        assert_eq!(claims.iat, t0().timestamp());
        assert_eq!(claims.exp - claims.iat, 300);
        let other = client.assertion_claims(t0());
        assert_ne!(claims.jti, other.jti, "jti is unique");
        assert!(claims.jti.len() >= 20);
    }

    #[test]
    fn assertion_without_key_id_has_no_kid_and_form_carries_it() {
        let (client, _, _) = client(false, None);
        let jwt = client.client_assertion(t0()).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(jwt.expose_secret())
                .unwrap()
                .kid,
            None
        );
        let form = client.token_form(t0()).unwrap();
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(form.expose_secret().as_bytes())
                .into_owned()
                .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("grant_type"), Some("client_credentials"));
        assert_eq!(get("scope"), Some("okta.groups.read okta.users.read"));
        assert_eq!(get("client_assertion_type"), Some(CLIENT_ASSERTION_TYPE));
        assert_eq!(
            get("client_assertion").map(|a| a.split('.').count()),
            Some(3)
        );
    }

    #[test]
    fn proof_has_typ_jwk_htm_htu_without_query_and_ath() {
        let (client, _, clock) = client(true, None);
        let dpop = client.dpop.as_ref().unwrap();
        let url =
            Url::parse("https://acme.okta.com/api/v1/groups/00g1/users?limit=200&after=x#frag")
                .unwrap();
        let proof = client
            .proof(dpop, "GET", &url, Some("the-token"), None)
            .unwrap();
        assert!(proof.is_sensitive());
        let jwt = proof.to_str().unwrap();
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        assert_eq!(header.alg, Algorithm::ES256);
        let jwk = header.jwk.unwrap();
        assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256), dpop.thumbprint);
        assert_eq!(client.dpop_thumbprint(), Some(dpop.thumbprint.as_str()));
        let claims: ProofClaims = verify(jwt, &jwk, Algorithm::ES256);
        assert_eq!(claims.htm, "GET");
        assert_eq!(claims.htu, "https://acme.okta.com/api/v1/groups/00g1/users");
        assert_eq!(claims.iat, t0().timestamp());
        // base64url(SHA-256("the-token")), no padding.
        assert_eq!(
            claims.ath.as_deref(),
            Some("wqc_z2HfvcrceaELozCy7162b8Cmc17Wm3lrs8l7l64")
        );
        assert_eq!(claims.nonce, None);

        // Each proof is fresh: new jti, and iat follows the clock.
        *clock.0.lock().unwrap() = t0() + TimeDelta::seconds(7);
        let again = client
            .proof(dpop, "GET", &url, Some("the-token"), Some("n-1".into()))
            .unwrap();
        let again: ProofClaims = verify(again.to_str().unwrap(), &jwk, Algorithm::ES256);
        assert_ne!(again.jti, claims.jti);
        assert_eq!(again.iat, t0().timestamp() + 7);
        assert_eq!(again.nonce.as_deref(), Some("n-1"));

        // The token request's proof has no ath.
        let token_proof = client
            .proof(dpop, "POST", &client.token_url, None, None)
            .unwrap();
        let token_proof: ProofClaims =
            verify(token_proof.to_str().unwrap(), &jwk, Algorithm::ES256);
        assert_eq!(
            (token_proof.htm.as_str(), token_proof.htu.as_str()),
            ("POST", "https://acme.okta.com/oauth2/v1/token")
        );
        assert_eq!(token_proof.ath, None);
    }

    #[test]
    fn each_process_gets_its_own_dpop_key() {
        let (a, _, _) = client(true, None);
        let (b, _, _) = client(true, None);
        assert_ne!(a.dpop_thumbprint(), b.dpop_thumbprint());
        let (none, _, _) = client(false, None);
        assert_eq!(none.dpop_thumbprint(), None);
    }

    #[test]
    fn refresh_comes_five_minutes_early_or_at_a_quarter_of_short_lifetimes() {
        let at = |secs: u64| refresh_at(t0(), Duration::from_secs(secs)) - t0();
        assert_eq!(at(3600), TimeDelta::seconds(3300));
        assert_eq!(at(1200), TimeDelta::seconds(900));
        assert_eq!(at(600), TimeDelta::seconds(450));
        assert_eq!(at(2), TimeDelta::milliseconds(1500));
        assert_eq!(at(0), TimeDelta::zero());
    }

    fn error_body(error: &str, description: &str) -> OAuthErrorBody {
        OAuthErrorBody {
            error: Some(error.into()),
            error_description: Some(description.into()),
        }
    }

    fn failed(step: TokenStep) -> SourceError {
        match step {
            TokenStep::Failed(err) => err,
            TokenStep::Nonce(_) => panic!("nonce"),
            TokenStep::Issued(_) => panic!("issued"),
            TokenStep::Retry(_) => panic!("retry"),
        }
    }

    #[test]
    fn nonce_challenges_are_taken_only_with_dpop_and_a_nonce() {
        let (dpop, _, _) = client(true, None);
        let body = || error_body("use_dpop_nonce", "Authorization server requires nonce");
        match dpop.refused(StatusCode::BAD_REQUEST, body(), Some("n-42".into())) {
            TokenStep::Nonce(n) => assert_eq!(n, "n-42"),
            _ => panic!("expected a nonce retry"),
        }
        let err = failed(dpop.refused(StatusCode::BAD_REQUEST, body(), None));
        assert_eq!(err.kind(), "oauth_dpop");
        let (plain, _, _) = client(false, None);
        let err = failed(plain.refused(StatusCode::BAD_REQUEST, body(), Some("n".into())));
        assert!(err.to_string().contains("set okta.dpop = true"), "{err}");
    }

    #[test]
    fn each_oauth_error_names_what_to_fix_in_one_line() {
        let (plain, _, _) = client(false, Some("k1"));
        let (dpop, _, _) = client(true, None);
        let cases = [
            (
                plain.refused(
                    StatusCode::UNAUTHORIZED,
                    error_body("invalid_client", "Invalid value for 'client_id' parameter."),
                    None,
                ),
                "oauth_client",
                &[
                    "invalid_client",
                    "okta.client_id",
                    "\"Public keys\"",
                    "\"k1\"",
                ][..],
            ),
            (
                dpop.refused(
                    StatusCode::UNAUTHORIZED,
                    error_body(
                        "invalid_client",
                        "The client_assertion signature is invalid.",
                    ),
                    None,
                ),
                "oauth_client",
                &["signature is invalid", "set okta.key_id"][..],
            ),
            (
                plain.refused(
                    StatusCode::BAD_REQUEST,
                    error_body("invalid_scope", "One or more scopes are not configured."),
                    None,
                ),
                "oauth_scope",
                &[
                    "invalid_scope",
                    "\"Okta API Scopes\"",
                    "okta.groups.read okta.users.read",
                ][..],
            ),
            (
                plain.refused(
                    StatusCode::BAD_REQUEST,
                    error_body(
                        "invalid_dpop_proof",
                        "The DPoP proof JWT header is missing.",
                    ),
                    None,
                ),
                "oauth_dpop",
                &["requires DPoP", "okta.dpop = true", "untick"][..],
            ),
            (
                dpop.refused(
                    StatusCode::BAD_REQUEST,
                    error_body("invalid_dpop_proof", "'iat' is too old"),
                    None,
                ),
                "oauth_dpop",
                &["DPoP proof", "system clock", "okta.dpop"][..],
            ),
            (
                plain.refused(
                    StatusCode::BAD_REQUEST,
                    error_body("unauthorized_client", "grant type not allowed\nsecond line"),
                    None,
                ),
                "oauth",
                &["unauthorized_client", "Client Credentials", "second line"][..],
            ),
            (
                plain.refused(StatusCode::FORBIDDEN, OAuthErrorBody::default(), None),
                "oauth",
                &["HTTP 403"][..],
            ),
        ];
        for (step, kind, needles) in cases {
            let err = failed(step);
            let text = err.to_string();
            assert_eq!(err.kind(), kind, "{text}");
            assert!(err.is_fatal(), "{text}");
            assert!(!text.contains('\n'), "one line: {text}");
            for needle in needles {
                assert!(text.contains(needle), "{needle:?} in {text}");
            }
        }
        let forbidden = SourceError::from(OAuthError::Forbidden {
            code: "E0000006".into(),
            path: "/api/v1/groups".into(),
        });
        assert_eq!(forbidden.kind(), "oauth_scope");
        assert!(forbidden.to_string().contains("read-only admin role"));
    }

    #[tokio::test]
    async fn a_cached_token_is_shared_until_refresh_and_a_401_drops_only_that_token() {
        let (client, _, clock) = client(true, None);
        let token = Arc::new(AccessToken {
            value: SecretString::from("tok-1"),
            dpop_bound: true,
            generation: 1,
            refresh_at: t0() + TimeDelta::seconds(10),
        });
        *client.token.lock().await = Some(token.clone());
        let url = Url::parse("https://acme.okta.com/api/v1/groups?limit=1").unwrap();
        let first = client.headers("GET", &url).await.unwrap();
        let second = client.headers("GET", &url).await.unwrap();
        assert_eq!(first.authorization.to_str().unwrap(), "DPoP tok-1");
        assert!(first.authorization.is_sensitive());
        assert_eq!((first.generation, second.generation), (1, 1));
        assert_ne!(first.dpop, second.dpop, "a fresh proof per request");

        // A 401 for an older token leaves the current one alone.
        client.rejected(&HeaderMap::new(), 0).await;
        assert!(client.token.lock().await.is_some());
        // A nonce challenge keeps the token and sends the nonce from then on.
        let mut challenge = HeaderMap::new();
        challenge.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("DPoP error=\"use_dpop_nonce\""),
        );
        challenge.insert(DPOP_NONCE, HeaderValue::from_static("rn-1"));
        client.rejected(&challenge, 1).await;
        assert!(client.token.lock().await.is_some());
        let with_nonce = client.headers("GET", &url).await.unwrap();
        let jwt = with_nonce.dpop.unwrap();
        let jwk = jsonwebtoken::decode_header(jwt.to_str().unwrap())
            .unwrap()
            .jwk
            .unwrap();
        let claims: ProofClaims = verify(jwt.to_str().unwrap(), &jwk, Algorithm::ES256);
        assert_eq!(claims.nonce.as_deref(), Some("rn-1"));
        assert_eq!(claims.ath.unwrap(), ath("tok-1"));
        // A plain 401 for the current token drops it.
        client.rejected(&HeaderMap::new(), 1).await;
        assert!(client.token.lock().await.is_none());

        // Due for refresh: the cached token is not handed out any more; a refresh is tried
        // (here against a closed port, with no retries).
        let refused = OAuthClient::new(
            OAuthSettings {
                client_id: "0oaClient123".into(),
                key: ClientKey::from_pem(&ec_pem()).unwrap(),
                key_id: None,
                scopes: vec!["okta.groups.read".into()],
                dpop: true,
            },
            &Url::parse("http://127.0.0.1:1/").unwrap(),
            reqwest::Client::new(),
            clock.clone(),
            0,
            Duration::from_millis(1),
        )
        .unwrap();
        *refused.token.lock().await = Some(token);
        assert!(refused.headers("GET", &url).await.is_ok(), "still fresh");
        *clock.0.lock().unwrap() = t0() + TimeDelta::seconds(10);
        let err = refused.headers("GET", &url).await.unwrap_err();
        assert_eq!(err.kind(), "transport", "{err}");
        assert!(err.to_string().contains(TOKEN_PATH), "{err}");
    }

    #[test]
    fn keys_in_every_supported_pem_form_load() {
        let (pkcs8, pkcs1) = rsa_pems();
        assert_eq!(
            ClientKey::from_pem(&pkcs8).unwrap().algorithm(),
            Algorithm::RS256
        );
        assert_eq!(
            ClientKey::from_pem(&pkcs1).unwrap().algorithm(),
            Algorithm::RS256
        );
        assert_eq!(
            ClientKey::from_pem(&ec_pem()).unwrap().algorithm(),
            Algorithm::ES256
        );
        // SEC1 ("EC PRIVATE KEY"), as `openssl ecparam -genkey` writes it.
        let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let sec1 =
            AsDer::<aws_lc_rs::encoding::EcPrivateKeyRfc5915Der>::as_der(&pair.private_key())
                .unwrap();
        let sec1 = pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1.as_ref().to_vec()));
        assert_eq!(
            ClientKey::from_pem(&sec1).unwrap().algorithm(),
            Algorithm::ES384
        );
        // A certificate before the key is skipped.
        let both = format!(
            "{}{}",
            pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3])),
            ec_pem()
        );
        assert!(ClientKey::from_pem(&both).is_ok());
    }

    #[test]
    fn unusable_key_files_say_why_without_key_material() {
        let public = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![0x30, 0x00]));
        let encrypted = pem::encode(&pem::Pem::new("ENCRYPTED PRIVATE KEY", vec![0x30, 0x00]));
        let garbage = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![0x30, 0x03, 1, 2, 3]));
        let other = pem::encode(&pem::Pem::new("OPENSSH PRIVATE KEY", vec![1, 2]));
        for (text, want) in [
            ("not a key at all", KeyError::NotPem),
            ("", KeyError::NotPem),
            (public.as_str(), KeyError::NotPrivate("PUBLIC KEY".into())),
            (encrypted.as_str(), KeyError::Encrypted),
            (garbage.as_str(), KeyError::Unusable),
            (
                other.as_str(),
                KeyError::Unsupported("OPENSSH PRIVATE KEY".into()),
            ),
        ] {
            assert_eq!(ClientKey::from_pem(text).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let pem_text = ec_pem();
        let key = ClientKey::from_pem(&pem_text).unwrap();
        let body_line = pem_text.lines().nth(1).unwrap();
        let (client, _, _) = client(true, None);
        let token = AccessToken {
            value: SecretString::from("tok-secret"),
            dpop_bound: true,
            generation: 3,
            refresh_at: t0(),
        };
        let shown = format!("{key:?} {client:?} {token:?}");
        assert!(!shown.contains(body_line), "{shown}");
        assert!(!shown.contains("tok-secret"), "{shown}");
        assert!(shown.contains("ES256"), "{shown}");
    }
}

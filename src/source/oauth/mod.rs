//! Okta OAuth 2.0 for service apps: client credentials with a `private_key_jwt` client
//! assertion, DPoP proofs (RFC 9449), and the one access token every request shares.
//!
//! Secrets stay in the request that carries them: the private key, client assertions, DPoP
//! proofs and access tokens never reach a log line, an error message or a `Debug` output, and
//! every header built from them is marked sensitive. Okta's `error` / `error_description` are
//! not secret and are quoted in errors, because they tell the admin what to fix.

mod jwt;
mod keys;
#[cfg(test)]
mod tests;
mod token;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderName;
use serde::Serialize;
use url::Url;

use crate::clock::Clock;

use keys::DpopKey;
pub use keys::{ClientKey, KeyError};
pub(crate) use token::{AccessToken, AuthHeaders, dpop_challenge};

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
/// The longest `expires_in` believed (Okta issues at most 24 h); a larger one is clamped, so a
/// hostile or odd answer (`expires_in: 1e13`) cannot overflow the clock arithmetic.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
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
    pub fn kind(&self) -> OAuthErrorKind {
        match self {
            OAuthError::InvalidClient { .. } => OAuthErrorKind::Client,
            OAuthError::InvalidScope { .. } | OAuthError::Forbidden { .. } => OAuthErrorKind::Scope,
            OAuthError::DpopRequired { .. } | OAuthError::DpopRejected { .. } => {
                OAuthErrorKind::Dpop
            }
            OAuthError::TokenRejected { .. } => OAuthErrorKind::Unauthorized,
            OAuthError::Rejected { .. } | OAuthError::Signing => OAuthErrorKind::Other,
        }
    }
}

/// What kind of [`OAuthError`] happened: a fixed set of labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorKind {
    /// `oauth_client`: the client id or key is wrong.
    Client,
    /// `oauth_scope`: a scope is not granted.
    Scope,
    /// `oauth_dpop`: DPoP is required or our proof was refused.
    Dpop,
    /// `unauthorized`: a fresh token was refused by the API.
    Unauthorized,
    /// `oauth`: any other OAuth error.
    Other,
}

impl OAuthErrorKind {
    /// The label: snake_case, from a fixed set.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorKind::Client => "oauth_client",
            OAuthErrorKind::Scope => "oauth_scope",
            OAuthErrorKind::Dpop => "oauth_dpop",
            OAuthErrorKind::Unauthorized => "unauthorized",
            OAuthErrorKind::Other => "oauth",
        }
    }
}

impl fmt::Display for OAuthErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for OAuthErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Compares the label, so `kind() == "oauth_scope"` reads as it did when kinds were strings.
impl PartialEq<&str> for OAuthErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
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
                     key of okta.private_key_file (or okta.private_key){kid}",
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
                "Okta rejected the DPoP proof {}, also a fresh one: most likely this machine's \
                 clock is off (a proof carries the time it was made; check NTP), else check \
                 that {REQUIRE_DPOP} on the app matches okta.dpop",
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
                f.write_str("could not sign a JWT for Okta with the app's private key (okta.private_key_file or okta.private_key)")
            }
        }
    }
}

impl std::error::Error for OAuthError {}

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

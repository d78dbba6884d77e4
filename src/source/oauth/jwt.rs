//! The JWTs q-group-sync signs: the `private_key_jwt` client assertion and DPoP proofs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header};
use reqwest::header::HeaderValue;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::token::sensitive;
use super::{ASSERTION_LIFETIME_SECS, DpopKey, OAuthClient, OAuthError};
use crate::source::SourceError;

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

/// `htu` of a proof: the URL without query string or fragment (RFC 9449 §4.2), with its path
/// percent-decoded: Okta compares `htu` with the request's path as decoded, so an encoded
/// character (a space in a user key) would otherwise fail the proof.
pub(crate) fn htu(url: &Url) -> String {
    format!(
        "{}{}",
        url.origin().ascii_serialization(),
        percent_decoded(url.path())
    )
}

/// `text` with every `%XX` escape decoded (invalid UTF-8 replaced; a stray `%` kept).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `ath` of a proof: base64url(SHA-256(access token)).
pub(crate) fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

impl OAuthClient {
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
    pub(super) fn client_assertion(&self, now: DateTime<Utc>) -> Result<SecretString, SourceError> {
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
    pub(super) fn proof(
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

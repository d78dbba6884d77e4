//! OAuth 2.0 of the Okta emulator: `POST /oauth2/v1/token` for a service app (client
//! credentials with a `private_key_jwt` assertion, DPoP with nonces), and the checks of
//! `Bearer` / `DPoP` tokens on `/api/v1` calls.
//!
//! Strict on purpose, so a client that passes here follows the documented protocol: the
//! assertion's signature, `iss`/`sub`/`aud`/`exp` and unused `jti`; the proof's `typ`, `jwk`,
//! signature, `htm`, `htu` (no query), `iat` freshness, unused `jti`, `ath` and key binding;
//! nonces; token expiry; scopes. Error shapes follow `shared/docs/okta-api.md` §5 and §8.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{AlgorithmFamily, DecodingKey, Validation};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::timefmt::epoch_secs;

/// Path of the org authorization server's token endpoint.
pub const TOKEN_PATH: &str = "/oauth2/v1/token";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Okta accepts client assertions that expire at most 1 h from now.
const ASSERTION_MAX_LIFETIME: i64 = 3600;

/// A public key registered on the service app ("Public keys" in the Admin Console).
#[derive(Clone, Debug)]
pub struct OAuthKey {
    /// Its KID, if any.
    pub kid: Option<String>,
    /// PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) or a JWK as JSON.
    pub public_key: String,
}

/// An OAuth 2.0 service app in the emulated org ([`crate::OktaOptions::oauth`]).
#[derive(Clone, Debug)]
pub struct OAuthApp {
    /// The app's Client ID.
    pub client_id: String,
    /// Keys client assertions may be signed with.
    pub public_keys: Vec<OAuthKey>,
    /// Scopes granted on the app's Okta API Scopes tab.
    pub granted_scopes: Vec<String>,
    /// The app has an admin role; without one, API calls answer 403 E0000006.
    pub admin_role: bool,
    /// "Require DPoP header in token requests".
    pub require_dpop: bool,
    /// The token endpoint asks for a nonce (`use_dpop_nonce`) until a proof carries the current one.
    pub require_nonce: bool,
    /// API calls ask for a nonce too (Okta does not currently).
    pub require_resource_nonce: bool,
    /// `expires_in` of issued tokens (Okta: 1 h).
    pub token_lifetime: Duration,
    /// A hostile or odd answer: this JSON number is sent as `expires_in` instead (e.g. `1e13`);
    /// the token still expires after `token_lifetime`.
    pub advertised_expires_in: Option<serde_json::Number>,
    /// Proofs whose `iat` is further than this from now are refused.
    pub proof_max_age: Duration,
}

impl Default for OAuthApp {
    fn default() -> Self {
        OAuthApp {
            client_id: "0oaEmulatorServiceApp".into(),
            public_keys: Vec::new(),
            granted_scopes: vec![
                "okta.groups.read".into(),
                "okta.users.read".into(),
                "okta.logs.read".into(),
            ],
            admin_role: true,
            require_dpop: true,
            require_nonce: true,
            require_resource_nonce: false,
            token_lifetime: Duration::from_secs(3600),
            advertised_expires_in: None,
            proof_max_age: Duration::from_secs(60),
        }
    }
}

/// One logged `POST /oauth2/v1/token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// Status answered.
    pub status: u16,
    /// The OAuth `error` answered, if any.
    pub error: Option<String>,
    /// Whether a `DPoP` header was sent.
    pub dpop: bool,
    /// `nonce` of the proof, if any.
    pub nonce: Option<String>,
}

/// An issued access token.
struct Issued {
    expires: SystemTime,
    scopes: Vec<String>,
    /// `cnf.jkt`: thumbprint of the DPoP key the token is bound to.
    jkt: Option<String>,
}

/// OAuth state of the emulator, kept under the org lock.
pub(crate) struct OAuthState {
    tokens: BTreeMap<String, Issued>,
    assertion_jtis: BTreeSet<String>,
    proof_jtis: BTreeSet<String>,
    nonce: String,
    resource_nonce: String,
    pub(crate) log: Vec<TokenRequest>,
    /// Every assertion and proof received, for leak tests.
    pub(crate) received: Vec<String>,
}

impl Default for OAuthState {
    fn default() -> Self {
        OAuthState {
            tokens: BTreeMap::new(),
            assertion_jtis: BTreeSet::new(),
            proof_jtis: BTreeSet::new(),
            nonce: random(32),
            resource_nonce: random(32),
            log: Vec::new(),
            received: Vec::new(),
        }
    }
}

impl OAuthState {
    /// New nonces; the old ones stop working at once.
    pub(crate) fn rotate_nonces(&mut self) {
        self.nonce = random(32);
        self.resource_nonce = random(32);
    }

    /// Every issued token expires now.
    pub(crate) fn expire_tokens(&mut self, now: SystemTime) {
        for token in self.tokens.values_mut() {
            token.expires = now;
        }
    }

    /// Every access token issued so far.
    pub(crate) fn issued(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }
}

fn random(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An OAuth error answer: `{"error": …, "error_description": …}`.
fn oauth_error(status: u16, error: &str, description: &str, nonce: Option<&str>) -> Response {
    let body = json!({ "error": error, "error_description": description });
    let mut response = json_response(status, &body);
    if let Some(nonce) = nonce
        && let Ok(value) = HeaderValue::from_str(nonce)
    {
        response.headers_mut().insert("dpop-nonce", value);
    }
    response
}

fn json_response(status: u16, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())) {
        headers.insert("date", date);
    }
    response
}

/// A registered key as a decoding key, with its algorithm family.
fn decoding_key(key: &OAuthKey) -> Option<DecodingKey> {
    let text = key.public_key.trim();
    if text.starts_with('{') {
        let jwk: Jwk = serde_json::from_str(text).ok()?;
        return DecodingKey::from_jwk(&jwk).ok();
    }
    DecodingKey::from_rsa_pem(text.as_bytes())
        .or_else(|_| DecodingKey::from_ec_pem(text.as_bytes()))
        .ok()
}

/// The claims of a DPoP proof the emulator reads.
#[derive(Deserialize)]
struct ProofClaims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// What a valid proof tells.
struct Proof {
    jkt: String,
    nonce: Option<String>,
}

/// Checks a DPoP proof for `htm htu` (and, on API calls, the token it comes with). `Err` is the
/// `error_description`.
fn verify_proof(
    proof: &str,
    htm: &str,
    htu: &str,
    token: Option<&str>,
    now: SystemTime,
    max_age: Duration,
    seen: &mut BTreeSet<String>,
) -> Result<Proof, String> {
    let header = jsonwebtoken::decode_header(proof)
        .map_err(|_| "The DPoP proof is not a valid JWT.".to_owned())?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err("The DPoP proof JWT 'typ' header must be 'dpop+jwt'.".into());
    }
    if header.alg.family() == AlgorithmFamily::Hmac {
        return Err("The DPoP proof must be signed with an asymmetric algorithm.".into());
    }
    let jwk = header
        .jwk
        .ok_or("The DPoP proof JWT header must contain a 'jwk'.")?;
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|_| "The DPoP proof 'jwk' is not a valid public key.".to_owned())?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
        .map_err(|_| "The DPoP proof signature is invalid.".to_owned())?
        .claims;
    if claims.htm.as_deref() != Some(htm) {
        return Err("'htm' claim in the DPoP proof JWT is invalid.".into());
    }
    if claims.htu.as_deref() != Some(htu) {
        return Err(format!(
            "'htu' claim in the DPoP proof JWT is invalid: expected {htu}"
        ));
    }
    let age = claims.iat.map(|iat| (epoch_secs(now) - iat).abs());
    if age.is_none_or(|age| age.unsigned_abs() > max_age.as_secs()) {
        return Err(
            "'iat' claim in the DPoP proof JWT is missing, too old or in the future.".into(),
        );
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or("The DPoP proof JWT must contain a 'jti'.")?;
    if !seen.insert(jti) {
        return Err("The DPoP proof 'jti' has already been used.".into());
    }
    if let Some(token) = token {
        let want = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if claims.ath.as_deref() != Some(want.as_str()) {
            return Err("'ath' claim in the DPoP proof JWT is invalid.".into());
        }
    }
    Ok(Proof {
        jkt: jwk.thumbprint(ThumbprintHash::SHA256),
        nonce: claims.nonce,
    })
}

/// Claims of a client assertion the emulator checks beyond what `Validation` does.
#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    jti: Option<String>,
}

/// `POST /oauth2/v1/token`.
pub(crate) fn token_endpoint(
    app: Option<&OAuthApp>,
    state: &mut OAuthState,
    base_url: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Response {
    let proof = header(headers, "dpop").map(str::to_owned);
    let (response, error, nonce) =
        match token_inner(app, state, base_url, proof.as_deref(), body, now) {
            Ok(response) => (response, None, None),
            Err(rejection) => {
                let response = oauth_error(
                    rejection.status,
                    rejection.error,
                    &rejection.description,
                    rejection.nonce.as_deref(),
                );
                (
                    response,
                    Some(rejection.error.to_owned()),
                    rejection.sent_nonce,
                )
            }
        };
    let sent_nonce = nonce.or_else(|| {
        proof
            .as_deref()
            .and_then(|p| jsonwebtoken::dangerous::insecure_decode::<ProofClaims>(p).ok())
            .and_then(|d| d.claims.nonce)
    });
    state.log.push(TokenRequest {
        status: response.status().as_u16(),
        error,
        dpop: proof.is_some(),
        nonce: sent_nonce,
    });
    response
}

/// A refused token request.
struct TokenRejection {
    status: u16,
    error: &'static str,
    description: String,
    /// `DPoP-Nonce` to send back.
    nonce: Option<String>,
    /// The nonce the proof carried (for the log).
    sent_nonce: Option<String>,
}

fn reject(status: u16, error: &'static str, description: impl Into<String>) -> TokenRejection {
    TokenRejection {
        status,
        error,
        description: description.into(),
        nonce: None,
        sent_nonce: None,
    }
}

fn invalid_client(description: &str) -> TokenRejection {
    reject(401, "invalid_client", description)
}

fn token_inner(
    app: Option<&OAuthApp>,
    state: &mut OAuthState,
    base_url: &str,
    proof: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Result<Response, TokenRejection> {
    let app = app.ok_or_else(|| {
        invalid_client("Client authentication failed. Either the client or the client credentials are invalid.")
    })?;
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return Err(reject(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        ));
    }
    let assertion = match (field("client_assertion_type"), field("client_assertion")) {
        (Some(CLIENT_ASSERTION_TYPE), Some(a)) => a.to_owned(),
        _ => {
            return Err(invalid_client(
                "Client authentication failed: a client_assertion of type jwt-bearer is required.",
            ));
        }
    };
    state.received.push(assertion.clone());
    if let Some(p) = proof {
        state.received.push(p.to_owned());
    }

    // --- client authentication (private_key_jwt) ---
    let unverified = jsonwebtoken::dangerous::insecure_decode::<AssertionClaims>(&assertion)
        .map_err(|_| invalid_client("The client_assertion is not a valid JWT."))?;
    let iss = unverified.claims.iss.as_deref();
    if iss != Some(app.client_id.as_str()) || unverified.claims.sub.as_deref() != iss {
        return Err(invalid_client("Invalid value for 'client_id' parameter."));
    }
    let candidates: Vec<&OAuthKey> = match &unverified.header.kid {
        Some(kid) => app
            .public_keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
            .collect(),
        None if app.public_keys.len() > 1 => {
            return Err(invalid_client(
                "The client_assertion token must have a 'kid' header: the client has more than one key.",
            ));
        }
        None => app.public_keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(invalid_client(
            "The client_assertion token has a 'kid' that does not match any key of the client.",
        ));
    }
    let token_url = format!("{base_url}{TOKEN_PATH}");
    let mut validation = Validation::new(unverified.header.alg);
    validation.set_audience(&[&token_url]);
    validation.set_issuer(&[&app.client_id]);
    validation.sub = Some(app.client_id.clone());
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.leeway = 0;
    let mut last = "The client_assertion signature is invalid.";
    let verified = candidates.iter().find_map(|key| {
        let key = decoding_key(key)?;
        match jsonwebtoken::decode::<AssertionClaims>(&assertion, &key, &validation) {
            Ok(data) => Some(data.claims),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                last = match e.kind() {
                    ErrorKind::ExpiredSignature => "The client_assertion token is expired.",
                    ErrorKind::InvalidAudience => {
                        "The audience claim for client_assertion must be the endpoint invoking the client_assertion."
                    }
                    _ => "The client_assertion signature is invalid.",
                };
                None
            }
        }
    });
    let claims = verified.ok_or_else(|| invalid_client(last))?;
    if claims
        .exp
        .is_none_or(|exp| exp - epoch_secs(now) > ASSERTION_MAX_LIFETIME)
    {
        return Err(invalid_client(
            "The client_assertion token has an expiration too far in the future.",
        ));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| invalid_client("The client_assertion token must have a 'jti' claim."))?;
    if !state.assertion_jtis.insert(jti) {
        return Err(invalid_client(
            "The client_assertion token has already been used.",
        ));
    }

    // --- DPoP ---
    let jkt = match proof {
        None if app.require_dpop => {
            return Err(reject(
                400,
                "invalid_dpop_proof",
                "The DPoP proof JWT header is missing.",
            ));
        }
        None => None,
        Some(proof) => {
            let checked = verify_proof(
                proof,
                "POST",
                &token_url,
                None,
                now,
                app.proof_max_age,
                &mut state.proof_jtis,
            )
            .map_err(|d| reject(400, "invalid_dpop_proof", d))?;
            if app.require_nonce && checked.nonce.as_deref() != Some(state.nonce.as_str()) {
                return Err(TokenRejection {
                    nonce: Some(state.nonce.clone()),
                    sent_nonce: checked.nonce,
                    ..reject(
                        400,
                        "use_dpop_nonce",
                        "Authorization server requires nonce in DPoP proof.",
                    )
                });
            }
            Some(checked.jkt)
        }
    };

    // --- scopes ---
    let scopes: Vec<String> = field("scope")
        .unwrap_or_default()
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err(reject(
            400,
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        ));
    }
    if scopes.iter().any(|s| !app.granted_scopes.contains(s)) {
        return Err(reject(
            400,
            "invalid_scope",
            "One or more scopes are not configured for the authorization server resource.",
        ));
    }

    let token = random(64);
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    state.tokens.insert(
        token.clone(),
        Issued {
            expires: now + app.token_lifetime,
            scopes: scopes.clone(),
            jkt,
        },
    );
    Ok(json_response(
        200,
        &json!({
            "token_type": token_type,
            "expires_in": app
                .advertised_expires_in
                .clone()
                .unwrap_or_else(|| app.token_lifetime.as_secs().into()),
            "access_token": token,
            "scope": scopes.join(" "),
        }),
    ))
}

/// Why an API call's OAuth credentials were refused.
pub(crate) struct Rejection {
    /// 401 or 403.
    pub status: u16,
    /// E0000011 or E0000006.
    pub code: &'static str,
    pub summary: &'static str,
    /// `WWW-Authenticate` to send.
    pub www_authenticate: String,
    /// `DPoP-Nonce` to send.
    pub nonce: Option<String>,
}

/// A refused DPoP proof on an API call: Okta answers 400 (not RFC 9449's 401) with the DPoP
/// challenge (okta-sdk-python #541, okta-sdk-nodejs #453, terraform-provider-okta #2392).
pub(crate) fn invalid_proof(description: &str) -> Rejection {
    Rejection {
        status: 400,
        // Okta's parameters first, the error among them.
        www_authenticate: format!(
            "DPoP algs=\"RS256 RS384 RS512 ES256 ES384 ES512\", realm=\"okta\", error=\"invalid_dpop_proof\", error_description=\"{}\"",
            description.replace('"', "'")
        ),
        ..invalid_token("DPoP", "invalid_dpop_proof", description)
    }
}

fn invalid_token(scheme: &str, error: &str, description: &str) -> Rejection {
    Rejection {
        status: 401,
        code: "E0000011",
        summary: "Invalid token provided",
        www_authenticate: format!(
            "{scheme} error=\"{error}\", error_description=\"{}\"",
            description.replace('"', "'")
        ),
        nonce: None,
    }
}

/// The scope an `/api/v1` path needs.
fn needed_scope(path: &str) -> &'static str {
    if path.starts_with("/api/v1/users") {
        "okta.users.read"
    } else if path.starts_with("/api/v1/logs") {
        "okta.logs.read"
    } else {
        "okta.groups.read"
    }
}

/// Checks `Authorization: Bearer|DPoP <token>` (and the proof) of an API call.
#[allow(clippy::too_many_arguments)]
pub(crate) fn authorize(
    app: Option<&OAuthApp>,
    state: &mut OAuthState,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
    method: &str,
    htu: &str,
    path: &str,
    now: SystemTime,
) -> Result<(), Rejection> {
    let dpop_scheme = scheme.eq_ignore_ascii_case("DPoP");
    let shown = if dpop_scheme { "DPoP" } else { "Bearer" };
    let (Some(app), Some(issued)) = (app, state.tokens.get(token)) else {
        return Err(invalid_token(
            shown,
            "invalid_token",
            "The access token is invalid.",
        ));
    };
    if issued.expires <= now {
        return Err(invalid_token(
            shown,
            "invalid_token",
            "The access token is expired.",
        ));
    }
    let jkt = issued.jkt.clone();
    let scopes_ok = issued.scopes.iter().any(|s| s == needed_scope(path));
    if let Some(proof) = proof {
        state.received.push(proof.to_owned());
    }
    match jkt {
        Some(jkt) => {
            if !dpop_scheme {
                return Err(invalid_token(
                    "DPoP",
                    "invalid_token",
                    "A DPoP-bound access token must use the DPoP authorization scheme.",
                ));
            }
            let proof =
                proof.ok_or_else(|| invalid_proof("The DPoP proof JWT header is missing."))?;
            let checked = verify_proof(
                proof,
                method,
                htu,
                Some(token),
                now,
                app.proof_max_age,
                &mut state.proof_jtis,
            )
            .map_err(|d| invalid_proof(&d))?;
            if checked.jkt != jkt {
                return Err(invalid_proof(
                    "The DPoP proof is not signed by the key the access token is bound to.",
                ));
            }
            if app.require_resource_nonce
                && checked.nonce.as_deref() != Some(state.resource_nonce.as_str())
            {
                return Err(Rejection {
                    nonce: Some(state.resource_nonce.clone()),
                    ..invalid_token(
                        "DPoP",
                        "use_dpop_nonce",
                        "Resource server requires nonce in DPoP proof.",
                    )
                });
            }
        }
        None if dpop_scheme => {
            return Err(invalid_token(
                "DPoP",
                "invalid_token",
                "The access token is not DPoP-bound.",
            ));
        }
        None => {}
    }
    if !scopes_ok || !app.admin_role {
        return Err(Rejection {
            status: 403,
            code: "E0000006",
            summary: "You do not have permission to perform the requested action",
            www_authenticate: format!(
                "{shown} error=\"insufficient_scope\", error_description=\"The access token provided does not contain the required scopes.\""
            ),
            nonce: None,
        });
    }
    Ok(())
}

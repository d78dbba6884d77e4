//! The OAuth client end to end in memory: keys, JWTs, token caching and errors.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
};
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::jwt::{AssertionClaims, ProofClaims, ath};
use super::token::{OAuthErrorBody, TokenStep, lifetime_of, refresh_at};
use super::*;
use crate::source::SourceError;

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
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(form.expose_secret().as_bytes())
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
fn htu_is_the_decoded_path_without_query() {
    let url = Url::parse("https://acme.okta.com:8443/api/v1/users/Ana%20Smith?x=1#f").unwrap();
    assert_eq!(
        super::jwt::htu(&url),
        "https://acme.okta.com:8443/api/v1/users/Ana Smith"
    );
    let url = Url::parse("https://acme.okta.com/api/v1/users/%C3%A9lodie%2Fx%zz").unwrap();
    assert_eq!(
        super::jwt::htu(&url),
        "https://acme.okta.com/api/v1/users/élodie/x%zz"
    );
}

#[test]
fn dpop_challenges_are_read_wherever_error_stands() {
    let headers = |v: &str| {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("www-authenticate", v.parse().unwrap());
        h
    };
    // As Okta sends it on an API call (okta-sdk-nodejs #453).
    let okta = headers(
        "DPoP algs=\"RS256 RS384 RS512 ES256 ES384 ES512\", authorization_uri=\"https://x.okta.com/oauth2/v1/authorize\", realm=\"https://x.okta.com\", scope=\"okta.groups.read\", error=\"invalid_dpop_proof\", error_description=\"'htu' claim in the DPoP proof JWT is invalid.\", resource=\"/api/v1/groups/00g/users\"",
    );
    assert_eq!(
        super::dpop_challenge(&okta),
        Some((
            "invalid_dpop_proof".to_owned(),
            "'htu' claim in the DPoP proof JWT is invalid.".to_owned()
        ))
    );
    let first = headers("DPoP error=\"use_dpop_nonce\", error_description=\"nonce\"");
    assert_eq!(
        super::dpop_challenge(&first).map(|(e, _)| e).as_deref(),
        Some("use_dpop_nonce")
    );
    let bearer = headers("Bearer error=\"invalid_token\"");
    assert_eq!(super::dpop_challenge(&bearer), None);
    let unquoted = headers("DPoP realm=x, error=invalid_dpop_proof");
    assert_eq!(
        super::dpop_challenge(&unquoted).map(|(e, _)| e).as_deref(),
        Some("invalid_dpop_proof")
    );
}

#[test]
fn proof_has_typ_jwk_htm_htu_without_query_and_ath() {
    let (client, _, clock) = client(true, None);
    let dpop = client.dpop.as_ref().unwrap();
    let url = Url::parse("https://acme.okta.com/api/v1/groups/00g1/users?limit=200&after=x#frag")
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
    let token_proof: ProofClaims = verify(token_proof.to_str().unwrap(), &jwk, Algorithm::ES256);
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
    // Hostile lifetimes are clamped to 24 h, never overflowing the clock.
    assert_eq!(at(10_000_000_000_000), TimeDelta::seconds(24 * 3600 - 300));
    assert_eq!(at(u64::MAX), TimeDelta::seconds(24 * 3600 - 300));
    let end = DateTime::<Utc>::MAX_UTC;
    assert_eq!(refresh_at(end, Duration::from_secs(3600)), end);
}

#[test]
fn expires_in_is_any_json_number_clamped() {
    let lifetime = |json: &str| lifetime_of(&serde_json::from_str(json).unwrap());
    assert_eq!(lifetime("3600"), Duration::from_secs(3600));
    assert_eq!(lifetime("3.6e3"), Duration::from_secs(3600));
    assert_eq!(lifetime("1e13"), Duration::from_secs(24 * 3600));
    assert_eq!(lifetime("10000000000000"), Duration::from_secs(24 * 3600));
    assert_eq!(lifetime("-5"), Duration::ZERO);
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
            &["DPoP proof", "clock is off", "okta.dpop"][..],
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
        AsDer::<aws_lc_rs::encoding::EcPrivateKeyRfc5915Der>::as_der(&pair.private_key()).unwrap();
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

//! OAuth 2.0 service-app auth (`private_key_jwt` + DPoP) against the Okta emulator: full syncs
//! through the real binary, token refresh across a long pass, every misconfiguration as a
//! one-line `check-config` error with exit 2, no secret in trace logs, and the emulator's own
//! strictness (so passing here means following the protocol).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Harness, TestKey, expected, text};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use q_group_sync::clock::{Clock, SystemClock};
use q_group_sync::source::oauth::{ClientKey, OAuthSettings};
use q_group_sync::source::okta::{OktaAuth, OktaSettings, OktaSource};
use q_group_sync::source::{DirectorySource, SourceError};
use q_group_sync_emulator::{
    FaultAction, Matcher, OAuthApp, OktaEmulator, OktaFault, OktaOptions, OktaOrg, TokenRequest,
};
use sha2::{Digest, Sha256};
use url::Url;

/// `groups` OKTA_GROUP groups with `members` users each.
fn org(groups: usize, members: usize) -> OktaOrg {
    let mut org = OktaOrg::default();
    for u in 0..members {
        org.add_user(
            &OktaOrg::user_id(u),
            "ACTIVE",
            Some(&format!("user{u}@example.test")),
            &format!("user{u}@example.test"),
        );
    }
    for g in 0..groups {
        let id = OktaOrg::group_id(g);
        org.add_group(&id, &format!("team-{g:03}"), "OKTA_GROUP");
        for u in 0..members {
            if (u + g) % 2 == 0 {
                org.add_member(&id, &OktaOrg::user_id(u));
            }
        }
    }
    org
}

fn app(key: &TestKey, kid: Option<&str>) -> OAuthApp {
    OAuthApp {
        public_keys: vec![key.registered(kid)],
        ..OAuthApp::default()
    }
}

fn options(app: OAuthApp) -> OktaOptions {
    OktaOptions {
        oauth: Some(app),
        ..OktaOptions::default()
    }
}

fn successes(tokens: &[TokenRequest]) -> usize {
    tokens.iter().filter(|t| t.status == 200).count()
}

// ---------------------------------------------------------------------------------------------
// Through the real binary
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_with_oauth_and_dpop() {
    let key = TestKey::rsa();
    let org = org(6, 8);
    let h = Harness::start_oauth(
        org.clone(),
        options(app(&key, Some("k1"))),
        &key,
        "key_id = \"k1\"\nscopes = [\"okta.groups.read\", \"okta.users.read\"]",
    )
    .await;

    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("OAuth token issued (DPoP) and accepted"),
        "{}",
        text(&out)
    );

    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), expected(&org));

    // Each process: the DPoP nonce challenge, then one token for the whole pass.
    let tokens = h.okta.token_requests();
    assert!(tokens.iter().all(|t| t.dpop), "{tokens:?}");
    assert_eq!(
        tokens
            .iter()
            .map(|t| (t.status, t.error.as_deref()))
            .collect::<Vec<_>>(),
        [
            (400, Some("use_dpop_nonce")),
            (200, None),
            (400, Some("use_dpop_nonce")),
            (200, None)
        ]
    );
    let requests = h.okta.requests();
    assert!(requests.len() > 6);
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_okta_refuses_with_400_is_retried_once_then_reported_in_one_line() {
    let key = TestKey::ec();
    let org = org(4, 5);
    let h = Harness::start_oauth(org.clone(), options(app(&key, None)), &key, "").await;
    // Refused once, as Okta refuses a proof on an API call: one fresh proof, and the pass runs.
    h.okta.add_fault(OktaFault::times(
        Matcher::groups_listing(),
        FaultAction::InvalidDpopProof,
        1,
    ));
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), expected(&org));
    let listing: Vec<u16> = h
        .okta
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/groups")
        .map(|r| r.status)
        .collect();
    assert_eq!(listing, [400, 200]);
    assert_eq!(successes(&h.okta.token_requests()), 1, "the token was kept");

    // Refused every time: one retry, then one line naming DPoP and the clock.
    h.okta.reset_request_log();
    h.okta.add_fault(OktaFault::always(
        Matcher::groups_listing(),
        FaultAction::InvalidDpopProof,
    ));
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let error = stdout
        .lines()
        .find(|l| l.starts_with("Pass failed: "))
        .unwrap_or_else(|| panic!("{}", text(&out)));
    assert!(
        error.contains("Okta rejected the DPoP proof (invalid_dpop_proof: ")
            && error.contains("clock"),
        "{error}"
    );
    let statuses: Vec<u16> = h.okta.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 400], "retried once, no more");
}

#[tokio::test]
async fn a_proof_for_an_encoded_path_names_it_decoded() {
    use q_group_sync::source::{UserDirectory, UserLookup};
    let key = TestKey::ec();
    let emu = emulator(app(&key, None)).await;
    let mut settings = client_settings(&emu, &key, true);
    if let OktaAuth::OAuth(oauth) = &mut settings.auth {
        oauth.scopes.push("okta.users.read".into());
    }
    let okta = OktaSource::new(settings).unwrap();
    // A key with a space goes out as `%20`; Okta checks the proof against the decoded path.
    let found = okta.find_user("No Such User").await.unwrap();
    assert!(matches!(found, UserLookup::NotFound), "{found:?}");
    let statuses: Vec<(String, u16)> = emu
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [("/api/v1/users/No%20Such%20User".to_owned(), 404)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_across_a_pass_longer_than_their_lifetime() {
    let key = TestKey::ec();
    // Refreshed when less than min(5 min, lifetime / 4) = 0.75 s is left.
    let lifetime = Duration::from_secs(3);
    let org = org(45, 6);
    let h = Harness::start_oauth(
        org.clone(),
        OktaOptions {
            latency: Duration::from_millis(150),
            ..options(OAuthApp {
                token_lifetime: lifetime,
                ..app(&key, None)
            })
        },
        &key,
        "max_concurrency = 1",
    )
    .await;
    let started = Instant::now();
    let out = h.run(&["sync"]).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(h.q_state(), expected(&org));
    assert!(
        took > lifetime * 2,
        "the pass outlived two tokens: {took:?}"
    );

    // No API request failed: every token was replaced before it expired.
    let requests = h.okta.requests();
    assert!(requests.len() >= 46, "{}", requests.len());
    let failed: Vec<_> = requests.iter().filter(|r| r.status != 200).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let tokens = h.okta.token_requests();
    assert!(successes(&tokens) >= 3, "{tokens:?}");
    // Only the very first token request met a nonce challenge; refreshes reuse the nonce.
    assert_eq!(tokens.iter().filter(|t| t.status != 200).count(), 1);
}

/// Runs `check-config` and returns its one error message, after checking exit 2.
async fn config_error(h: &Harness) -> String {
    let out = h.run(&["check-config"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    common::the_error(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_misconfiguration_is_a_one_line_error_and_exit_2() {
    let key = TestKey::ec();
    let other = TestKey::ec();
    let rsa = TestKey::rsa();
    let cases: Vec<(&str, OAuthApp, &TestKey, &str, Vec<&str>)> = vec![
        (
            "wrong client id",
            app(&key, None),
            &key,
            "client_id = \"0oaSomeOtherApp\"",
            vec![
                "invalid_client",
                "Invalid value for 'client_id' parameter",
                "okta.client_id",
                "\"Public keys\"",
            ],
        ),
        (
            "key not registered",
            app(&other, None),
            &key,
            "",
            vec![
                "invalid_client",
                "signature is invalid",
                "\"Public keys\"",
                "okta.private_key_file",
            ],
        ),
        (
            "an RSA key where the app has an EC one",
            app(&other, None),
            &rsa,
            "",
            vec!["invalid_client", "\"Public keys\""],
        ),
        (
            "kid mismatch",
            app(&key, Some("k1")),
            &key,
            "key_id = \"k2\"",
            vec!["invalid_client", "'kid'", "KID \"k2\" (okta.key_id)"],
        ),
        (
            "scope not granted",
            OAuthApp {
                granted_scopes: vec!["okta.users.read".into()],
                ..app(&key, None)
            },
            &key,
            "",
            vec![
                "invalid_scope",
                "\"okta.groups.read\"",
                "\"Okta API Scopes\"",
            ],
        ),
        (
            "no admin role",
            OAuthApp {
                admin_role: false,
                ..app(&key, None)
            },
            &key,
            "",
            vec!["E0000006", "okta.groups.read", "read-only admin role"],
        ),
        (
            "DPoP required but off",
            app(&key, None),
            &key,
            "dpop = false",
            vec![
                "invalid_dpop_proof",
                "set okta.dpop = true",
                "untick \"Require Demonstrating Proof of Possession",
            ],
        ),
    ];
    for (name, app, key, extra, needles) in cases {
        let h = Harness::start_oauth(org(1, 1), options(app), key, extra).await;
        let line = config_error(&h).await;
        for needle in needles {
            assert!(line.contains(needle), "{name}: {needle:?} not in {line}");
        }
        assert!(h.q_state().is_empty(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_key_files_are_one_line_errors_naming_the_key() {
    let key = TestKey::ec();
    let h = Harness::start_oauth(org(1, 1), options(app(&key, None)), &key, "").await;
    for (content, needle) in [
        (None, "cannot read"),
        (Some("not a key\n".to_owned()), "holds no PEM block"),
        (
            Some(key.public_pem.clone()),
            "holds a PUBLIC KEY, not a private key",
        ),
        (
            Some(
                key.private_pem
                    .replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
            ),
            "encrypted",
        ),
    ] {
        match &content {
            Some(text) => std::fs::write(h.key_path(), text).unwrap(),
            None => {
                let _ = std::fs::remove_file(h.key_path());
            }
        }
        let line = config_error(&h).await;
        assert!(line.contains("okta.private_key_file"), "{line}");
        assert!(line.contains(needle), "{needle:?} not in {line}");
        for secret in key.private_body_lines() {
            assert!(!line.contains(&secret), "{line}");
        }
    }
    assert!(h.okta.token_requests().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_output_even_at_trace() {
    let key = TestKey::rsa();
    let h = Harness::start_oauth(
        org(12, 4),
        OktaOptions {
            latency: Duration::from_millis(100),
            ..options(OAuthApp {
                token_lifetime: Duration::from_secs(2),
                require_resource_nonce: true,
                ..app(&key, None)
            })
        },
        &key,
        "max_concurrency = 1",
    )
    .await;
    let mut output = String::new();
    for args in [
        &["--log-level", "trace", "sync"][..],
        &["--log-level", "trace", "--log-format", "json", "plan"][..],
        &["--log-level", "trace", "check-config"][..],
    ] {
        let out = h.run(args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        output.push_str(&text(&out));
    }
    // A failure path too: the app's key changed under us.
    let h2 = Harness::start_oauth(org(1, 1), options(app(&TestKey::ec(), None)), &key, "").await;
    let out = h2.run(&["--log-level", "trace", "check-config"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    output.push_str(&text(&out));

    assert!(output.len() > 5000, "trace logging ran: {}", output.len());
    assert!(output.contains("Okta access token obtained"), "{output}");
    let tokens = h.okta.token_requests();
    assert!(successes(&tokens) >= 2, "tokens were refreshed: {tokens:?}");
    assert!(
        h.okta.requests().iter().any(|r| r.status == 401),
        "the resource nonce challenge ran"
    );

    let mut secrets: Vec<String> = key.private_body_lines();
    secrets.extend(h.okta.issued_tokens());
    secrets.extend(h.okta.received_jwts());
    secrets.extend(h2.okta.received_jwts());
    assert!(secrets.len() > 10);
    for secret in &secrets {
        assert!(!output.contains(secret.as_str()), "a secret leaked");
        // Not even the signature part of a JWT.
        if let Some(sig) = secret.rsplit('.').next().filter(|s| s.len() > 20) {
            assert!(!output.contains(sig), "a JWT signature leaked");
        }
    }
    // `eyJ` is how every base64url JSON object (a JWT header or claims) starts.
    assert!(!output.contains("eyJ"), "a JWT leaked");
}

// ---------------------------------------------------------------------------------------------
// The library client against the emulator
// ---------------------------------------------------------------------------------------------

fn client_settings(emu: &OktaEmulator, key: &TestKey, dpop: bool) -> OktaSettings {
    let app = emu.options().oauth.clone().unwrap();
    OktaSettings {
        org_url: Url::parse(&emu.url()).unwrap(),
        auth: OktaAuth::OAuth(OAuthSettings {
            client_id: app.client_id,
            key: ClientKey::from_pem(&key.private_pem).unwrap(),
            key_id: None,
            scopes: vec!["okta.groups.read".into()],
            dpop,
        }),
        group_filter: r#"type eq "OKTA_GROUP""#.into(),
        page_size: 3,
        member_page_size: 3,
        max_concurrency: 4,
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
        max_retry_wait: Duration::from_secs(1),
        id_attribute: "email".into(),
        rate_limit_share: 0.5,
    }
}

async fn emulator(app: OAuthApp) -> OktaEmulator {
    OktaEmulator::start(org(8, 5), options(app)).await.unwrap()
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_and_the_request_sent_again() {
    let key = TestKey::ec();
    let emu = emulator(app(&key, None)).await;
    let okta = OktaSource::new(client_settings(&emu, &key, true)).unwrap();
    assert_eq!(okta.list_groups().await.unwrap().len(), 8);
    emu.expire_tokens();
    emu.reset_request_log();
    okta.list_members(&OktaOrg::group_id(1)).await.unwrap();
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [401, 200],
        "a 401, then the page with a new token"
    );
    assert_eq!(successes(&emu.token_requests()), 2);
    assert_eq!(okta.stats().retries, 0, "a re-auth is not a retry");
}

#[tokio::test]
async fn a_token_the_api_keeps_refusing_is_an_actionable_error() {
    let key = TestKey::ec();
    let emu = emulator(OAuthApp {
        token_lifetime: Duration::ZERO,
        ..app(&key, None)
    })
    .await;
    let okta = OktaSource::new(client_settings(&emu, &key, true)).unwrap();
    let err = okta.list_groups().await.unwrap_err();
    assert_eq!(err.kind(), "unauthorized", "{err}");
    assert!(err.is_fatal());
    assert!(err.to_string().contains("okta.dpop"), "{err}");
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401], "refreshed and retried once, no more");
}

#[tokio::test]
async fn concurrent_requests_share_one_token_and_a_rotated_nonce_is_followed() {
    let key = TestKey::rsa();
    let emu = emulator(app(&key, None)).await;
    let okta = OktaSource::new(client_settings(&emu, &key, true)).unwrap();
    let reads = futures::future::join_all((0..8).map(|g| {
        let okta = &okta;
        async move { okta.list_members(&OktaOrg::group_id(g)).await }
    }))
    .await;
    assert!(reads.into_iter().all(|r| r.is_ok()));
    let tokens = emu.token_requests();
    assert_eq!(successes(&tokens), 1, "one refresh for all: {tokens:?}");
    let first_nonce = tokens[1].nonce.clone().unwrap();

    emu.rotate_dpop_nonce();
    emu.expire_tokens();
    okta.list_groups().await.unwrap();
    let tokens = emu.token_requests();
    let after: Vec<_> = tokens[2..]
        .iter()
        .map(|t| (t.status, t.error.as_deref()))
        .collect();
    assert_eq!(after, [(400, Some("use_dpop_nonce")), (200, None)]);
    assert_eq!(tokens[2].nonce.as_deref(), Some(first_nonce.as_str()));
    assert_ne!(tokens[3].nonce.as_deref(), Some(first_nonce.as_str()));
}

#[tokio::test]
async fn a_resource_nonce_challenge_is_answered_and_remembered() {
    let key = TestKey::ec();
    let emu = emulator(OAuthApp {
        require_resource_nonce: true,
        ..app(&key, None)
    })
    .await;
    let okta = OktaSource::new(client_settings(&emu, &key, true)).unwrap();
    okta.list_groups().await.unwrap();
    okta.list_members(&OktaOrg::group_id(2)).await.unwrap();
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses[0], 401);
    assert!(statuses[1..].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(successes(&emu.token_requests()), 1, "same token throughout");
}

#[tokio::test]
async fn bearer_tokens_without_dpop_when_the_app_allows_it() {
    let key = TestKey::rsa();
    let emu = emulator(OAuthApp {
        require_dpop: false,
        ..app(&key, None)
    })
    .await;
    let okta = OktaSource::new(client_settings(&emu, &key, false)).unwrap();
    assert_eq!(okta.list_groups().await.unwrap().len(), 8);
    let tokens = emu.token_requests();
    assert_eq!(tokens.len(), 1);
    assert!(!tokens[0].dpop);
    // With DPoP on anyway, the app binds the token and it works the same.
    let okta = OktaSource::new(client_settings(&emu, &key, true)).unwrap();
    assert_eq!(okta.list_groups().await.unwrap().len(), 8);
    assert!(emu.requests().iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn missing_scope_and_role_are_fatal_oauth_errors() {
    let key = TestKey::ec();
    let emu = emulator(OAuthApp {
        admin_role: false,
        ..app(&key, None)
    })
    .await;
    let okta = OktaSource::new(client_settings(&emu, &key, true)).unwrap();
    let err = okta.list_groups().await.unwrap_err();
    assert!(matches!(err, SourceError::OAuth(_)), "{err:?}");
    assert_eq!(err.kind(), "oauth_scope");
    assert!(err.is_fatal());
    assert_eq!(emu.request_count(), 1, "a 403 is not retried");
}

// ---------------------------------------------------------------------------------------------
// The emulator is strict
// ---------------------------------------------------------------------------------------------

fn now() -> i64 {
    SystemClock.now().timestamp()
}

fn jti() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
}

struct Dpop {
    key: EncodingKey,
    jwk: Jwk,
}

impl Dpop {
    fn new() -> Dpop {
        let key = EncodingKey::from_ec_pem(TestKey::ec().private_pem.as_bytes()).unwrap();
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        Dpop { key, jwk }
    }

    fn proof(&self, htm: &str, htu: &str, token: Option<&str>, nonce: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        let mut claims = serde_json::json!({ "jti": jti(), "htm": htm, "htu": htu, "iat": now() });
        if let Some(token) = token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(Sha256::digest(token.as_bytes()))
                .into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

fn assertion(key: &TestKey, client_id: &str, aud: &str) -> String {
    let key = EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap();
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "iat": now(), "exp": now() + 300, "jti": jti(),
    });
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
}

async fn post_token(emu: &OktaEmulator, assertion: &str, proof: &str) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", "okta.groups.read")
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", assertion)
        .finish();
    reqwest::Client::new()
        .post(format!("{}/oauth2/v1/token", emu.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", proof)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get_groups(emu: &OktaEmulator, auth: &str, proof: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/api/v1/groups?limit=2", emu.url()))
        .header("authorization", auth)
        .header("dpop", proof)
        .send()
        .await
        .unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn the_emulator_enforces_assertions_proofs_replays_and_binding() {
    let key = TestKey::ec();
    let emu = emulator(app(&key, None)).await;
    let client_id = emu.options().oauth.clone().unwrap().client_id;
    let token_url = format!("{}/oauth2/v1/token", emu.url());
    let dpop = Dpop::new();

    // No nonce yet: challenged, with the nonce in a header.
    let first = assertion(&key, &client_id, &token_url);
    let reply = post_token(&emu, &first, &dpop.proof("POST", &token_url, None, None)).await;
    let nonce = reply.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(error_of(reply).await, (400, "use_dpop_nonce".into()));
    // The same assertion again is a replay.
    let proof = dpop.proof("POST", &token_url, None, Some(&nonce));
    let reply = post_token(&emu, &first, &proof).await;
    assert_eq!(error_of(reply).await, (401, "invalid_client".into()));
    // A wrong audience is refused.
    let wrong_aud = assertion(&key, &client_id, "https://other.example/oauth2/v1/token");
    let proof = dpop.proof("POST", &token_url, None, Some(&nonce));
    let reply = post_token(&emu, &wrong_aud, &proof).await;
    assert_eq!(error_of(reply).await, (401, "invalid_client".into()));
    // A proof for another URL is refused.
    let proof = dpop.proof("POST", &format!("{token_url}?x=1"), None, Some(&nonce));
    let reply = post_token(&emu, &assertion(&key, &client_id, &token_url), &proof).await;
    assert_eq!(error_of(reply).await, (400, "invalid_dpop_proof".into()));
    // Fresh assertion and proof with the nonce: a DPoP token.
    let proof = dpop.proof("POST", &token_url, None, Some(&nonce));
    let reply = post_token(&emu, &assertion(&key, &client_id, &token_url), &proof).await;
    assert_eq!(reply.status(), 200);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();
    // The same proof again is a replay.
    let reply = post_token(&emu, &assertion(&key, &client_id, &token_url), &proof).await;
    assert_eq!(error_of(reply).await, (400, "invalid_dpop_proof".into()));

    let htu = format!("{}/api/v1/groups", emu.url());
    let auth = format!("DPoP {token}");
    let refused = |reply: reqwest::Response| async move {
        let status = reply.status().as_u16();
        let challenge = reply
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["errorCode"], "E0000011");
        (status, challenge)
    };
    // A refused proof is 400 with Okta's DPoP challenge; a refused token is 401.
    for (what, auth, proof, want) in [
        (
            "htu with the query",
            auth.clone(),
            dpop.proof("GET", &format!("{htu}?limit=2"), Some(&token), None),
            400,
        ),
        (
            "wrong ath",
            auth.clone(),
            dpop.proof("GET", &htu, Some("another-token"), None),
            400,
        ),
        (
            "no ath",
            auth.clone(),
            dpop.proof("GET", &htu, None, None),
            400,
        ),
        (
            "wrong htm",
            auth.clone(),
            dpop.proof("POST", &htu, Some(&token), None),
            400,
        ),
        (
            "another key",
            auth.clone(),
            Dpop::new().proof("GET", &htu, Some(&token), None),
            400,
        ),
        (
            "Bearer scheme",
            format!("Bearer {token}"),
            dpop.proof("GET", &htu, Some(&token), None),
            401,
        ),
    ] {
        let (status, challenge) = refused(get_groups(&emu, &auth, &proof).await).await;
        assert_eq!(status, want, "{what}");
        assert!(challenge.starts_with("DPoP "), "{what}: {challenge}");
        if want == 400 {
            assert!(
                challenge.contains("error=\"invalid_dpop_proof\""),
                "{what}: {challenge}"
            );
        }
    }
    let good = dpop.proof("GET", &htu, Some(&token), None);
    assert_eq!(get_groups(&emu, &auth, &good).await.status(), 200);
    // A proof is good once.
    let (status, challenge) = refused(get_groups(&emu, &auth, &good).await).await;
    assert_eq!(status, 400);
    assert!(challenge.contains("already been used"), "{challenge}");
    // Expired tokens are E0000011.
    emu.expire_tokens();
    let proof = dpop.proof("GET", &htu, Some(&token), None);
    let (status, challenge) = refused(get_groups(&emu, &auth, &proof).await).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("expired"), "{challenge}");

    let seen: BTreeSet<String> = emu.received_jwts().into_iter().collect();
    assert!(seen.contains(&first));
}

/// The key as PEM text in `Q_GROUP_SYNC_OKTA__PRIVATE_KEY`, the OAuth settings in the
/// environment too: how the ECS task definition (Secrets Manager) and Compose hand them over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_can_come_from_the_environment_as_pem_text() {
    let key = TestKey::ec();
    let org = org(3, 4);
    let app = app(&key, None);
    let client_id = app.client_id.clone();
    let h = Harness::start_with_okta(org.clone(), options(app), |_| String::new(), "").await;
    let escaped = key.private_pem.trim_end().replace('\n', "\\n");
    for (name, pem) in [
        ("multi-line", key.private_pem.as_str()),
        ("one line with \\n escapes", escaped.as_str()),
    ] {
        let env = [
            ("Q_GROUP_SYNC_OKTA__AUTH", "oauth"),
            ("Q_GROUP_SYNC_OKTA__CLIENT_ID", client_id.as_str()),
            ("Q_GROUP_SYNC_OKTA__PRIVATE_KEY", pem),
        ];
        let out = h.run_env(&["check-config"], &env).await;
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        assert!(
            text(&out).contains("OAuth token issued (DPoP) and accepted"),
            "{name}: {}",
            text(&out)
        );
        let out = h.run_env(&["sync"], &env).await;
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        assert_eq!(h.q_state(), expected(&org), "{name}");
        for secret in key.private_body_lines() {
            assert!(!text(&out).contains(&secret), "{name}: {}", text(&out));
        }
    }
    // A key that is not one: one line naming the variable's key, the key never echoed.
    let out = h
        .run_env(
            &["check-config"],
            &[
                ("Q_GROUP_SYNC_OKTA__AUTH", "oauth"),
                ("Q_GROUP_SYNC_OKTA__CLIENT_ID", client_id.as_str()),
                ("Q_GROUP_SYNC_OKTA__PRIVATE_KEY", key.public_pem.as_str()),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("okta.private_key: holds a PUBLIC KEY, not a private key"),
        "{}",
        text(&out)
    );
}

/// Each ECS task definition configures a working daemon through its environment alone: its
/// `environment`, and its `secrets` as ECS injects them from Secrets Manager. Only where Okta,
/// Q Business and the snapshot are is changed (to the emulators and a scratch directory), and
/// those variables must already be in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecs_task_definitions_configure_a_working_daemon() {
    for file in ["task-definition.json", "task-definition-oauth.json"] {
        let path = format!("{}/deploy/ecs/{file}", env!("CARGO_MANIFEST_DIR"));
        let td: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let c = &td["containerDefinitions"][0];
        let pairs = |list: &str, value: &str| -> Vec<(String, String)> {
            c[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_owned(),
                        e[value].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let mut env = pairs("environment", "value");
        let get = |env: &[(String, String)], k: &str| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        let wants_oauth = get(&env, "Q_GROUP_SYNC_OKTA__AUTH").as_deref() == Some("oauth");
        let key = TestKey::rsa();
        let options = match get(&env, "Q_GROUP_SYNC_OKTA__CLIENT_ID") {
            Some(client_id) => options(OAuthApp {
                client_id,
                ..app(&key, get(&env, "Q_GROUP_SYNC_OKTA__KEY_ID").as_deref())
            }),
            None => OktaOptions {
                token: common::TOKEN.into(),
                ..OktaOptions::default()
            },
        };
        let org = org(4, 6);
        let h = Harness::start_with_okta(org.clone(), options, |_| String::new(), "").await;
        // No config file settings: the environment is the whole configuration.
        std::fs::write(&h.config, "").unwrap();
        for (name, value) in [
            ("Q_GROUP_SYNC_OKTA__ORG_URL", h.okta.url()),
            (
                "Q_GROUP_SYNC_QBUSINESS__APPLICATION_ID",
                h.q.application_id(),
            ),
            ("Q_GROUP_SYNC_QBUSINESS__INDEX_ID", h.q.index_id()),
            (
                "Q_GROUP_SYNC_STATE__PATH",
                h.snapshot_path().display().to_string(),
            ),
            ("Q_GROUP_SYNC_SERVER__LISTEN", "127.0.0.1:0".to_owned()),
        ] {
            let slot = env.iter_mut().find(|(n, _)| n == name);
            slot.unwrap_or_else(|| panic!("{file}: no {name}")).1 = value;
        }
        env.push(("Q_GROUP_SYNC_QBUSINESS__ENDPOINT_URL".to_owned(), h.q.url()));
        for (name, _arn) in pairs("secrets", "valueFrom") {
            let value = match name.as_str() {
                "Q_GROUP_SYNC_OKTA__API_TOKEN" => common::TOKEN.to_owned(),
                "Q_GROUP_SYNC_OKTA__PRIVATE_KEY" => key.private_pem.clone(),
                "Q_GROUP_SYNC_SERVER__ADMIN_TOKEN" => "an-admin-token-of-32-characters!".to_owned(),
                other => panic!("{file}: a secret this test does not know: {other}"),
            };
            env.push((name, value));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = h.run_env(&["check-config"], &env).await;
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out));
        let out = h.run_env(&["sync"], &env).await;
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out));
        assert_eq!(h.q_state(), expected(&org), "{file}");
        assert_eq!(
            successes(&h.okta.token_requests()) > 0,
            wants_oauth,
            "{file}: OAuth used exactly when the task definition asks for it"
        );
    }
}

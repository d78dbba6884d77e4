//! What the real Okta client logs and shows in errors, at trace level: never the token.
//!
//! Its own test binary: a scoped `tracing` subscriber only sees the events of callsites whose
//! interest was computed while it was registered, and a callsite first hit by a test running in
//! parallel can cache "never" in between. Alone in its process, the test sees every event.
#![allow(clippy::unwrap_used)]

mod common;

use q_group_sync::source::DirectorySource;
use q_group_sync::source::okta::{OktaAuth, OktaSource};
use q_group_sync_emulator::{FaultAction, Matcher, OktaFault, OktaOptions, OktaOrg};
use secrecy::SecretString;

const TOKEN: &str = "00emulator-SECRET-token-Zq9";

#[tokio::test]
async fn the_token_never_appears_in_logs_or_errors() {
    let (captured, _guard) = common::capture_logs(tracing::Level::TRACE);

    let emu = common::okta_emulator(common::messy_org::org(), TOKEN, OktaOptions::default()).await;
    let group = OktaOrg::group_id(1);
    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group).on_page(2),
        FaultAction::RateLimited,
        1,
    ));
    emu.add_fault(OktaFault::times(
        Matcher::members_of(&group).on_page(3),
        FaultAction::Status(500),
        1,
    ));
    emu.add_fault(OktaFault::always(
        Matcher::members_of(&OktaOrg::group_id(2)),
        FaultAction::ForeignNextLink,
    ));
    let okta = OktaSource::new(common::okta_settings(&emu, 4)).unwrap();
    let mut errors = Vec::new();
    okta.list_groups().await.unwrap();
    okta.list_members(&group).await.unwrap();
    okta.check().await.unwrap();
    errors.push(okta.list_members(&OktaOrg::group_id(2)).await.unwrap_err());
    let mut s = common::okta_settings(&emu, 4);
    s.auth = OktaAuth::Ssws(SecretString::from(format!("{TOKEN}-but-wrong")));
    errors.push(OktaSource::new(s).unwrap().list_groups().await.unwrap_err());

    let logs = captured.text();
    assert!(
        logs.contains("Okta response"),
        "the client logged at debug/trace: {logs}"
    );
    assert!(logs.contains("retrying Okta request"), "{logs}");
    assert!(!logs.contains(TOKEN), "token in logs:\n{logs}");
    assert!(!logs.contains("SSWS"), "auth header in logs:\n{logs}");
    for err in &errors {
        let shown = format!("{err} {err:?} {:?}", std::error::Error::source(err));
        assert!(!shown.contains(TOKEN), "{shown}");
    }
    assert!(!format!("{okta:?} {:?}", common::okta_settings(&emu, 4)).contains(TOKEN));
}

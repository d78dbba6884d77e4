//! The config as operators write it: defaults, the example and deployment files, and the
//! errors that name the key at fault.

use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::ExposeSecret;

use super::*;

const MINIMAL: &str = r#"
    [okta]
    org_url = "https://acme.okta.com"
    api_token = "00secret"
    [qbusiness]
    application_id = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
    index_id = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"
    region = "us-east-1"
"#;

fn parse(toml: &str) -> Result<Config, ConfigError> {
    Config::from_figment(Figment::from(Toml::string(toml)))
}

#[test]
fn example_config_parses() {
    let example = include_str!("../../config/example.toml");
    // The example leaves the token out (it belongs in a secret); supply one.
    let figment = Figment::from(Toml::string(example))
        .merge(Serialized::default("okta.api_token", "00example"));
    let config = Config::from_figment(figment).expect("example stays valid");
    let defaults = parse(MINIMAL).expect("minimal parses");
    assert_eq!(config.okta.page_size, defaults.okta.page_size);
    assert_eq!(config.okta.member_page_size, defaults.okta.member_page_size);
    assert_eq!(defaults.okta.member_page_size, 1000);
    assert_eq!(config.okta.group_filter, defaults.okta.group_filter);
    assert_eq!(config.users.statuses, defaults.users.statuses);
    assert_eq!(config.state.path, defaults.state.path);
    let (example, default) = (&config.okta.events, &defaults.okta.events);
    assert_eq!(
        (
            example.enabled,
            example.poll_interval,
            example.max_delay,
            example.lookback,
            example.page_size
        ),
        (
            default.enabled,
            default.poll_interval,
            default.max_delay,
            default.lookback,
            default.page_size
        ),
        "the example shows the defaults"
    );
}

#[test]
fn deployment_configs_parse() {
    for (name, text) in [
        (
            "kubernetes base",
            include_str!("../../deploy/kubernetes/config.toml"),
        ),
        (
            "kubernetes ha component",
            include_str!("../../deploy/kubernetes/components/ha/config.toml"),
        ),
    ] {
        let c = Config::from_figment(Figment::from(Toml::string(text)))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            c.state.backend == StateBackend::Postgres,
            name.contains("ha"),
            "{name}"
        );
    }
}

#[test]
fn postgres_state_is_checked_and_its_url_is_a_secret() {
    let pg = |state: &str| {
        parse(&format!(
            "{MINIMAL}\n[state]\nbackend = \"postgres\"\n{state}\n"
        ))
    };
    let c = pg("url = \"postgres://u:pw-secret@db.example.test/app\"").expect("parses");
    assert_eq!(c.state.tls, PgTls::VerifyFull);
    assert_eq!(c.state.schema, "q_group_sync");
    assert_eq!(c.state.leader_takeover, Duration::from_secs(15));
    assert!(!format!("{c:?}").contains("pw-secret"));
    assert!(
        !serde_json::to_string(&c)
            .expect("json")
            .contains("pw-secret")
    );
    for (state, key) in [
        ("", "state.url"),
        ("url = \"postgres://h/d\"\nurl_file = \"/x\"", "state.url"),
        ("url_file = \"/x\"\nschema = \"Bad-Name\"", "state.schema"),
        ("url_file = \"/x\"\nschema = \"pg_catalog\"", "state.schema"),
        ("url_file = \"/x\"\npool_size = 0", "state.pool_size"),
        (
            "url_file = \"/x\"\nleader_takeover = \"1s\"",
            "state.leader_takeover",
        ),
        ("url_file = \"/x\"\ntls = \"prefer\"", "state.tls"),
        (
            "url_file = \"/x\"\ntls = \"require\"\ntls_ca_file = \"/ca\"",
            "state.tls_ca_file",
        ),
    ] {
        let err = pg(state).expect_err(key);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
    // PostgreSQL keys with the SQLite backend are a mistake, not silently ignored.
    let err = parse(&format!("{MINIMAL}\n[state]\nurl_file = \"/x\"\n")).expect_err("sqlite");
    assert!(err.to_string().contains("state.backend"), "{err}");
    // url_file: read on demand, one line.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("url");
    std::fs::write(&path, "postgres://u:p@h/d\n").expect("write");
    let c = pg(&format!("url_file = {:?}", path)).expect("parses");
    assert_eq!(
        c.state.postgres_url().expect("reads").expose_secret(),
        "postgres://u:p@h/d"
    );
    std::fs::write(&path, "postgres://u:p@h/d\nmore\n").expect("write");
    let err = c.state.postgres_url().expect_err("two lines");
    assert!(err.to_string().contains("state.url_file"), "{err}");
}

#[test]
fn defaults_apply() {
    let c = parse(MINIMAL).expect("parses");
    assert_eq!(c.okta.group_filter, r#"type eq "OKTA_GROUP""#);
    assert_eq!(c.okta.page_size, 200);
    assert_eq!(c.groups.include, vec!["*"]);
    assert_eq!(c.users.id_attribute, "email");
    assert_eq!(
        c.users.statuses,
        vec!["ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"]
    );
    assert!(c.users.fold_subaddress);
    assert_eq!(c.qbusiness.inline_member_limit, 1000);
}

#[test]
fn unknown_key_is_named() {
    let err =
        parse(&format!("{MINIMAL}\n[state]\npath = \"x.db\"\nbogus = 1\n")).expect_err("rejected");
    assert!(err.to_string().contains("bogus"), "{err}");
    assert!(err.to_string().contains("state"), "{err}");
}

#[test]
fn wrong_type_is_named() {
    let toml = MINIMAL.replace("[qbusiness]", "page_size = \"many\"\n[qbusiness]");
    let err = parse(&toml).expect_err("rejected");
    assert!(err.to_string().contains("okta.page_size"), "{err}");
}

#[test]
fn http_only_for_loopback() {
    let err = parse(&MINIMAL.replace("https://acme.okta.com", "http://acme.okta.com"))
        .expect_err("rejected");
    assert!(err.to_string().contains("okta.org_url"), "{err}");
    parse(&MINIMAL.replace("https://acme.okta.com", "http://127.0.0.1:8080")).expect("loopback ok");
    parse(&MINIMAL.replace("https://acme.okta.com", "http://localhost:8080"))
        .expect("localhost ok");
}

#[test]
fn bad_values_are_named() {
    for (from, to, key) in [
        (
            "region = \"us-east-1\"",
            "region = \"US EAST\"",
            "qbusiness.region",
        ),
        (
            "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
            "short",
            "qbusiness.application_id",
        ),
        (
            "[qbusiness]",
            "page_size = 0\n[qbusiness]",
            "okta.page_size",
        ),
        (
            "[qbusiness]",
            "member_page_size = 10001\n[qbusiness]",
            "okta.member_page_size",
        ),
        (
            "[qbusiness]",
            "[users]\nstatuses = [\"ACTIV\"]\n[qbusiness]",
            "users.statuses",
        ),
        (
            "[qbusiness]",
            "[groups]\ninclude = [\"[\"]\n[qbusiness]",
            "groups.include",
        ),
    ] {
        let err = parse(&MINIMAL.replace(from, to)).expect_err(key);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

#[test]
fn token_is_not_in_debug() {
    let c = parse(MINIMAL).expect("parses");
    assert!(!format!("{c:?}").contains("00secret"));
    assert!(
        !serde_json::to_string(&c)
            .expect("serialises")
            .contains("00secret")
    );
}

#[test]
fn okta_auth_defaults_to_ssws_and_oauth_keys_have_defaults() {
    let c = parse(MINIMAL).expect("parses");
    assert_eq!(c.okta.auth, OktaAuthMode::Ssws);
    assert_eq!(c.okta.scopes, vec!["okta.groups.read", "okta.users.read"]);
    assert!(c.okta.dpop);
    assert_eq!(
        (c.okta.client_id.as_ref(), c.okta.key_id.as_ref()),
        (None, None)
    );
}

#[test]
fn oauth_needs_client_id_and_key_file_but_no_api_token() {
    let oauth = MINIMAL.replace(
        "api_token = \"00secret\"",
        "auth = \"oauth\"\nclient_id = \"0oa1\"\nprivate_key_file = \"/run/k.pem\"",
    );
    let c = parse(&oauth).expect("oauth parses without an API token");
    assert_eq!(c.okta.auth, OktaAuthMode::OAuth);
    for (from, to, key) in [
        ("client_id = \"0oa1\"\n", "", "okta.client_id"),
        (
            "client_id = \"0oa1\"",
            "client_id = \"0oa 1\"",
            "okta.client_id",
        ),
        (
            "private_key_file = \"/run/k.pem\"",
            "",
            "okta.private_key_file",
        ),
        (
            "auth = \"oauth\"",
            "auth = \"oauth\"\nkey_id = \"\"",
            "okta.key_id",
        ),
        (
            "auth = \"oauth\"",
            "auth = \"oauth\"\nscopes = [\"okta.users.read\"]",
            "okta.scopes",
        ),
        (
            "auth = \"oauth\"",
            "auth = \"oauth\"\nscopes = [\"okta.groups.read okta.users.read\"]",
            "okta.scopes",
        ),
        ("auth = \"oauth\"", "auth = \"bearer\"", "okta.auth"),
    ] {
        let err = parse(&oauth.replace(from, to)).expect_err(key);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
    // OAuth keys without okta.auth = "oauth" are a mistake, not silently ignored.
    let err = parse(&MINIMAL.replace("[qbusiness]", "client_id = \"0oa1\"\n[qbusiness]"))
        .expect_err("ssws with client_id");
    assert!(err.to_string().contains("okta.auth = \"oauth\""), "{err}");
    // The key file is read on demand, and a missing one names the key.
    let err = c.okta_private_key_pem().expect_err("no such file");
    assert!(err.to_string().contains("okta.private_key_file"), "{err}");
}

#[test]
fn events_default_off_with_documented_defaults() {
    let c = parse(MINIMAL).expect("parses");
    let e = &c.okta.events;
    assert!(!e.enabled);
    assert_eq!(e.poll_interval, Duration::from_secs(15));
    assert_eq!(e.max_delay, Duration::from_secs(60));
    assert_eq!(e.lookback, Duration::from_secs(300));
    assert_eq!(e.page_size, 1000);
    let on = parse(&format!(
        "{MINIMAL}\n[okta.events]\nenabled = true\npoll_interval = \"5s\"\nmax_delay = \"30s\"\nlookback = \"1h\"\npage_size = 200\n"
    ))
    .expect("parses");
    assert!(on.okta.events.enabled);
    assert_eq!(on.okta.events.lookback, Duration::from_secs(3600));
}

#[test]
fn bad_event_settings_are_named() {
    for (events, key, needle) in [
        ("page_size = 0", "okta.events.page_size", "1 to 1000"),
        ("page_size = 1001", "okta.events.page_size", "1 to 1000"),
        (
            "poll_interval = \"2m\"",
            "okta.events.poll_interval",
            "max_delay",
        ),
        (
            "poll_interval = \"0s\"",
            "okta.events.poll_interval",
            "more than zero",
        ),
        (
            "poll_interval = \"500ms\"",
            "okta.events.poll_interval",
            "60/min",
        ),
        (
            "max_delay = \"0s\"",
            "okta.events.max_delay",
            "more than zero",
        ),
        ("lookback = \"91days\"", "okta.events.lookback", "retention"),
        ("bogus = 1", "bogus", "okta.events"),
    ] {
        let toml = format!("{MINIMAL}\n[okta.events]\n{events}\n");
        let err = parse(&toml).expect_err(events).to_string();
        assert!(err.contains(key) && err.contains(needle), "{events}: {err}");
    }
    // 1 s is exactly half of 120/min; with the whole bucket, 500 ms fits.
    parse(&format!(
        "{MINIMAL}\n[okta.events]\npoll_interval = \"1s\"\n"
    ))
    .expect("fits");
    let toml = MINIMAL.replace("[qbusiness]", "rate_limit_share = 1.0\n[qbusiness]");
    parse(&format!(
        "{toml}\n[okta.events]\npoll_interval = \"500ms\"\n"
    ))
    .expect("fits");
}

#[test]
fn events_with_oauth_need_the_logs_scope_too() {
    let oauth = MINIMAL.replace(
        "api_token = \"00secret\"",
        "auth = \"oauth\"\nclient_id = \"0oa1\"\nprivate_key_file = \"/run/k.pem\"",
    );
    parse(&oauth).expect("events off: the default scopes are enough");
    let err = parse(&format!("{oauth}\n[okta.events]\nenabled = true\n"))
        .expect_err("missing scopes")
        .to_string();
    assert!(err.contains("okta.scopes"), "{err}");
    assert!(err.contains("okta.logs.read"), "{err}");
    let some = oauth.replace(
        "private_key_file = \"/run/k.pem\"",
        "private_key_file = \"/run/k.pem\"\nscopes = [\"okta.groups.read\", \"okta.logs.read\"]",
    );
    let err = parse(&format!("{some}\n[okta.events]\nenabled = true\n"))
        .expect_err("missing users scope")
        .to_string();
    assert!(
        err.contains("okta.users.read") && !err.contains("needs okta.logs.read"),
        "{err}"
    );
    let all = oauth.replace(
        "private_key_file = \"/run/k.pem\"",
        "private_key_file = \"/run/k.pem\"\nscopes = [\"okta.groups.read\", \"okta.logs.read\", \"okta.users.read\"]",
    );
    parse(&format!("{all}\n[okta.events]\nenabled = true\n")).expect("all scopes");
}

#[test]
fn token_file_is_read_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    std::fs::write(&path, "00filetoken\n").expect("write");
    let toml = MINIMAL.replace(
        "api_token = \"00secret\"",
        &format!("api_token_file = {:?}", path),
    );
    let c = parse(&toml).expect("parses");
    assert_eq!(
        c.okta_token().expect("reads").expose_secret(),
        "00filetoken"
    );
    std::fs::remove_file(&path).expect("rm");
    let err = c.okta_token().expect_err("missing file");
    assert!(err.to_string().contains("okta.api_token_file"), "{err}");
}

#[test]
fn schedule_is_parsed_at_load_and_a_bad_one_names_the_key() {
    let c = parse(MINIMAL).expect("parses");
    assert_eq!(c.schedule.cron.as_str(), DEFAULT_CRON);
    let five = parse(&format!("{MINIMAL}\n[schedule]\ncron = \"*/5 * * * *\"\n")).expect("parses");
    assert_eq!(five.schedule.cron_with_seconds(), "0 */5 * * * *");
    let err = parse(&format!("{MINIMAL}\n[schedule]\ncron = \"0 61 * * * *\"\n"))
        .expect_err("bad minute")
        .to_string();
    assert!(
        err.contains("schedule.cron") && err.contains("is not a cron expression"),
        "{err}"
    );
}

#[test]
fn take_over_takes_names_and_prefixes_and_names_a_bad_entry() {
    let c = parse(&format!(
        "{MINIMAL}\n[groups]\ntake_over = [\"Sales & Marketing\", \"legacy-*\", \"*\"]\n"
    ))
    .expect("valid");
    assert_eq!(c.groups.take_over.len(), 3);
    assert!(parse(MINIMAL).expect("minimal").groups.take_over.is_empty());
    for bad in ["\"\"", "\"tab\\there\""] {
        let err = parse(&format!("{MINIMAL}\n[groups]\ntake_over = [{bad}]\n"))
            .expect_err(bad)
            .to_string();
        assert!(err.contains("groups.take_over"), "{err}");
    }
}

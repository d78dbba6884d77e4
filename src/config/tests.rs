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

/// The smallest SCIM-fed config.
const SCIM_MINIMAL: &str = r#"
    [scim]
    token = "0123456789abcdef0123456789abcdef"
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
    assert_eq!(
        config.okta.as_ref().expect("[okta]").page_size,
        defaults.okta.as_ref().expect("[okta]").page_size
    );
    assert_eq!(
        config.okta.as_ref().expect("[okta]").member_page_size,
        defaults.okta.as_ref().expect("[okta]").member_page_size
    );
    assert_eq!(
        defaults.okta.as_ref().expect("[okta]").member_page_size,
        1000
    );
    assert_eq!(
        config.okta.as_ref().expect("[okta]").group_filter,
        defaults.okta.as_ref().expect("[okta]").group_filter
    );
    assert_eq!(config.users.statuses, defaults.users.statuses);
    assert_eq!(config.state.path, defaults.state.path);
    let (example, default) = (
        &config.okta.as_ref().expect("[okta]").events,
        &defaults.okta.as_ref().expect("[okta]").events,
    );
    assert_eq!(
        (
            example.enabled,
            example.poll_interval(),
            example.max_delay,
            example.lookback,
            example.page_size
        ),
        (
            default.enabled,
            default.poll_interval(),
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
            "kubernetes overlay example",
            include_str!("../../deploy/examples/kubernetes-overlay/config.toml"),
        ),
        (
            "kubernetes ha overlay example",
            include_str!("../../deploy/examples/kubernetes-ha-overlay/config.toml"),
        ),
        (
            "kubernetes oauth overlay example",
            include_str!("../../deploy/examples/kubernetes-oauth-overlay/config.toml"),
        ),
        (
            "kubernetes scim overlay example",
            include_str!("../../deploy/examples/kubernetes-scim-overlay/config.toml"),
        ),
    ] {
        let c = Config::from_figment(Figment::from(Toml::string(text)))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            c.state.backend == StateBackend::Postgres,
            name.contains("ha"),
            "{name}"
        );
        assert_eq!(c.scim.is_some(), name.contains("scim"), "{name}");
        assert_eq!(
            c.okta
                .as_ref()
                .is_some_and(|o| o.auth == OktaAuthMode::OAuth),
            name.contains("oauth"),
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
    assert_eq!(
        c.okta.as_ref().expect("[okta]").group_filter,
        r#"type eq "OKTA_GROUP""#
    );
    assert_eq!(c.okta.as_ref().expect("[okta]").page_size, 200);
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
    assert_eq!(c.okta.as_ref().expect("[okta]").auth, OktaAuthMode::Ssws);
    assert_eq!(
        c.okta.as_ref().expect("[okta]").scopes,
        vec!["okta.groups.read", "okta.users.read"]
    );
    assert!(c.okta.as_ref().expect("[okta]").dpop);
    assert_eq!(
        (
            c.okta.as_ref().expect("[okta]").client_id.as_ref(),
            c.okta.as_ref().expect("[okta]").key_id.as_ref()
        ),
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
    assert_eq!(c.okta.as_ref().expect("[okta]").auth, OktaAuthMode::OAuth);
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
fn oauth_key_inline_as_pem_text_instead_of_a_file() {
    let pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
    let inline = format!("private_key = '''{pem}'''");
    let oauth = MINIMAL.replace(
        "api_token = \"00secret\"",
        &format!("auth = \"oauth\"\nclient_id = \"0oa1\"\n{inline}"),
    );
    let c = parse(&oauth).expect("an inline key replaces the key file");
    assert_eq!(
        c.okta
            .as_ref()
            .expect("[okta]")
            .private_key_pem()
            .expect("key")
            .expose_secret(),
        pem
    );
    // Never shown: not in Debug, not when serialised.
    assert!(!format!("{c:?}").contains("MIGHAgEA"));
    assert!(
        !serde_json::to_string(&c)
            .expect("serialises")
            .contains("MIGHAgEA")
    );
    match c
        .okta
        .as_ref()
        .expect("[okta]")
        .credentials()
        .expect("credentials")
    {
        OktaCredentials::OAuth {
            private_key_source, ..
        } => assert_eq!(private_key_source, "okta.private_key:"),
        other => panic!("{other:?}"),
    }
    // One line with `\n` escapes, as an env file carries it, is the same key.
    let one_line = oauth.replace(
        &inline,
        &format!("private_key = '{}'", pem.replace('\n', "\\n")),
    );
    let c = parse(&one_line).expect("one line");
    assert_eq!(
        c.okta
            .as_ref()
            .expect("[okta]")
            .private_key_pem()
            .expect("key")
            .expose_secret(),
        pem
    );
    // Exactly one of the two; empty is refused; and it is an OAuth key only.
    for (toml, needle) in [
        (
            oauth.replace(
                "auth = \"oauth\"",
                "auth = \"oauth\"\nprivate_key_file = \"/k.pem\"",
            ),
            "not both",
        ),
        (oauth.replace(&inline, "private_key = \"  \""), "is empty"),
        (
            MINIMAL.replace("[qbusiness]", "private_key = \"x\"\n[qbusiness]"),
            "okta.auth = \"oauth\"",
        ),
    ] {
        let err = parse(&toml).expect_err(needle).to_string();
        assert!(
            err.contains("okta.private_key") && err.contains(needle),
            "{err}"
        );
        assert!(!err.contains("MIGHAgEA"), "{err}");
    }
    // Neither: the message names both ways of giving the key.
    let err = parse(&oauth.replace(&inline, ""))
        .expect_err("no key")
        .to_string();
    assert!(
        err.contains("okta.private_key_file") && err.contains("Q_GROUP_SYNC_OKTA__PRIVATE_KEY"),
        "{err}"
    );
}

#[test]
fn events_default_off_with_documented_defaults() {
    let c = parse(MINIMAL).expect("parses");
    let e = &c.okta.as_ref().expect("[okta]").events;
    assert!(!e.enabled);
    assert_eq!(e.poll_interval(), Duration::from_secs(5));
    assert_eq!(e.max_delay, Duration::from_secs(60));
    assert_eq!(e.lookback, Duration::from_secs(300));
    assert_eq!(e.page_size, 1000);
    let on = parse(&format!(
        "{MINIMAL}\n[okta.events]\nenabled = true\npoll_interval = \"5s\"\nmax_delay = \"30s\"\nlookback = \"1h\"\npage_size = 200\n"
    ))
    .expect("parses");
    assert!(on.okta.as_ref().expect("[okta]").events.enabled);
    assert_eq!(
        on.okta.as_ref().expect("[okta]").events.lookback,
        Duration::from_secs(3600)
    );
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
fn max_delay_alone_is_accepted_and_the_poll_interval_follows_it() {
    let c = parse(&format!(
        "{MINIMAL}\n[okta.events]\nenabled = true\nmax_delay = \"3s\"\n"
    ))
    .expect("max_delay alone parses");
    assert_eq!(
        c.okta.as_ref().expect("[okta]").events.poll_interval(),
        Duration::from_secs(3)
    );
    let c = parse(&format!("{MINIMAL}\n[okta.events]\nmax_delay = \"10m\"\n")).expect("parses");
    assert_eq!(
        c.okta.as_ref().expect("[okta]").events.poll_interval(),
        Duration::from_secs(5)
    );
    // Set explicitly, a poll interval over max_delay is still an error.
    let err = parse(&format!(
        "{MINIMAL}\n[okta.events]\nmax_delay = \"5s\"\npoll_interval = \"10s\"\n"
    ))
    .expect_err("over max_delay");
    assert!(
        err.to_string().contains("okta.events.poll_interval"),
        "{err}"
    );
}

#[test]
fn an_unquoted_secret_is_not_echoed() {
    for (key, toml) in [
        (
            "okta.api_token",
            MINIMAL.replace("api_token = \"00secret\"", "api_token = 98765432101234"),
        ),
        (
            "server.admin_token",
            format!("{MINIMAL}\n[server]\nadmin_token = 98765432101234\n"),
        ),
    ] {
        let err = parse(&toml)
            .expect_err("a number is not a token")
            .to_string();
        assert!(err.contains(key), "{err}");
        assert!(!err.contains("98765432101234"), "{err}");
        assert!(err.contains("quote it"), "{err}");
    }
}

#[test]
fn a_toml_syntax_error_gives_line_and_column_but_not_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    // An unquoted token that is not a number either: a syntax error on line 3.
    let toml = MINIMAL.replace("api_token = \"00secret\"", "api_token = 00s3cr3t-T0ken/x");
    let line = toml
        .lines()
        .position(|l| l.contains("00s3cr3t"))
        .expect("the line")
        + 1;
    std::fs::write(&path, &toml).expect("write");
    let err = Config::load_with_env(Some(&path), Vec::new())
        .expect_err("not TOML")
        .to_string();
    assert!(
        err.contains(&format!("TOML syntax error at line {line}, column")),
        "{err}"
    );
    assert!(!err.contains("00s3cr3t"), "{err}");
    assert!(!err.contains("api_token ="), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn userinfo_is_refused_in_every_url_key_and_not_echoed() {
    for (key, toml) in [
        (
            "okta.org_url",
            MINIMAL.replace(
                "https://acme.okta.com",
                "https://admin:hunter2pw@acme.okta.com",
            ),
        ),
        (
            "qbusiness.endpoint_url",
            MINIMAL.replace(
                "region = \"us-east-1\"",
                "region = \"us-east-1\"\nendpoint_url = \"https://admin:hunter2pw@q.example.com\"",
            ),
        ),
        (
            "qbusiness.s3_endpoint_url",
            MINIMAL.replace(
                "region = \"us-east-1\"",
                "region = \"us-east-1\"\nlarge_groups = \"s3\"\ns3_bucket = \"member-files\"\nrole_arn = \"arn:aws:iam::123456789012:role/q\"\ns3_endpoint_url = \"https://hunter2pw@s3.example.com\"",
            ),
        ),
        (
            "okta.org_url",
            // Not even a URL: the parse error must not show it either.
            MINIMAL.replace(
                "https://acme.okta.com",
                "https://admin:hunter2pw@acme okta.com",
            ),
        ),
    ] {
        let err = parse(&toml).expect_err("userinfo refused").to_string();
        assert!(err.contains(key), "{err}");
        assert!(
            err.contains("user name or password") || err.contains("not shown"),
            "{err}"
        );
        assert!(!err.contains("hunter2pw"), "{err}");
    }
}

#[test]
fn s3_endpoint_url_takes_plain_http_only_to_loopback() {
    let with = |url: &str| {
        MINIMAL.replace(
            "region = \"us-east-1\"",
            &format!("region = \"us-east-1\"\nlarge_groups = \"s3\"\ns3_bucket = \"member-files\"\nrole_arn = \"arn:aws:iam::123456789012:role/q\"\ns3_endpoint_url = \"{url}\""),
        )
    };
    let err = parse(&with("http://s3.example.com")).expect_err("plain http refused");
    assert!(
        err.to_string().contains("qbusiness.s3_endpoint_url"),
        "{err}"
    );
    parse(&with("http://127.0.0.1:9000")).expect("loopback is fine");
    parse(&with("https://s3.example.com")).expect("https is fine");
}

#[test]
fn environment_values_are_typed_by_key_and_name_their_variable() {
    let dir = std::env::temp_dir().join(format!("q-group-sync-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("config.toml");
    std::fs::write(&path, MINIMAL).expect("write");
    let vars = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let c = Config::load_with_env(
        Some(&path),
        vars(&[
            ("Q_GROUP_SYNC_GROUPS__NAME_PREFIX", "0123"),
            ("Q_GROUP_SYNC_GROUPS__EXCLUDE", "Everyone,Temp *"),
            ("Q_GROUP_SYNC_OKTA__EVENTS__MAX_DELAY", "5s"),
            ("Q_GROUP_SYNC_OKTA__API_TOKEN", "00123"),
            ("Q_GROUP_SYNC_PORT", "tcp://10.0.0.1:9090"),
            ("Q_GROUP_SYNC_SERVICE_HOST", "10.0.0.1"),
        ]),
    )
    .expect("loads");
    assert_eq!(c.groups.name_prefix.as_deref(), Some("0123"));
    assert_eq!(c.groups.exclude, ["Everyone", "Temp *"]);
    assert_eq!(
        c.okta.as_ref().expect("[okta]").events.poll_interval(),
        Duration::from_secs(5)
    );
    assert_eq!(c.okta_token().expect("token").expose_secret(), "00123");
    // A duration's own parser names the variable.
    let err = Config::load_with_env(
        Some(&path),
        vars(&[("Q_GROUP_SYNC_SYNC__OVERLAP", "two minutes")]),
    )
    .expect_err("bad duration")
    .to_string();
    assert!(
        err.contains("sync.overlap") && err.contains("Q_GROUP_SYNC_SYNC__OVERLAP"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn no_config_at_all_says_how_to_give_one() {
    let err = Config::load_with_env(None, Vec::new())
        .expect_err("no config")
        .to_string();
    assert!(
        err.contains("--config") && err.contains("Q_GROUP_SYNC_CONFIG"),
        "{err}"
    );
}

/// Every leaf of the config, as the serialised form shows it, is in the environment key
/// table with a matching type, and the table names no other key.
#[test]
fn the_environment_key_table_matches_the_config() {
    let toml = format!(
        "{MINIMAL}\n[okta.events]\npoll_interval = \"5s\"\n[groups]\nname_prefix = \"x\"\n"
    );
    let value = serde_json::to_value(parse(&toml).expect("parses")).expect("serialises");
    // The other source's section, from a SCIM config.
    let scim = parse(SCIM_MINIMAL).expect("parses");
    let scim = serde_json::to_value(scim.scim).expect("serialises");
    let mut value = value;
    value["scim"] = scim;
    let mut leaves = Vec::new();
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            _ => out.push((prefix.to_owned(), v.clone())),
        }
    }
    walk("", &value, &mut leaves);
    let table: Vec<&str> = env::KEYS.iter().map(|(k, _)| *k).collect();
    let mut serialised: Vec<&str> = leaves.iter().map(|(k, _)| k.as_str()).collect();
    serialised.sort_unstable();
    let mut sorted = table.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, serialised, "env::KEYS and Config differ");
    for (key, v) in &leaves {
        let ty = env::KEYS
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| *t)
            .expect("in the table");
        let fits = match v {
            serde_json::Value::Null => true,
            serde_json::Value::String(_) => {
                matches!(ty, env::EnvType::Str | env::EnvType::Secret)
            }
            serde_json::Value::Bool(_) => ty == env::EnvType::Bool,
            serde_json::Value::Number(n) if n.is_f64() => ty == env::EnvType::Float,
            serde_json::Value::Number(_) => ty == env::EnvType::Int,
            serde_json::Value::Array(_) => ty == env::EnvType::List,
            serde_json::Value::Object(_) => ty == env::EnvType::Str,
        };
        assert!(fits, "{key}: table says {ty:?}, config serialises {v}");
    }
}

/// Every grace period the deployment files give the process (Kubernetes
/// terminationGracePeriodSeconds, ECS stopTimeout, compose stop_grace_period) leaves at least
/// 10 s beyond the `server.shutdown_grace` of every config under deploy/, so a shutdown that
/// takes its whole grace still records what it wrote before SIGKILL.
#[test]
fn deployment_grace_periods_leave_room_for_shutdown_grace() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("deploy/ is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy"),
        &mut files,
    );
    files.sort();
    let number = |line: &str, key: &str| -> Option<u64> {
        let rest = line.trim().trim_start_matches('"').strip_prefix(key)?;
        let digits: String = rest
            .trim_start_matches(['"', ':', ' '])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let mut graces = Vec::new();
    let mut graces_needed = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            for key in [
                "terminationGracePeriodSeconds",
                "stopTimeout",
                "stop_grace_period",
            ] {
                if let Some(secs) = number(line, key) {
                    graces.push((file.clone(), secs));
                }
            }
        }
        if file.extension().is_some_and(|e| e == "toml") {
            let grace: Option<String> = Figment::from(Toml::string(&text))
                .extract_inner("server.shutdown_grace")
                .ok();
            let grace = grace.map_or(Duration::from_secs(30), |g| {
                humantime::parse_duration(&g).expect("a duration")
            });
            graces_needed.push((file.clone(), grace));
        }
    }
    assert!(!graces.is_empty(), "deploy/ sets grace periods");
    assert!(!graces_needed.is_empty(), "deploy/ has configs");
    for (config, need) in &graces_needed {
        for (file, secs) in &graces {
            assert!(
                need.as_secs() + 10 <= *secs,
                "{}: server.shutdown_grace {} leaves less than 10 s before {} kills the process ({secs} s)",
                config.display(),
                humantime::format_duration(*need),
                file.display()
            );
        }
    }
}

#[test]
fn a_setting_of_an_alternative_not_chosen_names_the_selector() {
    for (extra, key, selector) in [
        (
            "[okta]\nclient_id = \"0oa1\"\n",
            "okta.client_id",
            "okta.auth",
        ),
        ("[okta]\ndpop = false\n", "okta.dpop", "okta.auth"),
        (
            "[state]\nurl_file = \"/run/pg\"\n",
            "state.url_file",
            "state.backend",
        ),
        (
            "[state]\npool_size = 2\n",
            "state.pool_size",
            "state.backend",
        ),
        (
            "[qbusiness]\ns3_bucket = \"b-1\"\n",
            "qbusiness.s3_bucket",
            "qbusiness.large_groups",
        ),
        (
            "[qbusiness]\nverify_sample_percent = 5\n",
            "qbusiness.verify_sample_percent",
            "qbusiness.verify",
        ),
    ] {
        let (section, rest) = extra.split_once('\n').expect("a table");
        let toml = MINIMAL.replacen(&format!("{section}\n"), &format!("{section}\n{rest}"), 1);
        let toml = if toml == MINIMAL {
            format!("{MINIMAL}\n{extra}")
        } else {
            toml
        };
        let err = parse(&toml).expect_err(key).to_string();
        assert!(err.contains(key) && err.contains(selector), "{key}: {err}");
    }
    // The default alternative's keys are ignored when another is chosen (a leftover token).
    let oauth = MINIMAL.replace(
        "api_token = \"00secret\"",
        "api_token = \"00secret\"\nauth = \"oauth\"\nclient_id = \"0oa1\"\nprivate_key_file = \"/k.pem\"",
    );
    parse(&oauth).expect("a leftover SSWS token is only warned about");
    // An on/off switch keeps its settings while off.
    parse(&format!(
        "{MINIMAL}\n[okta.events]\nenabled = false\nmax_delay = \"5s\"\n"
    ))
    .expect("events settings stay while events are off");
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

#[test]
fn one_source_exactly() {
    let both = format!("{MINIMAL}\n[scim]\ntoken = \"0123456789abcdef0123456789abcdef\"\n");
    let err = parse(&both).expect_err("both sources").to_string();
    assert!(err.contains("[okta] and [scim] are both set"), "{err}");
    let neither = MINIMAL.replace("[okta]", "[ignored]");
    let neither = neither
        .lines()
        .filter(|l| !l.contains("org_url") && !l.contains("api_token") && !l.contains("[ignored]"))
        .collect::<Vec<_>>()
        .join("\n");
    let err = parse(&neither).expect_err("no source").to_string();
    assert!(err.contains("no source: set [okta]"), "{err}");
    let scim = parse(SCIM_MINIMAL).expect("a SCIM config");
    assert!(matches!(scim.source(), Ok(crate::config::Source::Scim(_))));
    assert_eq!(scim.scim.as_ref().map(|s| s.listen.port()), Some(8443));
    let err = scim.okta("explain").expect_err("no okta").to_string();
    assert!(err.contains("explain reads Okta's API"), "{err}");
}

#[test]
fn scim_token_rules() {
    let short = SCIM_MINIMAL.replace("0123456789abcdef0123456789abcdef", "short");
    let err = parse(&short).expect_err("short token").to_string();
    assert!(err.contains("scim.token: holds fewer than 32"), "{err}");
    assert!(!err.contains("short"), "the token is never echoed: {err}");
    let none = SCIM_MINIMAL.replace("token = \"0123456789abcdef0123456789abcdef\"", "");
    let err = parse(&none).expect_err("no token").to_string();
    assert!(err.contains("scim.token: missing"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("scim-token");
    std::fs::write(&file, "fedcba9876543210fedcba9876543210\n").expect("write");
    let from_file = none.replace(
        "[scim]",
        &format!(
            "[scim]\ntoken_file = \"{}\"\nuser_id = \"userName\"",
            file.display()
        ),
    );
    let c = parse(&from_file).expect("token file");
    let scim = c.scim.as_ref().expect("scim");
    assert_eq!(scim.user_id, crate::config::ScimUserId::UserName);
    use secrecy::ExposeSecret;
    assert_eq!(
        scim.token().expect("reads").expose_secret(),
        "fedcba9876543210fedcba9876543210"
    );
    let slow = SCIM_MINIMAL.replace("[scim]", "[scim]\nsettle = \"5s\"\nmax_delay = \"1s\"");
    let err = parse(&slow).expect_err("max_delay < settle").to_string();
    assert!(err.contains("scim.max_delay"), "{err}");
}

//! Shared harness for the integration tests: emulators on 127.0.0.1:0, a config file, the
//! real binary, and an independent oracle of what Q Business should hold.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use q_group_sync_emulator::{OktaEmulator, OktaOptions, OktaOrg, QEmulator, QOptions};

pub mod messy_org;
pub mod postgres;

pub const TOKEN: &str = "00TopSecretOktaTokenValue-never-log-me";

/// Client settings for the Okta emulator `emu`: SSWS, OKTA_GROUPs, pages of 2, short timeouts.
pub fn okta_settings(
    emu: &OktaEmulator,
    max_concurrency: usize,
) -> q_group_sync::source::okta::OktaSettings {
    q_group_sync::source::okta::OktaSettings {
        org_url: url::Url::parse(&emu.url()).unwrap(),
        auth: q_group_sync::source::okta::OktaAuth::Ssws(secrecy::SecretString::from(emu.token())),
        group_filter: r#"type eq "OKTA_GROUP""#.into(),
        page_size: 2,
        member_page_size: 2,
        max_concurrency,
        request_timeout: std::time::Duration::from_secs(5),
        max_retries: 3,
        max_retry_wait: std::time::Duration::from_secs(2),
        id_attribute: "email".into(),
        rate_limit_share: 0.5,
    }
}

/// The Okta emulator over `org`, accepting `token`.
pub async fn okta_emulator(org: OktaOrg, token: &str, options: OktaOptions) -> OktaEmulator {
    OktaEmulator::start(
        org,
        OktaOptions {
            token: token.into(),
            ..options
        },
    )
    .await
    .unwrap()
}

/// Emulators plus a temp dir with a config file and the snapshot path.
pub struct Harness {
    pub okta: OktaEmulator,
    pub q: QEmulator,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Harness {
    pub async fn start(org: OktaOrg) -> Harness {
        Harness::start_with(
            org,
            OktaOptions {
                token: TOKEN.into(),
                ..OktaOptions::default()
            },
            "",
        )
        .await
    }

    /// `extra` is appended to the generated TOML (extra keys under a trailing table, or whole tables).
    pub async fn start_with(org: OktaOrg, options: OktaOptions, extra: &str) -> Harness {
        Harness::start_with_okta(org, options, |_| String::new(), extra).await
    }

    /// Like [`Harness::start_with`]; `okta_extra(dir)` adds lines to the `[okta]` table (`dir` is
    /// the temp dir, for key files).
    pub async fn start_with_okta(
        org: OktaOrg,
        options: OktaOptions,
        okta_extra: impl FnOnce(&Path) -> String,
        extra: &str,
    ) -> Harness {
        let okta = OktaEmulator::start(org, options)
            .await
            .expect("okta emulator");
        let q = QEmulator::start(QOptions::default())
            .await
            .expect("q emulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        let toml = format!(
            r#"
[okta]
org_url = "{okta}"
max_retries = 3
max_retry_wait = "5s"
request_timeout = "5s"
{okta_extra}

[qbusiness]
application_id = "{app}"
index_id = "{idx}"
region = "us-east-1"
endpoint_url = "{q}"
retry_initial_backoff = "10ms"

[state]
path = "{state}"
{extra}
"#,
            okta = okta.url(),
            app = q.application_id(),
            idx = q.index_id(),
            q = q.url(),
            state = dir.path().join("snapshot.db").display(),
            okta_extra = okta_extra(dir.path()),
        );
        std::fs::write(&config, toml).expect("write config");
        Harness {
            okta,
            q,
            dir,
            config,
        }
    }

    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.path().join("snapshot.db")
    }

    /// Runs the binary with `args` after `--config`; the token comes from the environment.
    pub async fn run(&self, args: &[&str]) -> Output {
        run_binary(&self.config, args, &[]).await
    }

    pub async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        run_binary(&self.config, args, env).await
    }

    /// Q groups (name -> users) as the emulator holds them.
    pub fn q_state(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.q
            .groups()
            .into_iter()
            .map(|(name, g)| (name, g.users))
            .collect()
    }
}

pub async fn run_binary(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("Q_GROUP_SYNC_OKTA__API_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "emulator-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", config.parent().unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    cmd.output().await.expect("run q-group-sync")
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What Q should hold for `org` under the default config, computed independently of the
/// product: OKTA_GROUP groups; members ACTIVE, PASSWORD_EXPIRED, LOCKED_OUT or RECOVERY with a
/// non-empty email; ids lowercased with `+tag` dropped.
pub fn expected(org: &OktaOrg) -> BTreeMap<String, BTreeSet<String>> {
    let entitled = ["ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"];
    let mut out = BTreeMap::new();
    for g in org.groups.values().filter(|g| g.group_type == "OKTA_GROUP") {
        let mut members = BTreeSet::new();
        for uid in &g.members {
            let Some(u) = org.users.get(uid) else {
                continue;
            };
            if !entitled.contains(&u.status.as_str()) {
                continue;
            }
            let Some(email) = u.profile.get("email").and_then(|v| v.as_str()) else {
                continue;
            };
            let email = email.trim().to_lowercase();
            if email.is_empty() {
                continue;
            }
            let email = match email.split_once('@') {
                Some((local, domain)) => {
                    let base = local.split('+').next().unwrap_or(local);
                    if base.is_empty() {
                        email.clone()
                    } else {
                        format!("{base}@{domain}")
                    }
                }
                None => email.clone(),
            };
            members.insert(email);
        }
        out.insert(g.name.clone(), members);
    }
    out
}

/// A running `serve` process with its stderr captured.
pub struct Served {
    pub child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub http: reqwest::Client,
    /// The admin token the process runs with, if any; `status()` sends it.
    pub admin: Option<String>,
}

/// The admin token `Harness::serve` gives a process whose config sets none.
pub const DEFAULT_ADMIN: &str = "test-admin-token-0123456789";

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    /// `/status` with the admin token when there is one (the detail).
    pub async fn status(&self) -> serde_json::Value {
        let mut req = self.http.get(self.url("/status"));
        if let Some(admin) = &self.admin {
            req = req.bearer_auth(admin);
        }
        req.send()
            .await
            .expect("GET /status")
            .json()
            .await
            .expect("status JSON")
    }

    /// `/status` as anyone sees it.
    pub async fn public_status(&self) -> serde_json::Value {
        self.get("/status").await.json().await.expect("status JSON")
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until `cond(status)` holds, up to `secs` seconds.
    pub async fn wait_status(
        &self,
        secs: u64,
        what: &str,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let s = self.status().await;
            if cond(&s) {
                return s;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; status: {s:#}\nlogs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    }
}

/// A `[schedule]` that fires on 1 January only: the passes of a test run at start-up and on
/// demand.
pub const YEARLY: &str = "\n[schedule]\ncron = \"0 0 0 1 1 *\"\n";

/// [`YEARLY`] with `[server] admin_token = token`.
pub fn yearly_with_admin(token: &str) -> String {
    format!("{YEARLY}[server]\nadmin_token = \"{token}\"\n")
}

impl Harness {
    /// Adds `toml` to the config, starts `serve` (as [`Harness::serve`]) and waits up to
    /// `secs` for its start-up pass to succeed.
    pub async fn serve_synced(&self, toml: &str, secs: u64) -> Served {
        self.add_config(toml);
        let s = self.serve(&[]).await;
        s.wait_status(secs, "start-up pass", |st| {
            st["last_pass"]["outcome"] == "success"
        })
        .await;
        s
    }

    /// Starts `serve` with `server.listen = 127.0.0.1:0` and waits for its address. Without
    /// an admin token in the config or `env`, it gets [`DEFAULT_ADMIN`].
    pub async fn serve(&self, env: &[(&str, &str)]) -> Served {
        let configured = self.configured_admin(env);
        if configured.is_some() {
            return self.serve_as(env, configured).await;
        }
        let mut env = env.to_vec();
        env.push(("Q_GROUP_SYNC_SERVER__ADMIN_TOKEN", DEFAULT_ADMIN));
        self.serve_as(&env, Some(DEFAULT_ADMIN.to_owned())).await
    }

    /// Starts `serve` with only the admin token the config or `env` sets (maybe none).
    pub async fn serve_no_default_admin(&self, env: &[(&str, &str)]) -> Served {
        let configured = self.configured_admin(env);
        self.serve_as(env, configured).await
    }

    /// The admin token set in `env` or the config file.
    fn configured_admin(&self, env: &[(&str, &str)]) -> Option<String> {
        if let Some((_, v)) = env
            .iter()
            .find(|(k, _)| *k == "Q_GROUP_SYNC_SERVER__ADMIN_TOKEN")
        {
            return Some((*v).to_owned());
        }
        let text = std::fs::read_to_string(&self.config).ok()?;
        text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("admin_token")?.trim_start();
            let rest = rest.strip_prefix('=')?.trim();
            Some(rest.trim_matches('"').to_owned())
        })
    }

    async fn serve_as(&self, env: &[(&str, &str)], admin: Option<String>) -> Served {
        use tokio::io::AsyncBufReadExt;
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(["--log-format", "json", "serve"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("Q_GROUP_SYNC_OKTA__API_TOKEN", TOKEN)
            .env("Q_GROUP_SYNC_SERVER__LISTEN", "127.0.0.1:0")
            .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
            .env("AWS_SECRET_ACCESS_KEY", "emulator-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn serve");
        let stderr = child.stderr.take().expect("stderr");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "listening"
                    && let Some(addr) = v["addr"].as_str().and_then(|a| a.parse().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = tokio::time::timeout(std::time::Duration::from_secs(20), rx)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "serve did not start listening; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                )
            })
            .expect("address");
        Served {
            child,
            addr,
            logs,
            http: reqwest::Client::new(),
            admin,
        }
    }

    /// Appends TOML to the config file.
    pub fn add_config(&self, toml: &str) {
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        text.push_str(toml);
        std::fs::write(&self.config, text).unwrap();
    }
}

/// A key pair made for one test: the service app's private key and its public half, as PEM.
#[derive(Clone)]
pub struct TestKey {
    /// PKCS#8 `PRIVATE KEY`.
    pub private_pem: String,
    /// SPKI `PUBLIC KEY`, as registered in the Okta app.
    pub public_pem: String,
}

impl TestKey {
    /// RSA 2048 (RS256).
    pub fn rsa() -> TestKey {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
        use aws_lc_rs::signature::KeyPair;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let private = AsDer::<Pkcs8V1Der>::as_der(&pair).unwrap();
        let public = AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
        TestKey::from_der(private.as_ref(), public.as_ref())
    }

    /// EC P-256 (ES256).
    pub fn ec() -> TestKey {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let private = pair.to_pkcs8v1().unwrap();
        let public = AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
        TestKey::from_der(private.as_ref(), public.as_ref())
    }

    fn from_der(private: &[u8], public: &[u8]) -> TestKey {
        TestKey {
            private_pem: pem::encode(&pem::Pem::new("PRIVATE KEY", private.to_vec())),
            public_pem: pem::encode(&pem::Pem::new("PUBLIC KEY", public.to_vec())),
        }
    }

    /// The key registered in an emulated app, with `kid`.
    pub fn registered(&self, kid: Option<&str>) -> q_group_sync_emulator::OAuthKey {
        q_group_sync_emulator::OAuthKey {
            kid: kid.map(str::to_owned),
            public_key: self.public_pem.clone(),
        }
    }

    /// Lines of the base64 body of the private key (what a leak would show).
    pub fn private_body_lines(&self) -> Vec<String> {
        self.private_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(str::to_owned)
            .collect()
    }
}

impl Harness {
    /// Starts the emulators with `options.oauth` as the org's service app, writes `key` to
    /// `okta-key.pem` and a config with `okta.auth = "oauth"` for that app; `okta_extra` adds
    /// `[okta]` lines (e.g. `dpop = false`, `key_id = "k1"`, or a `client_id` override).
    pub async fn start_oauth(
        org: OktaOrg,
        options: OktaOptions,
        key: &TestKey,
        okta_extra: &str,
    ) -> Harness {
        let app = options.oauth.clone().expect("options.oauth");
        let client_id = if okta_extra.contains("client_id") {
            String::new()
        } else {
            format!("client_id = \"{}\"\n", app.client_id)
        };
        let private_pem = key.private_pem.clone();
        let okta_extra = okta_extra.to_owned();
        Harness::start_with_okta(
            org,
            options,
            move |dir| {
                let path = dir.join("okta-key.pem");
                std::fs::write(&path, private_pem).unwrap();
                format!(
                    "auth = \"oauth\"\n{client_id}private_key_file = {:?}\n{okta_extra}\n",
                    path.display().to_string()
                )
            },
            "",
        )
        .await
    }

    /// The private key file written by [`Harness::start_oauth`].
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("okta-key.pem")
    }
}

/// An org of `users` ACTIVE users (`user<N>@example.test`) and `groups` OKTA_GROUPs named
/// `name(g)`, where user `u` is a member of group `g` when `member(u, g)`.
pub fn org_with(
    groups: usize,
    users: usize,
    name: impl Fn(usize) -> String,
    mut member: impl FnMut(usize, usize) -> bool,
) -> OktaOrg {
    let mut o = OktaOrg::default();
    for u in 0..users {
        let email = format!("user{u}@example.test");
        o.add_user(&OktaOrg::user_id(u), "ACTIVE", Some(&email), &email);
    }
    for g in 0..groups {
        let gid = OktaOrg::group_id(g);
        o.add_group(&gid, &name(g), "OKTA_GROUP");
        for u in 0..users {
            if member(u, g) {
                o.add_member(&gid, &OktaOrg::user_id(u));
            }
        }
    }
    o
}

/// The `error` field of each ERROR line the binary logged on stderr (JSON logs, as the tests
/// run it); any stderr line that is not JSON fails the test.
pub fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"))
        })
        .filter(|v| v["level"] == "ERROR")
        .map(|v| v["error"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The one error the binary logged (JSON logs), after checking there is exactly one.
pub fn the_error(out: &Output) -> String {
    let errors = error_lines(out);
    assert_eq!(errors.len(), 1, "exactly one error line: {}", text(out));
    errors[0].clone()
}

/// A `tracing` writer into memory.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's log events at `level` and above (no colours) until the guard drops.
/// Tests of one binary run in parallel and hit the same callsites without this subscriber, so
/// the interest cache is rebuilt once it is registered.
pub fn capture_logs(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (captured, guard)
}

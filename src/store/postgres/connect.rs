//! Connecting to PostgreSQL: the parsed `state.url` (a secret: never printed), TLS over rustls
//! with the aws-lc-rs provider (no OpenSSL), the pool, and the session settings that let the
//! server drop a vanished replica's session in time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use secrecy::ExposeSecret;
use tokio_postgres::config::{ChannelBinding, Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{ConfigError, PgTls, StateConfig};

/// The one TLS connector type (with `state.tls = "disable"` TLS is never negotiated).
pub type Tls = MakeRustlsConnect;

/// `state.*` for PostgreSQL, checked and ready to connect.
#[derive(Clone)]
pub struct PgSettings {
    /// Holds the password; `tokio_postgres::Config`'s Debug redacts it, but it is never
    /// printed here at all: [`PgSettings::target`] describes the server.
    config: tokio_postgres::Config,
    tls: Tls,
    pub schema: String,
    pub pool_size: usize,
    pub replica: String,
    pub timings: Timings,
    target: Arc<str>,
}

/// Leader election timings, all derived from `state.leader_takeover` (`L`).
///
/// A leader whose process dies has its socket closed by the kernel, so the server ends its
/// session at once and a standby takes the lock on its next try (`retry`). A leader that
/// vanishes from the network is dropped by the server after `server_idle` (`0.7 L`) without a
/// heartbeat; it has fenced itself before that, at `lease` (`0.5 L`) after its last answered
/// heartbeat. So a standby leads within about `0.7 L + retry` and never while the old leader
/// may still start a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub takeover: Duration,
    /// How often a standby tries the lock: `min(1 s, L / 10)`.
    pub retry: Duration,
    /// How often the leader checks it still holds the lock: `L / 5`.
    pub heartbeat: Duration,
    /// How long a heartbeat may take before leadership counts as lost: `L / 5`.
    pub heartbeat_timeout: Duration,
    /// How long an answered heartbeat keeps the leader's term valid: `L / 2`.
    pub lease: Duration,
    /// `idle_session_timeout` of the lock session: the server drops a silent leader: `0.7 L`.
    pub server_idle: Duration,
}

impl Timings {
    pub fn new(takeover: Duration) -> Timings {
        Timings {
            takeover,
            retry: (takeover / 10).min(Duration::from_secs(1)),
            heartbeat: takeover / 5,
            heartbeat_timeout: takeover / 5,
            lease: takeover / 2,
            server_idle: takeover * 7 / 10,
        }
    }
}

impl PgSettings {
    /// Reads `state.url` (or `state.url_file`) and the TLS files. Errors name the key and never
    /// contain the URL's password.
    pub fn from_config(state: &StateConfig) -> Result<PgSettings, ConfigError> {
        let url = state.postgres_url()?;
        let key = if state.url.is_some() {
            "state.url"
        } else {
            "state.url_file"
        };
        let mut config: tokio_postgres::Config =
            url.expose_secret()
                .parse()
                .map_err(|e: tokio_postgres::Error| {
                    ConfigError(format!(
                        "{key}: not a PostgreSQL URL ({})",
                        redact(&e.to_string(), url.expose_secret())
                    ))
                })?;
        if config.get_ssl_mode() != SslMode::Prefer {
            return Err(ConfigError(format!(
                "{key}: set TLS with state.tls, not sslmode in the URL"
            )));
        }
        if config.get_hosts().is_empty() {
            return Err(ConfigError(format!("{key}: names no host")));
        }
        let local = config.get_hosts().iter().all(|h| match h {
            Host::Tcp(name) => is_loopback_host(name.as_str()),
            Host::Unix(_) => true,
        });
        if state.tls == PgTls::Disable && !local {
            return Err(ConfigError(
                "state.tls: \"disable\" is accepted only for loopback hosts and Unix sockets; use \"verify-full\"".into(),
            ));
        }
        let tls = connector(state.tls, state.tls_ca_file.as_ref())?;
        config.ssl_mode(match state.tls {
            PgTls::Disable => SslMode::Disable,
            PgTls::Require | PgTls::VerifyFull => SslMode::Require,
        });
        // Over TLS the password is proven with SCRAM bound to the TLS channel: a server (or a
        // man in the middle) asking for a cleartext or MD5 password, or SCRAM without channel
        // binding, is refused.
        config.channel_binding(match state.tls {
            PgTls::Disable => ChannelBinding::Prefer,
            PgTls::Require | PgTls::VerifyFull => ChannelBinding::Require,
        });
        let timings = Timings::new(state.leader_takeover);
        config
            .connect_timeout(timings.heartbeat_timeout.max(Duration::from_secs(2)))
            .keepalives(true)
            .keepalives_idle(timings.heartbeat.max(Duration::from_secs(1)))
            .keepalives_interval((timings.heartbeat / 2).max(Duration::from_secs(1)))
            .keepalives_retries(3)
            .tcp_user_timeout(timings.lease);
        let target = describe(&config, &state.schema);
        Ok(PgSettings {
            config,
            tls,
            schema: state.schema.clone(),
            pool_size: state.pool_size,
            replica: state.replica_name(),
            timings,
            target: target.into(),
        })
    }

    /// `postgres://user@host:port/db schema s`: the server without the password, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The pool for snapshot reads and writes. Connections are made on demand.
    pub fn pool(&self) -> Result<Pool, String> {
        let mut config = self.config.clone();
        config.application_name(format!("q-group-sync ({})", self.replica));
        // A write transaction takes milliseconds; one left open by a vanished replica must
        // not hold the leader row's lock for long.
        let idle_tx = (self.timings.heartbeat).max(Duration::from_secs(2));
        self.add_options(
            &mut config,
            &[("idle_in_transaction_session_timeout", idle_tx)],
        );
        let manager = Manager::from_config(
            config,
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(
                self.timings.heartbeat_timeout.max(Duration::from_secs(2)),
            ))
            .build()
            .map_err(|e| format!("building the connection pool: {e}"))
    }

    /// Connects the session that holds (or tries) the leader lock. The server drops it after
    /// `server_idle` without a query, and on a dead peer after the TCP keepalive/user timeout.
    pub async fn connect_lock_session(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                <Tls as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
            >,
        ),
        tokio_postgres::Error,
    > {
        let mut config = self.config.clone();
        config.application_name(format!("q-group-sync leader lock ({})", self.replica));
        let t = self.timings;
        self.add_options(
            &mut config,
            &[
                ("idle_session_timeout", t.server_idle),
                ("idle_in_transaction_session_timeout", t.heartbeat_timeout),
                ("lock_timeout", t.heartbeat_timeout),
                ("statement_timeout", t.heartbeat_timeout * 2),
            ],
        );
        config.connect(self.tls.clone()).await
    }

    /// Adds server settings (milliseconds) to the startup options, with the TCP keepalive
    /// settings that let the server notice a dead peer.
    fn add_options(&self, config: &mut tokio_postgres::Config, extra: &[(&str, Duration)]) {
        let t = self.timings;
        let mut options = config.get_options().unwrap_or_default().to_owned();
        let secs = |d: Duration| d.as_secs().max(1);
        for (name, value) in [
            ("tcp_keepalives_idle", secs(t.heartbeat)),
            ("tcp_keepalives_interval", secs(t.heartbeat / 2)),
            ("tcp_keepalives_count", 3),
        ] {
            options.push_str(&format!(" -c {name}={value}"));
        }
        options.push_str(&format!(" -c tcp_user_timeout={}", t.lease.as_millis()));
        for (name, value) in extra {
            options.push_str(&format!(" -c {name}={}", value.as_millis().max(1)));
        }
        config.options(options.trim());
    }
}

/// Removes the URL's password from a message, should a parser ever quote it.
pub fn redact(message: &str, url: &str) -> String {
    let password = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message
            .replace(&p, "[REDACTED]")
            .replace(&urlencoding_decode(&p), "[REDACTED]"),
        None => message.to_owned(),
    }
}

fn urlencoding_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn describe(config: &tokio_postgres::Config, schema: &str) -> String {
    let host = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config
        .get_ports()
        .first()
        .map_or_else(|| "5432".to_owned(), u16::to_string);
    format!(
        "postgres://{}@{host}:{port}/{} schema {schema}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

fn is_loopback_host(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn connector(mode: PgTls, ca_file: Option<&PathBuf>) -> Result<Tls, ConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("state.tls: {e}")))?;
    let config = match mode {
        PgTls::Require | PgTls::Disable => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        PgTls::VerifyFull => {
            let mut roots = RootCertStore::empty();
            match ca_file {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| {
                            ConfigError(format!(
                                "state.tls_ca_file: cannot read certificates from {}: {e}",
                                path.display()
                            ))
                        })?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        return Err(ConfigError(format!(
                            "state.tls_ca_file: {} holds no usable CA certificate",
                            path.display()
                        )));
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `state.tls = "require"`: encrypt, check the handshake signatures, but not who signed the
/// certificate (libpq's `sslmode=require`). Use `verify-full` wherever a CA bundle exists.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn state(url: &str, tls: PgTls) -> StateConfig {
        StateConfig {
            backend: crate::config::StateBackend::Postgres,
            url: Some(SecretString::from(url.to_owned())),
            tls,
            ..StateConfig::default()
        }
    }

    #[test]
    fn tls_requires_channel_binding() {
        let s = PgSettings::from_config(&state(
            "postgres://qgs:pw@db.example.test:5432/app",
            PgTls::Require,
        ))
        .expect("valid");
        assert_eq!(s.config.get_channel_binding(), ChannelBinding::Require);
        // A URL asking to disable it is overridden.
        let s = PgSettings::from_config(&state(
            "postgres://qgs:pw@db.example.test:5432/app?channel_binding=disable",
            PgTls::Require,
        ))
        .expect("valid");
        assert_eq!(s.config.get_channel_binding(), ChannelBinding::Require);
        // Without TLS there is no channel to bind to (loopback only).
        let s = PgSettings::from_config(&state(
            "postgres://qgs:pw@127.0.0.1:5432/app",
            PgTls::Disable,
        ))
        .expect("valid");
        assert_eq!(s.config.get_channel_binding(), ChannelBinding::Prefer);
    }

    #[test]
    fn the_password_never_appears_in_messages() {
        let s = PgSettings::from_config(&state(
            "postgres://qgs:s3cr3t-pw@127.0.0.1:5433/app",
            PgTls::Disable,
        ))
        .expect("valid");
        assert_eq!(
            s.target(),
            "postgres://qgs@127.0.0.1:5433/app schema q_group_sync"
        );
        let err = PgSettings::from_config(&state(
            "postgres://qgs:s3cr3t-pw@127.0.0.1:notaport/app",
            PgTls::Disable,
        ))
        .err()
        .expect("bad port");
        assert!(err.to_string().contains("state.url"), "{err}");
        assert!(!err.to_string().contains("s3cr3t-pw"), "{err}");
        assert_eq!(
            redact("x s3cr3t%21 y s3cr3t! z", "postgres://u:s3cr3t%21@h/d"),
            "x [REDACTED] y [REDACTED] z"
        );
    }

    #[test]
    fn plain_connections_only_to_loopback_and_tls_from_state_tls() {
        let err =
            PgSettings::from_config(&state("postgres://u:p@db.example.test/app", PgTls::Disable))
                .err()
                .expect("refused");
        assert!(err.to_string().contains("state.tls"), "{err}");
        PgSettings::from_config(&state(
            "postgres://u:p@db.example.test/app",
            PgTls::VerifyFull,
        ))
        .expect("verify-full to a remote host");
        PgSettings::from_config(&state("postgres://u:p@localhost/app", PgTls::Disable))
            .expect("loopback in plain text");
        let err = PgSettings::from_config(&state(
            "postgres://u:p@db.example.test/app?sslmode=require",
            PgTls::VerifyFull,
        ))
        .err()
        .expect("sslmode in the URL");
        assert!(err.to_string().contains("state.tls"), "{err}");
        let missing = StateConfig {
            tls_ca_file: Some("/nonexistent/ca.pem".into()),
            ..state("postgres://u:p@db.example.test/app", PgTls::VerifyFull)
        };
        let err = PgSettings::from_config(&missing).err().expect("no CA file");
        assert!(err.to_string().contains("state.tls_ca_file"), "{err}");
    }

    #[test]
    fn timings_follow_the_takeover_time() {
        let t = Timings::new(Duration::from_secs(15));
        assert_eq!(t.retry, Duration::from_secs(1));
        assert_eq!(t.heartbeat, Duration::from_secs(3));
        assert!(t.lease < t.server_idle && t.server_idle + t.retry < t.takeover);
        assert!(t.heartbeat + t.heartbeat_timeout < t.lease);
    }
}

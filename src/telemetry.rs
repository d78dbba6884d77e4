//! Logging: human-readable on a terminal, JSON lines otherwise (or when asked), on stderr.
//!
//! Secrets never reach a log line: the Okta token lives in a `SecretString` and a sensitive
//! header value, and no code logs a config, a header map or a request body.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

/// Filter for the default `info` level: our own events at info, chatty dependencies at warn.
const QUIET_DEPENDENCIES: &str = "aws_config=warn,aws_smithy_runtime=warn,aws_sdk_qbusiness=warn,\
hyper=warn,hyper_util=warn,h2=warn,reqwest=warn,rustls=warn,tokio_cron_scheduler=warn";

/// Installs the global subscriber. `level` (from `--log-level`) wins over `RUST_LOG`; without
/// either the level is `info`.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<(), String> {
    let filter = match level {
        Some(level) => EnvFilter::try_new(filter_for(level))
            .map_err(|e| format!("--log-level {level:?}: {e}"))?,
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => {
                EnvFilter::try_new(&v).map_err(|e| format!("RUST_LOG {v:?}: {e}"))?
            }
            _ => EnvFilter::new(filter_for("info")),
        },
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_span_events(FmtSpan::NONE)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init()
    };
    result.map_err(|e| e.to_string())
}

/// A plain level such as `info` keeps dependencies quiet; `debug` and `trace` apply to all.
fn filter_for(level: &str) -> String {
    match level.trim().to_ascii_lowercase().as_str() {
        "info" | "warn" | "error" => format!("{level},{QUIET_DEPENDENCIES}"),
        _ => level.to_owned(),
    }
}

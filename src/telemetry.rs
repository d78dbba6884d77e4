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
aws_sdk_s3=warn,hyper=warn,hyper_util=warn,h2=warn,reqwest=warn,rustls=warn,tokio_cron_scheduler=warn";

/// Installs the global subscriber.
///
/// `level` (`--log-level`) applies to q-group-sync's own events; dependencies stay at `info` (the
/// chattiest at `warn`) at any level, because at debug they log what must not be logged
/// (tokio-postgres logs query parameters, i.e. member lists; HTTP clients log headers). Only an
/// explicit filter raises them: `filter` (`--log-filter`), else `RUST_LOG`, in EnvFilter syntax,
/// applied after the level (so `--log-filter tokio_postgres=debug` adds just that).
pub fn init(format: LogFormat, level: Option<&str>, filter: Option<&str>) -> Result<(), String> {
    let directives = directives(level, filter, std::env::var("RUST_LOG").ok().as_deref());
    let filter = EnvFilter::try_new(&directives).map_err(|e| match (level, filter) {
        (_, Some(f)) => format!("--log-filter {f:?}: {e}"),
        (Some(l), None) => format!("--log-level {l:?}: {e}"),
        (None, None) => format!("RUST_LOG: {e}"),
    })?;
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

/// The EnvFilter directives for `--log-level`, `--log-filter` and `RUST_LOG`.
fn directives(level: Option<&str>, filter: Option<&str>, rust_log: Option<&str>) -> String {
    let explicit = filter.or(rust_log).map(str::trim).filter(|f| !f.is_empty());
    let level = level.map(str::trim).filter(|l| !l.is_empty());
    match (level, explicit) {
        // A directive given as the level (`--log-level hyper=debug`) is an explicit filter.
        (Some(l), explicit) if !is_level(l) => {
            let e = explicit.map_or_else(|| l.to_owned(), |e| format!("{l},{e}"));
            format!("{},{e}", for_level("info", &e))
        }
        (Some(l), Some(e)) => format!("{},{e}", for_level(l, e)),
        (Some(l), None) => for_level(l, ""),
        (None, Some(e)) => e.to_owned(),
        (None, None) => for_level("info", ""),
    }
}

fn is_level(level: &str) -> bool {
    matches!(
        level.to_ascii_lowercase().as_str(),
        "error" | "warn" | "info" | "debug" | "trace" | "off"
    )
}

/// `level` for q-group-sync; dependencies at `info` or quieter, whatever the level. The quiet
/// directives for targets that `explicit` names are left out, so the explicit ones apply.
fn for_level(level: &str, explicit: &str) -> String {
    let named: Vec<&str> = explicit
        .split(',')
        .filter_map(|d| d.split_once('=').map(|(target, _)| target.trim()))
        .collect();
    let quiet: Vec<&str> = QUIET_DEPENDENCIES
        .split(',')
        .filter(|d| d.split_once('=').is_none_or(|(t, _)| !named.contains(&t)))
        .collect();
    let quiet = quiet.join(",");
    let level = level.to_ascii_lowercase();
    match level.as_str() {
        "debug" | "trace" => format!("info,{quiet},q_group_sync={level}"),
        _ => format!("{level},{quiet}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_trace_leave_dependencies_at_info() {
        let d = directives(Some("trace"), None, None);
        assert!(d.starts_with("info,"), "{d}");
        assert!(d.ends_with(",q_group_sync=trace"), "{d}");
        assert!(EnvFilter::try_new(&d).is_ok());
        // RUST_LOG is an explicit filter, applied after the level.
        let d = directives(Some("debug"), None, Some("tokio_postgres=debug"));
        assert!(
            d.ends_with("q_group_sync=debug,tokio_postgres=debug"),
            "{d}"
        );
        // --log-filter wins over RUST_LOG.
        let d = directives(None, Some("hyper=debug"), Some("trace"));
        assert_eq!(d, "hyper=debug");
        assert_eq!(directives(None, None, Some("  ")), for_level("info", ""));
        // An explicit directive replaces the quiet one for its target.
        let d = directives(Some("debug"), Some("hyper=debug"), None);
        assert!(
            !d.contains("hyper=warn") && d.ends_with(",hyper=debug"),
            "{d}"
        );
        assert!(d.contains("reqwest=warn"), "{d}");
        let d = directives(Some("q_group_sync::source=trace"), None, None);
        assert!(
            d.starts_with("info,") && d.ends_with(",q_group_sync::source=trace"),
            "{d}"
        );
    }
}

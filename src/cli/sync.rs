//! `sync` and `plan`: one pass, applied or dry-run, with its report on stdout (text or JSON).
//! `approve` runs its pass through here too.

use tokio_util::sync::CancellationToken;

use crate::app::{Exit, build_engine, open_state};
use crate::config::Config;
use crate::engine::{NoProgress, Progress};
use crate::progress::TerminalProgress;
use crate::report::{Mode, Outcome, PassRequest, RunReport};
use crate::sink::QBusinessSink;
use crate::source::okta::OktaStats;

use super::Output;
use super::render::render_report;

/// Output options of `sync` and `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Result format on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Read every group's members, not only those Okta reports changed (as every
    /// `sync.full_every` does).
    #[arg(long)]
    pub full: bool,
    /// Only this group: an Okta group id, Okta group name or Q group name. Its members are
    /// always read; other groups are not touched.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
}

/// `sync` (`Mode::Apply`) or `plan` (`Mode::Plan`).
pub(super) async fn run_pass(
    config: &Config,
    mode: Mode,
    args: &OutputArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    let request = PassRequest {
        full: args.full,
        group: args.group.clone(),
        ..PassRequest::cli(mode)
    };
    run_request(config, &request, args.output, shutdown).await
}

/// Runs one pass as `request` says and prints its report; the exit code follows its outcome.
pub(super) async fn run_request(
    config: &Config,
    request: &PassRequest,
    output: Output,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    let mode = request.mode;
    let state = open_state(config, mode, &shutdown).await?;
    let lease = match mode {
        Mode::Apply => state.lead_for_command().await?,
        Mode::Plan => None,
    };
    let cancel = state.pass_token(&shutdown);
    let engine = build_engine(
        config,
        QBusinessSink::from_config(&config.qbusiness).await,
        state.store,
    )?;
    let progress = TerminalProgress::new(output == Output::Text);
    let report = engine
        .run_once(
            request,
            progress
                .as_ref()
                .map_or(&NoProgress as &dyn Progress, |p| p),
            &cancel,
        )
        .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    if let Some(p) = &progress {
        p.finish();
    }
    let okta = engine.source_stats();
    match output {
        Output::Json => {
            // Streamed: the report of a first sync lists every membership added.
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match mode {
                Mode::Plan => serde_json::to_writer_pretty(&mut out, &JsonPlan::of(&report))?,
                Mode::Apply => serde_json::to_writer_pretty(
                    &mut out,
                    &JsonReport {
                        report: &report,
                        okta,
                    },
                )?,
            }
            std::io::Write::write_all(&mut out, b"\n")?;
            std::io::Write::flush(&mut out)?;
        }
        Output::Text => print!("{}", render_report(&report, okta.as_ref())),
    }
    Ok(match report.outcome {
        Outcome::Success => Exit::Success,
        Outcome::Held => Exit::Held,
        Outcome::Failed if report.fix.is_some() => Exit::Setup,
        Outcome::Partial | Outcome::Failed => Exit::Failed,
    })
}

/// `plan --output json`: the plan, with how the pass went, so that a failed pass never reads
/// as an empty plan. `error`, `error_kind` and `fix` as in `sync --output json`.
#[derive(serde::Serialize)]
struct JsonPlan<'a> {
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<&'static str>,
    #[serde(flatten)]
    plan: &'a crate::plan::Plan,
}

impl<'a> JsonPlan<'a> {
    fn of(report: &'a RunReport) -> JsonPlan<'a> {
        JsonPlan {
            outcome: report.outcome,
            error: report.error.as_deref(),
            error_kind: report.error_kind,
            fix: report.fix,
            plan: &report.plan,
        }
    }
}

/// `sync --output json`: the run report plus the Okta request counters.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a RunReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    okta: Option<OktaStats>,
}

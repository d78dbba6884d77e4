//! The text report of a pass, as `sync` and `plan` print it (and the demo).

use std::fmt::Write;

use crate::report::{FailedStep, Mode, Outcome, RunReport};
use crate::source::okta::OktaStats;

/// The text summary printed by `sync` and `plan`.
pub fn render_report(report: &RunReport, okta: Option<&OktaStats>) -> String {
    let mut out = String::new();
    if report.outcome == Outcome::Failed && report.groups_listed == 0 {
        let _ = writeln!(
            out,
            "Pass failed: {}",
            report.error.as_deref().unwrap_or("unknown error")
        );
        if let Some(fix) = report.fix {
            let _ = writeln!(out, "To fix: {fix}");
        }
        return out;
    }
    let _ = write!(out, "{}", report.plan);
    if let (Some(trace), Some(group)) = (&report.trace, &report.group) {
        let _ = writeln!(out, "Trace of {group:?}:");
        let _ = write!(out, "{trace}");
    }
    let secs = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
    match report.mode {
        Mode::Plan => {
            let _ = writeln!(out, "Dry run: nothing was written.");
        }
        Mode::Apply => {
            let failed: Vec<_> = report
                .failures
                .iter()
                .filter(|f| matches!(f.op, FailedStep::Put | FailedStep::Delete))
                .collect();
            let _ = writeln!(
                out,
                "Result: {} - {} put, {} deleted, {} failed (+{} -{} memberships) in {secs:.1}s",
                report.outcome.as_str(),
                report.puts_applied,
                report.deletes_applied,
                failed.len(),
                report.users_added,
                report.users_removed
            );
            for f in failed {
                let _ = writeln!(
                    out,
                    "  ! {} ({}, {}): {}",
                    f.group,
                    f.op.as_str(),
                    f.kind,
                    f.message
                );
            }
        }
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "Stopped early: {e}");
    }
    if let Some(fix) = report.fix {
        let _ = writeln!(out, "To fix: {fix}");
    }
    if let Some(okta) = okta {
        let _ = writeln!(
            out,
            "Okta: {} requests, {} rate-limited, {} retries, {:.1}s waiting for rate limits",
            okta.requests, okta.rate_limited, okta.retries, okta.rate_limit_wait_secs
        );
    }
    out
}

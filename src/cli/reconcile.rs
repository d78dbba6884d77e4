//! `reconcile [--adopt]`: what Q Business has against the snapshot, printed; the engine
//! compares and, with `--adopt`, records.

use tokio_util::sync::CancellationToken;

use crate::app::{Exit, build_engine, open_state};
use crate::config::Config;
use crate::engine::reconcile::{ReconcileRequest, Reconciled};
use crate::report::Mode;
use crate::sink::QBusinessSink;

use super::Output;

/// Arguments of `reconcile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// Record the groups found as owned (and unconfirmed), so the next `sync` rewrites them,
    /// or deletes them when Okta no longer has them. Groups that only match
    /// `groups.name_prefix` are adopted only with `groups.adopt_prefixed = true`.
    #[arg(long)]
    pub adopt: bool,
    /// Result format on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `reconcile`: Q Business groups that look managed but are not in the snapshot, and snapshot
/// groups Q Business does not list; with `--adopt`, the engine records the former as owned.
pub(super) async fn reconcile(
    config: &Config,
    args: &ReconcileArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    let sink = QBusinessSink::from_config(&config.qbusiness).await;
    let mode = if args.adopt { Mode::Apply } else { Mode::Plan };
    let state = open_state(config, mode, &shutdown).await?;
    let lease = match mode {
        Mode::Apply => state.lead_for_command().await?,
        Mode::Plan => None,
    };
    let engine = build_engine(config, sink, state.store)?;
    let request = ReconcileRequest {
        name_prefix: config.groups.name_prefix.as_deref(),
        adopt: args.adopt,
        adopt_prefixed: config.groups.adopt_prefixed,
    };
    let exit = match engine.reconcile(&request).await {
        Ok(reconciled) => print_reconciled(&reconciled, args),
        Err(e) => Err(e.into()),
    };
    if let Some(lease) = lease {
        lease.release().await;
    }
    exit
}

/// Prints what `reconcile` found; exit 0 only when nothing is left unrecorded or missing.
fn print_reconciled(reconciled: &Reconciled, args: &ReconcileArgs) -> anyhow::Result<Exit> {
    let Reconciled { found, adopted } = reconciled;
    match args.output {
        Output::Json => {
            #[derive(serde::Serialize)]
            struct Json<'a> {
                #[serde(flatten)]
                found: &'a crate::plan::reconcile::Reconciliation,
                adopted: &'a [String],
            }
            let v = Json { found, adopted };
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Text => {
            println!(
                "Q Business lists {} groups; the snapshot records {} as managed.",
                found.q_groups, found.managed
            );
            if found.look_managed_but_unrecorded.is_empty() {
                println!("No unrecorded group looks managed.");
            }
            for u in &found.look_managed_but_unrecorded {
                let (name, why) = (&u.group, u.why.describe());
                let mark = if adopted.iter().any(|a| a == name.as_str()) {
                    " (adopted)"
                } else {
                    ""
                };
                println!("? {name}: not in the snapshot, {why}{mark}");
            }
            for name in &found.recorded_but_missing_in_q {
                println!(
                    "! {name}: recorded as managed but Q Business does not list it; the next sync writes it again only if its members change"
                );
            }
            if !found.look_managed_but_unrecorded.is_empty() && !args.adopt {
                println!(
                    "Run `q-group-sync reconcile --adopt` to record them as managed; the next sync then rewrites or deletes them."
                );
            }
        }
    }
    Ok(
        if found.look_managed_but_unrecorded.len() == adopted.len()
            && found.recorded_but_missing_in_q.is_empty()
        {
            Exit::Success
        } else {
            Exit::Failed
        },
    )
}

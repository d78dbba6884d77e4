//! The naive strategy the benchmark measures q-group-sync against: every pass reads every
//! in-scope group's members and puts every group, with no snapshot and no verification.
//!
//! It uses the product's own pieces, so only the strategy differs: the real Okta client
//! ([`OktaSource`], with the same paging, retries and pacing), the same scope and member mapping
//! ([`select::desired`] with the same [`Rules`]) and the real Q Business sink. Groups are
//! streamed, at most [`CONCURRENCY`] at a time: each is read, mapped, put and dropped, so
//! nothing accumulates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use q_group_sync::config::Config;
use q_group_sync::plan::select::{self, GroupRead, Rules, Scope};
use q_group_sync::sink::{GroupSink, QBusinessSink};
use q_group_sync::source::okta::{OktaSettings, OktaSource, OktaStats};
use q_group_sync::source::{DirectorySource, MemberRead};
use serde::Serialize;

/// Groups read and put at once.
pub const CONCURRENCY: usize = 4;

/// Read every group, put every group: the benchmark's naive baseline.
#[derive(Debug, Parser)]
#[command(name = "naive_sync")]
pub struct NaiveCli {
    /// The same configuration file q-group-sync uses ([okta], [groups], [users], [qbusiness]).
    #[arg(long, short)]
    pub config: PathBuf,
}

/// What one naive pass did; printed as JSON on stdout.
#[derive(Debug, Default, Serialize)]
pub struct NaiveReport {
    pub groups_listed: usize,
    pub groups_in_scope: usize,
    pub groups_read: usize,
    /// Listed, then 404 when their members were read.
    pub groups_gone: usize,
    pub read_failures: usize,
    pub puts: usize,
    pub put_failures: usize,
    /// Over the inline member limit, so not put (as q-group-sync does).
    pub over_member_limit: usize,
    pub okta: OktaStats,
}

enum GroupOutcome {
    Put,
    PutFailed,
    ReadFailed,
    Gone,
    OverLimit,
    NotSynced,
}

/// Parses `args` (without the program name) and runs one pass; exit 0 when every group was read
/// and put, 1 otherwise, 2 on bad arguments or configuration.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    let cli = match NaiveCli::try_parse_from(std::iter::once("naive_sync".to_owned()).chain(args)) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("naive_sync: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(report) => {
            match serde_json::to_string_pretty(&report) {
                Ok(json) => println!("{json}"),
                Err(err) => eprintln!("naive_sync: {err}"),
            }
            if report.read_failures + report.put_failures + report.over_member_limit == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("naive_sync: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// One naive pass.
pub async fn run(cli: &NaiveCli) -> anyhow::Result<NaiveReport> {
    let config = Config::load(Some(&cli.config)).context("loading the configuration")?;
    let rules = Rules::from_config(&config).context("groups.include/exclude")?;
    let source =
        OktaSource::new(OktaSettings::from_config(&config)?).context("starting the Okta client")?;
    let sink = QBusinessSink::from_config(&config.qbusiness).await;
    let limit = config.qbusiness.inline_member_limit;

    let groups = source.list_groups().await.context("listing Okta groups")?;
    let in_scope: Vec<_> = groups
        .iter()
        .filter(|g| matches!(rules.scope(g), Scope::In(_)))
        .collect();
    let mut report = NaiveReport {
        groups_listed: groups.len(),
        groups_in_scope: in_scope.len(),
        ..NaiveReport::default()
    };
    let (source, sink, rules) = (&source, &sink, &rules);
    let mut outcomes = futures::stream::iter(in_scope.into_iter().map(|group| async move {
        let read = match source.list_members(&group.id).await {
            Ok(MemberRead::GroupGone) => return GroupOutcome::Gone,
            Ok(read) => GroupRead::Read(read),
            Err(_) => return GroupOutcome::ReadFailed,
        };
        // The same mapping as q-group-sync, one group at a time.
        let desired = select::desired(
            std::slice::from_ref(group),
            rules,
            BTreeMap::from([(group.id.clone(), read)]),
        );
        let Some((name, wanted)) = desired.groups.into_iter().next() else {
            return GroupOutcome::NotSynced;
        };
        if wanted.members.len() > limit {
            return GroupOutcome::OverLimit;
        }
        match sink.put_group(&name, &wanted.members, &[]).await {
            Ok(()) => GroupOutcome::Put,
            Err(_) => GroupOutcome::PutFailed,
        }
    }))
    .buffer_unordered(CONCURRENCY);
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            GroupOutcome::Put => {
                report.groups_read += 1;
                report.puts += 1;
            }
            GroupOutcome::PutFailed => {
                report.groups_read += 1;
                report.put_failures += 1;
            }
            GroupOutcome::OverLimit => {
                report.groups_read += 1;
                report.over_member_limit += 1;
            }
            GroupOutcome::NotSynced => report.groups_read += 1,
            GroupOutcome::ReadFailed => report.read_failures += 1,
            GroupOutcome::Gone => report.groups_gone += 1,
        }
    }
    report.okta = source.stats();
    Ok(report)
}

//! A guided demo against the built-in emulators: no Okta org or AWS account needed.
//!
//! `cargo run --example demo` starts an emulated Okta org and an emulated Q Business
//! index on 127.0.0.1, then runs the real q-group-sync engine: plan, sync, a few membership
//! changes in Okta, plan and sync again (only those changes), and a final no-op pass.

use figment::Figment;
use figment::providers::{Format, Toml};
use q_group_sync::app::{build_engine, open_state};
use q_group_sync::cli::render::render_report;
use q_group_sync::config::Config;
use q_group_sync::engine::NoProgress;
use q_group_sync::report::{Mode, PassRequest};
use q_group_sync::sink::QBusinessSink;
use q_group_sync_emulator::generate::{OrgSpec, org};
use q_group_sync_emulator::{OktaEmulator, OktaOptions, OktaOrg, QEmulator, QOptions};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let spec = OrgSpec {
        seed: 42,
        groups: 40,
        users: 400,
        max_group_size: 120,
        messy: true,
    };
    let okta = OktaEmulator::start(org(&spec), OktaOptions::default()).await?;
    let q = QEmulator::start(QOptions::default()).await?;
    q.seed_group("Created by hand in Q", &["admin@example.test"]);
    let dir = tempfile::tempdir()?;
    let toml = format!(
        r#"
[okta]
org_url = "{}"
api_token = "{}"
[qbusiness]
application_id = "{}"
index_id = "{}"
region = "us-east-1"
endpoint_url = "{}"
[state]
path = "{}"
"#,
        okta.url(),
        okta.token(),
        q.application_id(),
        q.index_id(),
        q.url(),
        dir.path().join("snapshot.db").display()
    );
    let config = Config::from_figment(Figment::from(Toml::string(&toml)))?;
    let credentials =
        aws_sdk_qbusiness::config::Credentials::new("AKIDDEMO", "demo-secret", None, None, "demo");
    let sink = QBusinessSink::with_credentials(&config.qbusiness, credentials).await;
    let cancel = CancellationToken::new();

    println!(
        "Emulated Okta org at {} ({} groups, {} users)",
        okta.url(),
        spec.groups,
        spec.users
    );
    println!("Emulated Q Business index at {}\n", q.url());

    let pass = |title: &'static str, mode: Mode| {
        let config = config.clone();
        let sink = sink.clone();
        let cancel = cancel.clone();
        async move {
            println!("=== {title} ===");
            let state = open_state(&config, mode, &cancel).await?;
            let engine = build_engine(&config, sink, state.store)?;
            let report = engine
                .run_once(&PassRequest::cli(mode), &NoProgress, &cancel)
                .await;
            println!("{}", render_report(&report, engine.source_stats().as_ref()));
            anyhow::Ok(report)
        }
    };

    pass(
        "1. plan (dry run): what the first sync would do",
        Mode::Plan,
    )
    .await?;
    let first = pass("2. sync: first pass", Mode::Apply).await?;
    println!("Q Business now holds {} groups.\n", q.groups().len());

    // Change a few memberships in Okta.
    let (added_to, removed_from, deleted) = okta.update(|o| {
        let okta_groups: Vec<String> = o
            .groups
            .values()
            .filter(|g| g.group_type == "OKTA_GROUP")
            .map(|g| g.id.clone())
            .collect();
        let newcomer = OktaOrg::user_id(99_999);
        o.add_user(
            &newcomer,
            "ACTIVE",
            Some("New.Hire+onboarding@Example.test"),
            "new.hire@example.test",
        );
        o.add_member(&okta_groups[1], &newcomer);
        o.add_member(&okta_groups[2], &newcomer);
        let leaver = o.groups[&okta_groups[3]].members.iter().next().cloned();
        if let Some(leaver) = &leaver {
            o.remove_member(&okta_groups[3], leaver);
        }
        let deleted = o.groups.remove(&okta_groups[4]).map(|g| g.name);
        (
            [&okta_groups[1], &okta_groups[2]].map(|id| o.groups[id].name.clone()),
            o.groups[&okta_groups[3]].name.clone(),
            deleted,
        )
    });
    println!(
        "Okta changes: new.hire added to {:?} and {:?}; one member removed from {:?}; group {:?} deleted.\n",
        added_to[0],
        added_to[1],
        removed_from,
        deleted.unwrap_or_default()
    );

    pass("3. plan: only those changes", Mode::Plan).await?;
    pass("4. sync: applies only those changes", Mode::Apply).await?;
    let last = pass("5. sync again: nothing to do", Mode::Apply).await?;
    println!(
        "First pass wrote {} groups; the last pass wrote {}. The hand-made Q group was never touched: {}.",
        first.puts_applied,
        last.puts_applied + last.deletes_applied,
        q.groups().contains_key("Created by hand in Q")
    );
    Ok(())
}

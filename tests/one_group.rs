//! `sync --group`: one group read and pushed on demand, with a trace of what happened, on an
//! org of 5,000 groups.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Instant;

use common::{Harness, text};
use q_group_sync_emulator::generate::{OrgSpec, org};

#[tokio::test(flavor = "multi_thread")]
async fn one_group_is_pushed_alone_with_a_trace() {
    let o = org(&OrgSpec {
        seed: 11,
        groups: 5000,
        users: 3000,
        max_group_size: 60,
        messy: false,
    });
    let (gid, target) = o
        .groups
        .values()
        .find(|g| g.members.len() > 10)
        .map(|g| (g.id.clone(), g.name.clone()))
        .unwrap();
    let h = Harness::start(o).await;

    let started = Instant::now();
    let out = h.run(&["sync", "--group", &target]).await;
    let first = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let groups = h.q.groups();
    assert_eq!(
        groups.keys().collect::<Vec<_>>(),
        [&target],
        "only the one group"
    );
    let okta_requests = h.okta.request_count();

    // A change to the group in Okta, then the same command by Okta id.
    let newcomer = h.okta.org().users.keys().next().unwrap().clone();
    let removed = h.okta.org().groups[&gid]
        .members
        .iter()
        .next()
        .unwrap()
        .clone();
    h.okta.update(|o| {
        o.remove_member(&gid, &removed);
        o.add_member(&gid, &newcomer);
    });
    h.q.reset_calls();
    let started = Instant::now();
    let out = h.run(&["sync", "--group", &gid]).await;
    let second = started.elapsed();
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    let puts: Vec<_> =
        h.q.calls()
            .into_iter()
            .filter(|c| c.op == "PutGroup")
            .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].group.as_deref(), Some(target.as_str()));
    assert_eq!(h.q.groups().len(), 1);
    let want = common::expected(&h.okta.org());
    assert_eq!(h.q.group(&target).unwrap().users, want[&target]);

    // The trace tells the story in order.
    let trace_at = report
        .find(&format!("Trace of {gid:?}:"))
        .unwrap_or_else(|| panic!("a trace in {report}"));
    let trace = &report[trace_at..];
    let mut last = 0;
    for step in [
        "] list ",
        "] scope ",
        "] read ",
        "] mapping ",
        "] diff ",
        "] write ",
        "] status ",
        "] record ",
    ] {
        let at = trace[last..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} after position {last} in {trace}"));
        last += at;
    }
    assert!(trace.contains("in scope as Q group"), "{trace}");
    assert!(trace.contains("+1 -1 against the snapshot"), "{trace}");
    assert!(trace.contains("SUCCEEDED"), "{trace}");
    // `sync --output json` carries the same steps.
    let out = h.run(&["sync", "--group", &gid, "--output", "json"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = json["trace"]["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["step"] == "diff"), "{json}");
    println!("{trace}");
    println!(
        "one-group sync on 5,000 groups: first {:.2} s, second {:.2} s; {okta_requests} Okta requests",
        first.as_secs_f64(),
        second.as_secs_f64()
    );
}

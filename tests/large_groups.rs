//! Groups over PutGroup's 1000-member limit, end to end: the real binary writes them as chunk
//! sub-groups to the Q Business emulator, which resolves nested groups.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{Harness, expected, org_with, text};
use q_group_sync_emulator::OktaOrg;

const CHUNK: &str = " (q-group-sync chunk ";

fn is_chunk(name: &str) -> bool {
    name.contains(CHUNK)
}

/// Group 0 ("All Staff") holds all 4,500 users; group 1 ("Small") every 100th.
fn org() -> OktaOrg {
    org_with(
        2,
        4500,
        |g| ["All Staff", "Small"][g].to_owned(),
        |u, g| g == 0 || u % 100 == 0,
    )
}

/// Asserts that every Okta group's effective membership in Q equals Okta's, that no Q group
/// carries more than 1000 direct members (except from S3 member files), and returns the chunk
/// groups Q holds.
fn assert_q_matches(h: &Harness) -> BTreeSet<String> {
    assert_q_matches_with(h, 1000)
}

fn assert_q_matches_with(h: &Harness, max_direct: usize) -> BTreeSet<String> {
    let want = expected(&h.okta.org());
    for (name, members) in &want {
        let got = h.q.effective_members(name).unwrap_or_default();
        assert_eq!(
            got.len(),
            members.len(),
            "{name}: {} in Q, {} in Okta",
            got.len(),
            members.len()
        );
        assert!(&got == members, "{name}: effective membership differs");
    }
    let groups = h.q.groups();
    for (name, g) in &groups {
        assert!(
            g.users.len() + g.groups.len() <= max_direct,
            "{name} carries {} direct members",
            g.users.len() + g.groups.len()
        );
    }
    let chunks: BTreeSet<String> = groups.keys().filter(|n| is_chunk(n)).cloned().collect();
    let referenced: BTreeSet<String> = groups.values().flat_map(|g| g.groups.clone()).collect();
    assert_eq!(
        chunks, referenced,
        "every chunk is referenced, and only chunks are"
    );
    chunks
}

/// A new active user joins the group `okta_id`.
fn add_newcomer(h: &Harness, okta_id: &str) {
    h.okta.update(|o| {
        o.add_user(
            NEWCOMER,
            "ACTIVE",
            Some("newcomer@example.test"),
            "newcomer@example.test",
        );
        o.add_member(okta_id, NEWCOMER);
    });
}

const NEWCOMER: &str = "00unewcomer000000001";

fn puts(h: &Harness) -> Vec<String> {
    h.q.calls()
        .into_iter()
        .filter(|c| c.op == "PutGroup" && c.status == 200)
        .filter_map(|c| c.group)
        .collect()
}

fn deletes(h: &Harness) -> Vec<String> {
    h.q.calls()
        .into_iter()
        .filter(|c| c.op == "DeleteGroup" && c.status == 200)
        .filter_map(|c| c.group)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_4500_member_group_is_chunked_kept_exact_and_shrunk() {
    let h = Harness::start(org()).await;

    let out = h.run(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let chunks = assert_q_matches(&h);
    assert_eq!(chunks.len(), 6, "{chunks:?}");
    assert!(
        chunks
            .iter()
            .all(|c| c.starts_with("All Staff (q-group-sync chunk "))
    );
    assert!(h.q.group("All Staff").unwrap().users.is_empty());

    // The plan says how the group is carried.
    let all = OktaOrg::group_id(0);
    add_newcomer(&h, &all);
    let plan = h.run(&["plan"]).await;
    assert!(
        text(&plan).contains("in 6 chunk sub-groups; writes 1 of them"),
        "{}",
        text(&plan)
    );

    // One newcomer rewrites exactly one chunk, and nothing else.
    h.q.reset_calls();
    let out = h.run(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let written = puts(&h);
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(chunks.contains(&written[0]), "{written:?}");
    assert_eq!(assert_q_matches(&h), chunks);

    // 4,000 leave: the circuit breaker holds that for approval; once approved the group goes
    // back inline and its six chunks are deleted.
    h.okta.update(|o| {
        for u in 0..4000 {
            o.remove_member(&all, &OktaOrg::user_id(u));
        }
    });
    h.q.reset_calls();
    let out = h.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let id = text(&out)
        .lines()
        .find_map(|l| l.trim().strip_prefix("approve with: q-group-sync approve "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("a plan id in {}", text(&out)));
    assert!(puts(&h).is_empty());
    let out = h.run(&["approve", &id]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(assert_q_matches(&h).is_empty());
    assert_eq!(h.q.group("All Staff").unwrap().users.len(), 501);
    let gone: BTreeSet<String> = deletes(&h).into_iter().collect();
    assert_eq!(gone, chunks);

    // Nothing left to do.
    h.q.reset_calls();
    let out = h.run(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(puts(&h).is_empty() && deletes(&h).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_group_gone_from_okta_takes_its_chunks_with_it() {
    let h = Harness::start(org()).await;
    let out = h.run(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let chunks = assert_q_matches(&h);
    assert_eq!(chunks.len(), 6);

    h.okta.update(|o| {
        o.groups.remove(&OktaOrg::group_id(0));
    });
    h.q.reset_calls();
    let out = h
        .run_env(
            &["sync"],
            &[("Q_GROUP_SYNC_SAFETY__MAX_GROUP_DELETES_PERCENT", "100")],
        )
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let groups = h.q.groups();
    assert!(groups.keys().all(|n| n == "Small"), "{:?}", groups.keys());
    assert_eq!(deletes(&h).len(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn refuse_mode_leaves_large_groups_alone() {
    let h = Harness::start(org()).await;
    let out = h
        .run_env(
            &["sync"],
            &[("Q_GROUP_SYNC_QBUSINESS__LARGE_GROUPS", "refuse")],
        )
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("over_member_limit"), "{}", text(&out));
    assert!(h.q.group("All Staff").is_none());
    assert!(h.q.group("Small").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_mode_writes_a_member_file_and_switching_modes_cleans_up() {
    let h = Harness::start(org()).await;
    let s3_url = h.q.s3_url();
    let s3 = [
        ("Q_GROUP_SYNC_QBUSINESS__LARGE_GROUPS", "s3"),
        ("Q_GROUP_SYNC_QBUSINESS__S3_BUCKET", "qgs-members"),
        ("Q_GROUP_SYNC_QBUSINESS__S3_PREFIX", "groups/"),
        (
            "Q_GROUP_SYNC_QBUSINESS__ROLE_ARN",
            "arn:aws:iam::123456789012:role/q-group-sync-members",
        ),
        ("Q_GROUP_SYNC_QBUSINESS__S3_ENDPOINT_URL", s3_url.as_str()),
    ];
    let out = h.run_env(&["sync"], &s3).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        assert_q_matches_with(&h, 100_000).is_empty(),
        "no chunks in S3 mode"
    );
    let all = h.q.group("All Staff").unwrap();
    assert_eq!(all.users.len(), 4500, "read from the member file");

    // The file: one per group under the prefix, named by a hash of the group name.
    let key = {
        use sha2::Digest;
        let d = sha2::Sha256::digest("All Staff".as_bytes());
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        format!("groups/{hex}.json")
    };
    let file: serde_json::Value =
        serde_json::from_slice(&h.q.s3_object("qgs-members", &key).expect("member file")).unwrap();
    let users = file["memberUsers"].as_array().unwrap();
    assert_eq!(users.len(), 4500);
    assert_eq!(users[0]["type"], "USER");

    // Back to the default (chunks): the group is chunked; then S3 again deletes the chunks.
    let out = h.run(&["sync", "--full"]).await;
    assert!(out.status.success(), "{}", text(&out));
    // Same members, so nothing to write: the group is only re-chunked when it changes.
    assert!(assert_q_matches_with(&h, 100_000).is_empty());
    let all = OktaOrg::group_id(0);
    add_newcomer(&h, &all);
    let out = h.run(&["sync"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let chunks = assert_q_matches(&h);
    assert_eq!(chunks.len(), 7, "4,501 members in chunks of 750 on average");
    h.okta.update(|o| {
        o.remove_member(&all, NEWCOMER);
    });
    h.q.reset_calls();
    let out = h.run_env(&["sync"], &s3).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        assert_q_matches_with(&h, 100_000).is_empty(),
        "chunks deleted after the switch"
    );
    let gone: BTreeSet<String> = deletes(&h).into_iter().collect();
    assert_eq!(gone, chunks);
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_mode_needs_a_bucket_and_a_role() {
    let h = Harness::start(org()).await;
    let out = h
        .run_env(
            &["check-config"],
            &[("Q_GROUP_SYNC_QBUSINESS__LARGE_GROUPS", "s3")],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("qbusiness.s3_bucket"), "{}", text(&out));
}

//! `explain`: why can (or can't) a user see a document? Through the real binary against the
//! emulators: Okta's user and groups, the snapshot, and Q Business's CheckDocumentAccess over
//! documents with ACLs set up here; and `serve`'s `GET /explain` behind the admin token.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Harness, text};
use q_group_sync_emulator::document_acl::{
    AclCondition, AclGroup, AclMembership, AclUser, MemberRelation,
};
use q_group_sync_emulator::{DocumentAcl, OktaOrg, QFault, QFaultAction, QModes};

const ADMIN: &str = "admin-token-for-explain-tests";

const ALICE: &str = "00ualice000000000001";
const BOB: &str = "00ubob00000000000002";
const CAROL: &str = "00ucarol000000000003";
const ENG: &str = "00geng00000000000001";
const FIN: &str = "00gfin00000000000002";
const STAFF: &str = "00gstaff000000000003";
/// Frank's login is not his email.
const FRANK: &str = "00ufrank000000000006";

/// Alice and Bob in Engineering, Carol in Finance, all six users in All Staff.
fn org() -> OktaOrg {
    let mut o = OktaOrg::default();
    for (id, name) in [
        (ALICE, "alice"),
        (BOB, "bob"),
        (CAROL, "carol"),
        ("00udan00000000000004", "dan"),
        ("00ueve00000000000005", "eve"),
    ] {
        let email = format!("{name}@example.test");
        o.add_user(id, "ACTIVE", Some(&email), &email);
    }
    o.add_user(
        FRANK,
        "ACTIVE",
        Some("frank@example.test"),
        "frank.l@corp.example",
    );
    o.add_group(ENG, "Engineering", "OKTA_GROUP");
    o.add_group(FIN, "Finance", "OKTA_GROUP");
    o.add_group(STAFF, "All Staff", "OKTA_GROUP");
    o.add_member(ENG, ALICE);
    o.add_member(ENG, BOB);
    o.add_member(FIN, CAROL);
    for u in o.users.keys().cloned().collect::<Vec<_>>() {
        o.add_member(STAFF, &u);
    }
    o
}

/// Groups over 4 members are chunked: All Staff (5 users) is nested.
const SMALL_CHUNKS: (&str, &str) = ("Q_GROUP_SYNC_QBUSINESS__INLINE_MEMBER_LIMIT", "4");

async fn explain(h: &Harness, user: &str, document: &str, json: bool) -> (Option<i32>, String) {
    let mut args = vec!["explain", "--user", user, "--document", document];
    if json {
        args.extend(["--output", "json"]);
    }
    let out = h.run_env(&args, &[SMALL_CHUNKS]).await;
    (out.status.code(), text(&out))
}

async fn explain_json(h: &Harness, user: &str, document: &str) -> (i32, serde_json::Value) {
    let mut args = vec!["explain", "--user", user, "--document", document];
    args.extend(["--output", "json"]);
    let out = h.run_env(&args, &[SMALL_CHUNKS]).await;
    let json =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code().unwrap(), json)
}

async fn sync(h: &Harness, args: &[&str]) {
    let mut all = vec!["sync"];
    all.extend(args);
    let out = h.run_env(&all, &[SMALL_CHUNKS]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn documents(h: &Harness) {
    h.q.put_document("q3-plan", DocumentAcl::allow_groups(&["Engineering"]));
    h.q.put_document("budget-2027", DocumentAcl::allow_groups(&["Finance"]));
    h.q.put_document("handbook", DocumentAcl::allow_groups(&["All Staff"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_tells_consistent_from_not_yet_synced_and_skipped() {
    let h = Harness::start(org()).await;
    sync(&h, &[]).await;
    documents(&h);
    // All Staff is written as chunk sub-groups: Q resolves Alice into it through one.
    assert!(!h.q.group("All Staff").unwrap().groups.is_empty());

    // Access through a group: consistent, exit 0 (by email).
    let (code, out) = explain(&h, "alice@example.test", "q3-plan", false).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "Verdict:    Consistent: alice@example.test can see q3-plan through \"Engineering\"."
        ),
        "{out}"
    );
    println!("{out}");

    // Through a nested (chunked) group, by Okta id.
    let (code, json) = explain_json(&h, ALICE, "handbook").await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["has_access"], true);
    let q_groups = json["q_user_groups"].as_array().unwrap();
    assert!(q_groups.iter().any(|g| g == "All Staff"), "{json:#}");
    assert!(
        q_groups.iter().any(|g| g
            .as_str()
            .unwrap()
            .starts_with("All Staff (q-group-sync chunk")),
        "{json:#}"
    );

    // A group the user is not in: consistent, no access, exit 0 (by login).
    let (code, json) = explain_json(&h, "alice@example.test", "budget-2027").await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["has_access"], false);
    assert_eq!(json["expected_access"], false);
    assert_eq!(json["consistent"], true);
    let g = &json["acl_groups"][0];
    assert_eq!(g["name"], "Finance");
    assert_eq!(g["in_okta"], false);
    assert_eq!(g["in_q"], false);
    assert_eq!(g["owned"], true);
    assert_eq!(g["user_in_last_write"], false);
    assert!(json["verdict"].as_str().unwrap().starts_with("Consistent"));

    // Joined in Okta, not yet synced: exit 1, the verdict names the group and the fix.
    h.okta.update(|o| o.add_member(FIN, ALICE));
    let (code, out) = explain(&h, "alice@example.test", "budget-2027", false).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("Not yet synced: alice@example.test joined Okta group \"Finance\"")
            && out.contains("`q-group-sync sync --group Finance` fixes it now"),
        "{out}"
    );
    assert!(out.contains("INCONSISTENT"), "{out}");
    println!("{out}");
    let (code, json) = explain_json(&h, "alice@example.test", "budget-2027").await;
    assert_eq!(code, 1);
    assert_eq!(json["cause"], "not_yet_synced");
    assert_eq!(json["acl_groups"][0]["in_okta"], true);
    assert_eq!(json["acl_groups"][0]["in_q"], false);

    // The fix, then consistent.
    sync(&h, &["--group", "Finance"]).await;
    let (code, out) = explain(&h, "alice@example.test", "budget-2027", false).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("can see budget-2027 through \"Finance\""),
        "{out}"
    );

    // Suspended in Okta, still in Q: exit 1, the verdict says the status.
    h.okta.update(|o| o.suspend_user(BOB)).unwrap();
    let (code, out) = explain(&h, "bob@example.test", "q3-plan", false).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("User skipped: Okta has bob@example.test SUSPENDED")
            && out.contains("sync --group Engineering` removes them now"),
        "{out}"
    );
    println!("{out}");
    sync(&h, &["--group", "Engineering"]).await;
    let (code, json) = explain_json(&h, BOB, "q3-plan").await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["has_access"], false);
    assert_eq!(json["user"]["skipped"], "status");
    assert_eq!(json["user"]["status"], "SUSPENDED");

    // Unknown user and unknown document: exit 4, the message names which.
    let (code, out) = explain(&h, "nobody@example.test", "q3-plan", false).await;
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains(
            "unknown user: Okta has no user whose id, login or email is \"nobody@example.test\""
        ),
        "{out}"
    );
    let (code, out) = explain(&h, "alice@example.test", "no-such-doc", false).await;
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("unknown document: Q Business has no document \"no-such-doc\""),
        "{out}"
    );
    let (code, json) = explain_json(&h, "alice@example.test", "no-such-doc").await;
    assert_eq!(code, 4);
    assert_eq!(json["kind"], "unknown_document");

    // Without qbusiness:CheckDocumentAccess: exit 2, naming the permission.
    h.q.add_fault(QFault::always(QFaultAction::AccessDenied).on_op("CheckDocumentAccess"));
    let (code, out) = explain(&h, "alice@example.test", "q3-plan", false).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("needs IAM qbusiness:CheckDocumentAccess") && out.contains("access_denied"),
        "{out}"
    );
    h.q.clear_faults();

    // explain wrote nothing: no PutGroup or DeleteGroup from it.
    h.q.reset_calls();
    explain(&h, "alice@example.test", "q3-plan", false).await;
    let ops: Vec<String> = h.q.calls().into_iter().map(|c| c.op).collect();
    assert_eq!(ops, ["CheckDocumentAccess"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_lists_and_direct_entries_come_from_the_document() {
    let h = Harness::start(org()).await;
    sync(&h, &[]).await;
    // Everyone in All Staff, except Finance; and Carol named directly.
    let all_staff_but_finance = DocumentAcl {
        allowlist: Some(AclMembership {
            member_relation: Some(MemberRelation::Or),
            conditions: vec![AclCondition {
                member_relation: Some(MemberRelation::Or),
                users: vec![AclUser {
                    id: "Carol@Example.test".into(),
                    kind: "INDEX".into(),
                }],
                groups: vec![AclGroup {
                    name: "All Staff".into(),
                    kind: "INDEX".into(),
                }],
            }],
        }),
        deny_list: Some(AclMembership {
            member_relation: None,
            conditions: vec![AclCondition {
                member_relation: None,
                users: vec![],
                groups: vec![AclGroup {
                    name: "Finance".into(),
                    kind: "INDEX".into(),
                }],
            }],
        }),
    };
    h.q.put_document("roadmap", all_staff_but_finance);
    // Found by email (not his login), whatever its case.
    let (code, json) = explain_json(&h, "Frank@Example.test", "roadmap").await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["user"]["okta_id"], FRANK);
    assert_eq!(json["user"]["q_user_id"], "frank@example.test");
    assert_eq!(json["has_access"], true);
    let (code, json) = explain_json(&h, "alice@example.test", "roadmap").await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["has_access"], true);
    let (code, json) = explain_json(&h, "carol@example.test", "roadmap").await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["has_access"], false, "the deny list wins: {json:#}");
    assert!(json["verdict"].as_str().unwrap().contains("deny list"));
    assert_eq!(json["acl_groups"][1]["list"], "deny");

    // Carol leaves Finance in Okta: Q still denies until Finance is synced.
    h.okta.update(|o| o.remove_member(FIN, CAROL));
    let (code, json) = explain_json(&h, "carol@example.test", "roadmap").await;
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(json["cause"], "deny_list");
    let verdict = json["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("\"Finance\"") && verdict.contains("sync --group Finance"),
        "{verdict}"
    );
    sync(&h, &["--group", "Finance"]).await;
    let (code, json) = explain_json(&h, "carol@example.test", "roadmap").await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["has_access"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_get_explain_behind_the_admin_token() {
    let h = Harness::start(org()).await;
    h.add_config(&format!(
        "\n[schedule]\ncron = \"0 0 0 1 1 *\"\n[server]\nadmin_token = \"{ADMIN}\"\n"
    ));
    documents(&h);
    let s = h.serve(&[]).await;
    s.wait_status(30, "the first pass", |st| {
        st["last_pass"]["outcome"] == "success"
    })
    .await;
    let path = "/explain?user=alice%40example.test&document=q3-plan";

    let r = s.get(path).await;
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .get(s.url(path))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = s
        .http
        .get(s.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["has_access"], true, "{json:#}");
    assert_eq!(json["expected_access"], true);
    assert_eq!(json["consistent"], true);
    assert_eq!(json["acl_groups"][0]["name"], "Engineering");
    assert_eq!(json["acl_groups"][0]["in_okta"], true);
    assert_eq!(json["acl_groups"][0]["in_q"], true);

    let r = s
        .http
        .get(s.url("/explain?user=alice%40example.test&document=nope"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["kind"], "unknown_document");
    let r = s
        .http
        .get(s.url("/explain?user=alice%40example.test"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A POST is not an explain.
    let r = s
        .http
        .post(s.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(!s.logs().contains(ADMIN), "the admin token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_q_holds_whether_q_lists_nested_parent_groups_or_only_direct_ones() {
    let h = Harness::start(org()).await;
    sync(&h, &[]).await;
    documents(&h);
    // Q Business lists only the groups that name the user: a chunk of All Staff, not All Staff.
    h.q.set_modes(QModes {
        nested_user_groups: false,
        ..QModes::default()
    });
    let (code, json) = explain_json(&h, ALICE, "handbook").await;
    assert_eq!(code, 0, "{json:#}");
    let q_groups = json["q_user_groups"].as_array().unwrap();
    assert!(!q_groups.iter().any(|g| g == "All Staff"), "{json:#}");
    let staff = json["acl_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "All Staff")
        .unwrap();
    assert_eq!(staff["in_q"], true, "{json:#}");
    assert_eq!(json["consistent"], true, "{json:#}");
    assert_eq!(json["cause"], "consistent", "{json:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_outside_any_data_source_is_asked_about_without_one() {
    const DS: &str = "cccccccc-cccc-cccc-cccc-cccccccccccc";
    let h = Harness::start(org()).await;
    let with_ds = [SMALL_CHUNKS, ("Q_GROUP_SYNC_QBUSINESS__DATA_SOURCE_ID", DS)];
    let out = h.run_env(&["sync"], &with_ds).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Added with BatchPutDocument: in no data source.
    h.q.put_document("memo", DocumentAcl::allow_groups(&["Engineering"]));
    let ask = |data_source: Option<&'static str>| {
        let mut args = vec![
            "explain",
            "--user",
            "alice@example.test",
            "--document",
            "memo",
            "--output",
            "json",
        ];
        if let Some(ds) = data_source {
            args.extend(["--data-source", ds]);
        }
        let h = &h;
        async move { h.run_env(&args, &with_ds).await }
    };
    // With the configured data source: Q Business has no such document there.
    let out = ask(None).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("unknown document"), "{}", text(&out));
    // `none`: asked without a data source, the document is found.
    let out = ask(Some("none")).await;
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert!(json["has_access"].is_boolean(), "{json:#}");
    assert_ne!(out.status.code(), Some(4), "{}", text(&out));
}

#![allow(clippy::unwrap_used)]

use chrono::TimeZone;

use super::*;
use crate::model::{Members, OktaGroupId, UserId};
use crate::plan::input::GroupType;
use crate::plan::safety::HeldDelete;
use crate::plan::{Layout, SnapshotGroup};

const ALICE: &str = "alice@example.test";

fn rules() -> Rules {
    Rules::new(
        &["*".to_owned()],
        &["Secret*".to_owned()],
        "",
        &["ACTIVE".to_owned()],
        true,
    )
    .unwrap()
}

fn alice(status: &str) -> OktaUser {
    OktaUser {
        id: "00ualice".into(),
        status: status.into(),
        login: Some(ALICE.into()),
        email: Some(ALICE.into()),
        attribute: Some(ALICE.into()),
    }
}

fn okta_group(id: &str, name: &str) -> OktaGroup {
    OktaGroup {
        id: id.into(),
        name: name.into(),
        kind: GroupType::Okta,
        last_membership_updated: None,
        last_updated: None,
    }
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0)
        .single()
        .unwrap()
}

/// A snapshot with `groups`: (name, members, unconfirmed).
fn snapshot(groups: &[(&str, &[&str], bool)]) -> Snapshot {
    let mut s = Snapshot::default();
    for (name, members, unconfirmed) in groups {
        s.groups.insert(
            GroupName::new(*name),
            SnapshotGroup {
                okta_id: OktaGroupId::new(format!("00g{name}")),
                members: members
                    .iter()
                    .map(|m| UserId::from_normalised(*m))
                    .collect(),
                pushed_at: at(),
                unconfirmed: *unconfirmed,
                read: None,
                layout: Layout::Inline,
            },
        );
    }
    s
}

fn allow_groups(groups: &[&str]) -> DocumentAcl {
    DocumentAcl {
        allowlist: Some(AclList {
            relation: Some(Relation::Or),
            conditions: vec![AclCondition {
                relation: Some(Relation::Or),
                users: vec![],
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            }],
        }),
        deny_list: None,
    }
}

fn answer(has: bool, in_q: &[&str], acl: DocumentAcl) -> AccessAnswer {
    AccessAnswer {
        has_access: has,
        user_groups: in_q.iter().map(|g| (*g).to_owned()).collect(),
        user_aliases: vec![],
        document_acl: acl,
    }
}

struct Case {
    user: OktaUser,
    groups: Vec<OktaGroup>,
    snapshot: Snapshot,
    held: Option<Held>,
    answer: AccessAnswer,
}

impl Case {
    fn run(&self) -> Explanation {
        let rules = rules();
        explain(&Facts {
            user: &self.user,
            okta_groups: &self.groups,
            rules: &rules,
            id_attribute: "email",
            snapshot: &self.snapshot,
            held: self.held.as_ref(),
            document: "q3-plan",
            answer: &self.answer,
        })
    }
}

fn eng() -> Vec<OktaGroup> {
    vec![okta_group("00geng", "Engineering")]
}

#[test]
fn access_through_a_synced_group_is_consistent() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: eng(),
        snapshot: snapshot(&[("Engineering", &[ALICE], false)]),
        held: None,
        answer: answer(true, &["Engineering"], allow_groups(&["Engineering"])),
    }
    .run();
    assert!(e.has_access && e.expected_access && e.consistent);
    assert_eq!(e.cause, Cause::Consistent);
    assert_eq!(
        e.verdict,
        "Consistent: alice@example.test can see q3-plan through \"Engineering\"."
    );
    let g = &e.acl_groups[0];
    assert!(g.in_okta && g.in_q && g.owned);
    assert_eq!(g.user_in_last_write, Some(true));
    assert_eq!(g.confirmed, Some(true));
    assert_eq!(g.last_written, Some(at()));
    assert_eq!(e.user.q_user_id.as_deref(), Some(ALICE));
}

#[test]
fn a_group_the_user_is_not_in_is_consistent_without_access() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: eng(),
        snapshot: snapshot(&[("Finance", &["bob@example.test"], false)]),
        held: None,
        answer: answer(false, &["Engineering"], allow_groups(&["Finance"])),
    }
    .run();
    assert!(!e.has_access && !e.expected_access && e.consistent);
    assert!(
        e.verdict.contains("none of its groups (\"Finance\")"),
        "{}",
        e.verdict
    );
    assert!(!e.acl_groups[0].in_okta && !e.acl_groups[0].in_q);
}

#[test]
fn joined_in_okta_after_the_last_write_is_not_yet_synced() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: eng(),
        snapshot: snapshot(&[("Engineering", &["bob@example.test"], false)]),
        held: None,
        answer: answer(false, &[], allow_groups(&["Engineering"])),
    }
    .run();
    assert!(!e.consistent && e.expected_access && !e.has_access);
    assert_eq!(e.cause, Cause::NotYetSynced);
    assert_eq!(
        e.verdict,
        "Not yet synced: alice@example.test joined Okta group \"Engineering\" after q-group-sync last wrote \"Engineering\" (2026-12-01 09:30:00Z); `q-group-sync sync --group Engineering` fixes it now."
    );
    assert_eq!(e.acl_groups[0].user_in_last_write, Some(false));
}

#[test]
fn a_group_never_written_is_not_yet_synced() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: vec![okta_group("00gops", "Ops & On-Call")],
        snapshot: snapshot(&[]),
        held: None,
        answer: answer(false, &[], allow_groups(&["Ops & On-Call"])),
    }
    .run();
    assert_eq!(e.cause, Cause::NotYetSynced);
    assert!(
        e.verdict.contains("has not written \"Ops & On-Call\" yet")
            && e.verdict.contains("sync --group 'Ops & On-Call'"),
        "{}",
        e.verdict
    );
    assert!(!e.acl_groups[0].owned);
}

#[test]
fn suspended_but_still_in_q_names_the_status() {
    let e = Case {
        user: alice("SUSPENDED"),
        groups: eng(),
        snapshot: snapshot(&[("Engineering", &[ALICE], false)]),
        held: None,
        answer: answer(true, &["Engineering"], allow_groups(&["Engineering"])),
    }
    .run();
    assert!(!e.consistent && !e.expected_access && e.has_access);
    assert_eq!(e.cause, Cause::UserSkipped);
    assert!(e.verdict.contains("SUSPENDED"), "{}", e.verdict);
    assert!(
        e.verdict
            .contains("`q-group-sync sync --group Engineering` removes them now"),
        "{}",
        e.verdict
    );
    assert_eq!(e.user.q_user_id, None);
    assert_eq!(e.user.checked_as, ALICE);
    assert_eq!(e.user.skipped, Some("status"));
}

#[test]
fn a_user_without_the_id_attribute_is_skipped() {
    let mut user = alice("ACTIVE");
    user.attribute = None;
    let e = Case {
        user,
        groups: eng(),
        snapshot: snapshot(&[("Engineering", &[ALICE], false)]),
        held: None,
        answer: answer(true, &["Engineering"], allow_groups(&["Engineering"])),
    }
    .run();
    assert_eq!(e.cause, Cause::UserSkipped);
    assert!(e.verdict.contains("has no email in Okta"), "{}", e.verdict);
    assert_eq!(e.user.skipped, Some("missing_attribute"));
    // Q is asked about the login instead.
    assert_eq!(e.user.checked_as, ALICE);
}

#[test]
fn a_removal_held_by_the_circuit_breaker_names_the_plan() {
    let mut removals = BTreeMap::new();
    removals.insert(
        GroupName::new("Engineering"),
        [UserId::from_normalised(ALICE)]
            .into_iter()
            .collect::<Members>(),
    );
    let e = Case {
        user: alice("ACTIVE"),
        groups: vec![],
        snapshot: snapshot(&[("Engineering", &[ALICE], false)]),
        held: Some(Held {
            id: "0123456789ab".into(),
            removals,
            ..Held::default()
        }),
        answer: answer(true, &["Engineering"], allow_groups(&["Engineering"])),
    }
    .run();
    assert_eq!(e.cause, Cause::Held);
    assert!(
        e.verdict.contains("plan 0123456789ab")
            && e.verdict.contains("`q-group-sync approve 0123456789ab`"),
        "{}",
        e.verdict
    );
}

#[test]
fn a_held_group_deletion_names_the_plan() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: vec![],
        snapshot: snapshot(&[("Engineering", &[ALICE], false)]),
        held: Some(Held {
            id: "ba9876543210".into(),
            deletes: vec![HeldDelete {
                group: GroupName::new("Engineering"),
                okta_id: OktaGroupId::new("00geng"),
            }],
            ..Held::default()
        }),
        answer: answer(true, &["Engineering"], allow_groups(&["Engineering"])),
    }
    .run();
    assert_eq!(e.cause, Cause::Held);
    assert!(
        e.verdict.contains("the deletion of \"Engineering\""),
        "{}",
        e.verdict
    );
}

#[test]
fn an_unconfirmed_put_is_reported() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: eng(),
        snapshot: snapshot(&[("Engineering", &[ALICE], true)]),
        held: None,
        answer: answer(false, &[], allow_groups(&["Engineering"])),
    }
    .run();
    assert_eq!(e.cause, Cause::UnconfirmedWrite);
    assert!(e.verdict.contains("not confirmed"), "{}", e.verdict);
    assert_eq!(e.acl_groups[0].confirmed, Some(false));
}

#[test]
fn a_recorded_write_that_q_lacks_is_a_failed_put() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: eng(),
        snapshot: snapshot(&[("Engineering", &[ALICE], false)]),
        held: None,
        answer: answer(false, &[], allow_groups(&["Engineering"])),
    }
    .run();
    assert_eq!(e.cause, Cause::FailedWrite);
    assert!(e.verdict.starts_with("A failed put"), "{}", e.verdict);
}

#[test]
fn removed_in_okta_after_the_last_write_is_not_yet_synced() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: vec![],
        snapshot: snapshot(&[("Engineering", &[ALICE], false)]),
        held: None,
        answer: answer(true, &["Engineering"], allow_groups(&["Engineering"])),
    }
    .run();
    assert_eq!(e.cause, Cause::NotYetSynced);
    assert!(e.verdict.contains("removes them now"), "{}", e.verdict);
}

#[test]
fn a_group_someone_else_owns_is_not_owned() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: vec![],
        snapshot: snapshot(&[]),
        held: None,
        answer: answer(true, &["Contractors"], allow_groups(&["Contractors"])),
    }
    .run();
    assert_eq!(e.cause, Cause::NotOwned);
    assert!(
        e.verdict
            .contains("\"Contractors\" is not a q-group-sync group")
    );
}

#[test]
fn an_out_of_scope_okta_group_is_named() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: vec![okta_group("00gsec", "Secret Project")],
        snapshot: snapshot(&[]),
        held: None,
        answer: answer(true, &["Secret Project"], allow_groups(&["Secret Project"])),
    }
    .run();
    assert_eq!(e.cause, Cause::OutOfScope);
    assert!(e.verdict.contains("groups.exclude"), "{}", e.verdict);
    assert_eq!(e.user.okta_groups[0].scope, "excluded");
}

#[test]
fn changed_in_q_outside_q_group_sync() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: vec![],
        snapshot: snapshot(&[("Engineering", &["bob@example.test"], false)]),
        held: None,
        answer: answer(true, &["Engineering"], allow_groups(&["Engineering"])),
    }
    .run();
    assert_eq!(e.cause, Cause::ChangedInQ);
}

#[test]
fn an_acl_naming_another_identity_of_the_user_is_an_id_mismatch() {
    let mut user = alice("ACTIVE");
    user.login = Some("alice.smith@corp.example".into());
    let acl = DocumentAcl {
        allowlist: Some(AclList {
            relation: None,
            conditions: vec![AclCondition {
                relation: None,
                users: vec!["Alice.Smith@corp.example".into()],
                groups: vec![],
            }],
        }),
        deny_list: None,
    };
    let e = Case {
        user,
        groups: vec![],
        snapshot: snapshot(&[]),
        held: None,
        answer: answer(false, &[], acl),
    }
    .run();
    assert!(e.expected_access && !e.has_access);
    assert_eq!(e.cause, Cause::IdMismatch);
    assert!(
        e.verdict.contains("as Alice.Smith@corp.example") && e.verdict.contains(ALICE),
        "{}",
        e.verdict
    );
    assert_eq!(e.acl_users, ["Alice.Smith@corp.example"]);
}

#[test]
fn a_deny_group_q_holds_the_user_in_denies() {
    let acl = DocumentAcl {
        deny_list: Some(AclList {
            relation: Some(Relation::Or),
            conditions: vec![AclCondition {
                relation: Some(Relation::Or),
                users: vec![],
                groups: vec!["Leavers".into()],
            }],
        }),
        ..allow_groups(&["Engineering"])
    };
    let e = Case {
        user: alice("ACTIVE"),
        groups: eng(),
        snapshot: snapshot(&[
            ("Engineering", &[ALICE], false),
            ("Leavers", &[ALICE], false),
        ]),
        held: None,
        answer: answer(false, &["Engineering", "Leavers"], acl.clone()),
    }
    .run();
    assert!(e.expected_access && !e.has_access);
    assert_eq!(e.cause, Cause::DenyList);
    assert!(
        e.verdict.contains("deny list names \"Leavers\"") && e.verdict.contains("removes them now"),
        "{}",
        e.verdict
    );
    assert_eq!(e.acl_groups[1].list, "deny");

    // In the deny group in Okta too: consistent.
    let e = Case {
        user: alice("ACTIVE"),
        groups: vec![
            okta_group("00geng", "Engineering"),
            okta_group("00glv", "Leavers"),
        ],
        snapshot: snapshot(&[
            ("Engineering", &[ALICE], false),
            ("Leavers", &[ALICE], false),
        ]),
        held: None,
        answer: answer(false, &["Engineering", "Leavers"], acl),
    }
    .run();
    assert!(e.consistent && !e.expected_access);
    assert!(e.verdict.contains("deny list names them"), "{}", e.verdict);
}

#[test]
fn a_direct_entry_for_a_suspended_user() {
    let acl = DocumentAcl {
        allowlist: Some(AclList {
            relation: Some(Relation::Or),
            conditions: vec![AclCondition {
                relation: Some(Relation::Or),
                users: vec![ALICE.into()],
                groups: vec![],
            }],
        }),
        deny_list: None,
    };
    let e = Case {
        user: alice("DEPROVISIONED"),
        groups: vec![],
        snapshot: snapshot(&[]),
        held: None,
        answer: answer(true, &[], acl),
    }
    .run();
    assert_eq!(e.cause, Cause::UserSkipped);
    assert!(
        e.verdict.contains("names alice@example.test directly")
            && e.verdict.contains("DEPROVISIONED"),
        "{}",
        e.verdict
    );
}

#[test]
fn and_relations_need_every_principal() {
    let acl = DocumentAcl {
        allowlist: Some(AclList {
            relation: Some(Relation::Or),
            conditions: vec![AclCondition {
                relation: Some(Relation::And),
                users: vec![],
                groups: vec!["Engineering".into(), "Finance".into()],
            }],
        }),
        deny_list: None,
    };
    let e = Case {
        user: alice("ACTIVE"),
        groups: eng(),
        snapshot: snapshot(&[("Engineering", &[ALICE], false)]),
        held: None,
        answer: answer(false, &["Engineering"], acl.clone()),
    }
    .run();
    assert!(e.consistent && !e.expected_access);

    let e = Case {
        user: alice("ACTIVE"),
        groups: vec![
            okta_group("00geng", "Engineering"),
            okta_group("00gfin", "Finance"),
        ],
        snapshot: snapshot(&[("Engineering", &[ALICE], false), ("Finance", &[], false)]),
        held: None,
        answer: answer(false, &["Engineering"], acl),
    }
    .run();
    assert!(e.expected_access && !e.has_access);
    assert_eq!(e.cause, Cause::NotYetSynced);
    assert!(e.verdict.contains("\"Finance\""), "{}", e.verdict);
}

#[test]
fn an_empty_acl_grants_nothing() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: eng(),
        snapshot: snapshot(&[]),
        held: None,
        answer: answer(false, &[], DocumentAcl::default()),
    }
    .run();
    assert!(e.consistent && !e.expected_access);
    assert!(e.verdict.contains("names no group"), "{}", e.verdict);
}

#[test]
fn a_difference_no_group_explains_is_unexplained() {
    let e = Case {
        user: alice("ACTIVE"),
        groups: eng(),
        snapshot: snapshot(&[("Engineering", &[ALICE], false)]),
        held: None,
        // Q says yes while its own userGroups and ACL do not add up.
        answer: answer(true, &[], allow_groups(&["Finance"])),
    }
    .run();
    assert_eq!(e.cause, Cause::Unexplained);
    assert!(!e.consistent);
}

#[test]
fn cause_labels_are_the_json_ones() {
    for c in [
        Cause::Consistent,
        Cause::NotYetSynced,
        Cause::Held,
        Cause::UnconfirmedWrite,
        Cause::FailedWrite,
        Cause::NotOwned,
        Cause::OutOfScope,
        Cause::UserSkipped,
        Cause::IdMismatch,
        Cause::DenyList,
        Cause::ChangedInQ,
        Cause::Unexplained,
    ] {
        assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
    }
}

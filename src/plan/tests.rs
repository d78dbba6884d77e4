use chrono::TimeZone;

use super::*;
use crate::model::UserId;

fn members(ids: &[&str]) -> Members {
    ids.iter().map(|id| UserId::from_normalised(*id)).collect()
}

/// Builder for the desired side: `dir().group("eng", "g1", [...])`.
#[derive(Default)]
struct Dir(Desired);

fn dir() -> Dir {
    Dir::default()
}

impl Dir {
    fn group(mut self, name: &str, okta_id: &str, ids: &[&str]) -> Self {
        self.0.groups.insert(
            GroupName::new(name),
            DesiredGroup {
                okta_id: OktaGroupId::new(okta_id),
                okta_name: name.into(),
                members: members(ids),
            },
        );
        self.0.listed += 1;
        self
    }

    fn unread(mut self, name: &str, okta_id: &str) -> Self {
        self.0.blocked.insert(
            GroupName::new(name),
            Blocked {
                okta_id: OktaGroupId::new(okta_id),
                okta_name: name.into(),
                kind: IssueKind::Unread,
                detail: "server: HTTP 500".into(),
            },
        );
        self.0.unread += 1;
        self.0.listed += 1;
        self
    }

    fn out_of_scope(mut self, okta_id: &str) -> Self {
        self.0.out_of_scope.insert(OktaGroupId::new(okta_id));
        self.0.listed += 1;
        self
    }

    fn build(self) -> Desired {
        self.0
    }
}

#[derive(Default)]
struct Snap(Snapshot);

fn snap() -> Snap {
    Snap::default()
}

impl Snap {
    fn group(mut self, name: &str, okta_id: &str, ids: &[&str]) -> Self {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        self.0.groups.insert(
            GroupName::new(name),
            SnapshotGroup {
                okta_id: OktaGroupId::new(okta_id),
                members: members(ids),
                pushed_at: at,
                unconfirmed: false,
                read: None,
                layout: Default::default(),
            },
        );
        self
    }

    fn build(self) -> Snapshot {
        self.0
    }
}

fn run(d: &Desired, s: &Snapshot) -> Plan {
    plan(d, s, &Policy::default())
}

#[test]
fn first_run_puts_every_group_with_full_lists() {
    let d = dir()
        .group("eng", "g1", &["ana@x.test", "bo@x.test"])
        .group("empty", "g2", &[])
        .build();
    let p = run(&d, &Snapshot::default());
    assert_eq!(
        p.to_string(),
        "Plan: 2 to put, 0 to delete, 0 unchanged, 0 with issues (2 in scope of 2 listed)\n\
         + empty (new, 0 members)\n\
         + eng (new, 2 members)\n"
    );
    let Change::Put {
        members: m, added, ..
    } = &p.changes[1]
    else {
        panic!("a put")
    };
    assert_eq!(m, &members(&["ana@x.test", "bo@x.test"]));
    assert_eq!(added, m);
}

#[test]
fn no_change_is_empty() {
    let d = dir().group("eng", "g1", &["ana@x.test"]).build();
    let s = snap().group("eng", "g1", &["ana@x.test"]).build();
    let p = run(&d, &s);
    assert!(p.is_empty());
    assert_eq!(p.unchanged, 1);
    assert!(
        p.to_string()
            .ends_with("Nothing to do: Q Business matches Okta.\n")
    );
}

#[test]
fn removing_a_member_puts_the_full_new_list() {
    let d = dir()
        .group("eng", "g1", &["ana@x.test", "cy@x.test"])
        .build();
    let s = snap()
        .group("eng", "g1", &["ana@x.test", "bo@x.test"])
        .build();
    let p = run(&d, &s);
    assert_eq!(
        p.to_string(),
        "Plan: 1 to put, 0 to delete, 0 unchanged, 0 with issues (1 in scope of 1 listed)\n\
         ~ eng (2 members: +1 -1)\n    + cy@x.test\n    - bo@x.test\n"
    );
    let Change::Put { members: m, .. } = &p.changes[0] else {
        panic!("a put")
    };
    assert_eq!(m, &members(&["ana@x.test", "cy@x.test"]));
}

#[test]
fn deletes_only_groups_in_the_snapshot() {
    let d = dir().group("eng", "g1", &[]).out_of_scope("g3").build();
    let s = snap()
        .group("eng", "g1", &[])
        .group("gone", "g2", &["a@x.test"])
        .group("scoped-out", "g3", &[])
        .build();
    let p = run(&d, &s);
    assert_eq!(
        p.to_string(),
        "Plan: 0 to put, 2 to delete, 1 unchanged, 0 with issues (1 in scope of 2 listed)\n\
         - gone (gone from Okta)\n\
         - scoped-out (out of scope)\n"
    );
}

#[test]
fn rename_puts_new_then_deletes_old() {
    let d = dir().group("new name", "g1", &["a@x.test"]).build();
    let s = snap().group("old name", "g1", &["a@x.test"]).build();
    let p = run(&d, &s);
    assert_eq!(p.changes.len(), 2);
    assert!(
        matches!(&p.changes[0], Change::Put { reason: PutReason::Renamed { from }, .. } if from.as_str() == "old name")
    );
    assert!(
        matches!(&p.changes[1], Change::Delete { reason: DeleteReason::Renamed { to }, .. } if to.as_str() == "new name")
    );
}

#[test]
fn unread_group_is_not_pushed_and_withholds_every_delete() {
    let d = dir()
        .group("eng", "g1", &["a@x.test"])
        .unread("sales", "g2")
        .build();
    let s = snap()
        .group("eng", "g1", &[])
        .group("sales", "g2", &["b@x.test"])
        .group("gone", "g9", &[])
        .build();
    let p = run(&d, &s);
    assert_eq!(p.puts().count(), 1);
    assert_eq!(p.deletes().count(), 0);
    assert_eq!(p.withheld_deletes.len(), 1);
    assert_eq!(p.issues[0].kind, IssueKind::Unread);
    assert!(
        p.to_string()
            .contains("! deletions withheld: 1 group(s) could not be read")
    );
    assert!(p.to_string().contains("- (withheld) gone (gone from Okta)"));
}

#[test]
fn over_limit_is_refused_not_truncated_and_not_deleted() {
    let ids: Vec<String> = (0..1001).map(|i| format!("u{i:04}@x.test")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let d = dir()
        .group("big", "g1", &refs)
        .group("ok", "g2", &refs[..1000])
        .build();
    let s = snap().group("big", "g1", &refs[..10]).build();
    let refuse = Policy {
        large_groups: LargeGroups::Refuse,
        ..Policy::default()
    };
    let p = plan(&d, &s, &refuse);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].group().as_str(), "ok");
    assert_eq!(p.issues.len(), 1);
    assert_eq!(p.issues[0].kind, IssueKind::OverMemberLimit);
    assert!(p.issues[0].detail.contains("1001 members"));
    // By default the same group is chunked instead.
    let p = run(&d, &s);
    assert!(p.issues.is_empty(), "{:?}", p.issues);
    let Change::Put { layout, writes, .. } = &p.changes[0] else {
        panic!("a put")
    };
    assert_eq!(*layout, Layout::Chunked { chunks: 2 });
    assert_eq!(writes.len(), 3, "two chunks, then the group");
    assert_eq!(writes[2].member_groups.len(), 2);
    assert_eq!(writes.iter().map(|w| w.user_count).sum::<usize>(), 1001);
}

#[test]
fn a_group_shaped_like_a_chunk_is_refused() {
    let d = dir()
        .group("x (q-group-sync chunk 1 of 2)", "g1", &["a@x.test"])
        .build();
    let p = run(&d, &Snapshot::default());
    assert!(p.changes.is_empty());
    assert_eq!(p.issues[0].kind, IssueKind::ReservedName);
}

#[test]
fn same_inputs_same_plan_and_json() {
    let d = dir()
        .group("b", "g2", &["z@x.test", "a@x.test"])
        .group("a", "g1", &["m@x.test"])
        .build();
    let s = snap().group("c", "g3", &[]).build();
    let p1 = run(&d, &s);
    let p2 = run(&d.clone(), &s.clone());
    assert_eq!(p1, p2);
    let json = serde_json::to_string(&p1).expect("serialises");
    assert_eq!(json, serde_json::to_string(&p2).expect("serialises"));
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["changes"][0]["op"], "put");
    assert_eq!(v["changes"][0]["group"], "a");
    assert_eq!(
        v["changes"][1]["added"],
        serde_json::json!(["a@x.test", "z@x.test"])
    );
    assert_eq!(v["changes"][2]["op"], "delete");
    assert_eq!(v["changes"][2]["reason"]["kind"], "gone_from_okta");
}

#[test]
fn blocked_name_keeps_its_old_group() {
    // The Okta group still exists but its new name conflicts: the old Q group stays.
    let mut d = dir().build();
    d.blocked.insert(
        GroupName::new("dup"),
        Blocked {
            okta_id: OktaGroupId::new("g1"),
            okta_name: "dup".into(),
            kind: IssueKind::NameConflict,
            detail: "x".into(),
        },
    );
    let s = snap().group("old", "g1", &["a@x.test"]).build();
    let p = run(&d, &s);
    assert!(p.changes.is_empty());
    assert_eq!(p.issues.len(), 1);
}

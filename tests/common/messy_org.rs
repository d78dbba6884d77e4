//! A small Okta org with messy users, shared by the Okta client tests.

use q_group_sync_emulator::OktaOrg;

/// Groups 1..=5 are OKTA_GROUP, 6 is APP_GROUP, 7 is the BUILT_IN Everyone.
/// Group 1 has users 1..=7 (messy), group 2 has 3 users, the others are empty.
pub fn org() -> OktaOrg {
    let mut org = OktaOrg::default();
    let users = [
        ("ACTIVE", Some("Ana.Lopez@Example.test"), "ana@example.test"),
        ("DEPROVISIONED", Some("bo@example.test"), "bo@example.test"),
        ("STAGED", Some("cy@example.test"), "cy@example.test"),
        ("ACTIVE", None, "dee@example.test"),
        ("SOMETHING_NEW", Some("ed@example.test"), "ed@example.test"),
        (
            "PASSWORD_EXPIRED",
            Some("fay+tag@example.test"),
            "fay@example.test",
        ),
        ("ACTIVE", Some("gus@example.test"), "gus@example.test"),
    ];
    for (n, (status, email, login)) in users.into_iter().enumerate() {
        org.add_user(&OktaOrg::user_id(n + 1), status, email, login);
    }
    for n in 1..=5 {
        org.add_group(&OktaOrg::group_id(n), &format!("Team {n}"), "OKTA_GROUP");
    }
    org.add_group(&OktaOrg::group_id(6), "AD Admins", "APP_GROUP");
    org.add_group(&OktaOrg::group_id(7), "Everyone", "BUILT_IN");
    for u in 1..=7 {
        org.add_member(&OktaOrg::group_id(1), &OktaOrg::user_id(u));
        org.add_member(&OktaOrg::group_id(7), &OktaOrg::user_id(u));
    }
    for u in 1..=3 {
        org.add_member(&OktaOrg::group_id(2), &OktaOrg::user_id(u));
    }
    org
}

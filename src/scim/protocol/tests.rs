//! PATCH in each IdP's shapes (docs/scim.md, issue 23 item 2), and its errors.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::*;

fn meta() -> Meta {
    let t = Utc.timestamp_opt(1_780_000_000, 0).single().unwrap();
    Meta {
        created: t,
        last_modified: t,
        version: 1,
    }
}

fn user(body: Value) -> ScimUser {
    ScimUser {
        id: "u-1".into(),
        attrs: UserAttrs::from_body(&body).unwrap(),
        meta: meta(),
    }
}

fn ana() -> ScimUser {
    user(json!({
        "userName": "ana@x.test",
        "active": true,
        "displayName": "Ana Lima",
        "name": {"givenName": "Ana", "familyName": "Lima"},
        "emails": [{"value": "ana@x.test", "type": "work", "primary": true}],
        "title": "Engineer"
    }))
}

fn group(members: &[&str]) -> ScimGroup {
    ScimGroup {
        id: "g-1".into(),
        attrs: GroupAttrs::from_body(&json!({"displayName": "Eng"}))
            .unwrap()
            .0,
        members: Some(members.iter().map(|m| m.to_string()).collect()),
        meta: meta(),
    }
}

fn ops(kind: ResourceKind, body: Value) -> Vec<Operation> {
    parse_patch(&body, kind).unwrap()
}

fn patch(u: &ScimUser, operations: Value) -> Result<UserAttrs, ScimError> {
    let body = json!({"schemas": [URN_PATCH], "Operations": operations});
    patch_user(u, &parse_patch(&body, ResourceKind::User)?)
}

fn group_patch(operations: Value) -> Result<GroupPatch, ScimError> {
    let body = json!({"schemas": [URN_PATCH], "Operations": operations});
    GroupPatch::split(parse_patch(&body, ResourceKind::Group)?)
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn applied(change: &MemberChange, start: &[&str]) -> Vec<String> {
    let mut set = ids(start);
    change.apply_to(&mut set);
    set.into_iter().collect()
}

// ---- Okta ----------------------------------------------------------------------------------

#[test]
fn okta_deactivates_and_reactivates_without_a_path() {
    let u = patch(
        &ana(),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .unwrap();
    assert!(!u.active());
    let u = patch(
        &ScimUser { attrs: u, ..ana() },
        json!([{"op": "replace", "value": {"active": true}}]),
    )
    .unwrap();
    assert!(u.active());
    assert_eq!(u.json()["title"], "Engineer", "the rest is kept");
}

#[test]
fn okta_renames_a_group_with_its_id_in_the_value() {
    let p = group_patch(
        json!([{"op": "replace", "value": {"id": "g-1", "displayName": "Engineering"}}]),
    )
    .unwrap();
    assert!(p.members.is_empty());
    let attrs = patch_group_attrs(&group(&[]), &p.ops).unwrap();
    assert_eq!(attrs.display_name(), "Engineering");
    // Another id is a change of id: refused.
    let p = group_patch(json!([{"op": "replace", "value": {"id": "g-2", "displayName": "x"}}]))
        .unwrap();
    let e = patch_group_attrs(&group(&[]), &p.ops).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::Mutability));
}

#[test]
fn okta_adds_removes_by_filter_and_replaces_members() {
    let p = group_patch(json!([{
        "op": "add", "path": "members",
        "value": [{"value": "u-2", "display": "bo@x.test"}, {"value": "u-3", "display": "cy@x.test"}]
    }]))
    .unwrap();
    assert_eq!(applied(&p.members, &["u-1"]), ["u-1", "u-2", "u-3"]);
    assert_eq!(p.members.named_members().count(), 2);

    let p = group_patch(json!([{"op": "remove", "path": "members[value eq \"u-1\"]"}])).unwrap();
    assert_eq!(
        p.members,
        MemberChange::Delta {
            add: BTreeSet::new(),
            remove: ids(&["u-1"])
        }
    );
    let p = group_patch(
        json!([{"op": "remove", "path": "members[value eq \"u-1\" or value eq \"u-2\"]"}]),
    )
    .unwrap();
    assert_eq!(applied(&p.members, &["u-1", "u-2", "u-3"]), ["u-3"]);

    let p = group_patch(json!([{"op": "replace", "path": "members", "value": [{"value": "u-9"}]}]))
        .unwrap();
    assert_eq!(p.members, MemberChange::Replace(ids(&["u-9"])));
    // The whole list in a path-less value (Okta, Tealium's docs).
    let p =
        group_patch(json!([{"op": "replace", "value": {"members": [{"value": "u-8"}]}}])).unwrap();
    assert_eq!(p.members, MemberChange::Replace(ids(&["u-8"])));
    assert!(p.ops.is_empty());
}

// ---- Entra ---------------------------------------------------------------------------------

#[test]
fn entra_capitalised_ops_and_string_booleans() {
    let u = patch(
        &ana(),
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .unwrap();
    assert!(!u.active());
    let u = patch(
        &ana(),
        json!([{"op": "replace", "path": "ACTIVE", "value": "true"}]),
    )
    .unwrap();
    assert!(u.active());
    let e = patch(
        &ana(),
        json!([{"op": "Replace", "path": "active", "value": "no"}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn entra_removes_members_with_a_value_array() {
    let p = group_patch(json!([
        {"op": "Remove", "path": "members", "value": [{"value": "u-1"}, {"value": "u-2"}]}
    ]))
    .unwrap();
    assert_eq!(applied(&p.members, &["u-1", "u-2", "u-3"]), ["u-3"]);
    let p = group_patch(json!([{"op": "Add", "path": "members", "value": [{"value": "u-4"}]}]))
        .unwrap();
    assert_eq!(applied(&p.members, &["u-1"]), ["u-1", "u-4"]);
}

#[test]
fn entra_user_updates_by_path() {
    let u = patch(
        &ana(),
        json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ana.lima@x.test"},
            {"op": "Replace", "path": "name.givenName", "value": "Ana Maria"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": "m-1"}},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
            {"op": "Replace", "path": "userName", "value": "ana.lima@x.test"},
            {"op": "Remove", "path": "title"}
        ]),
    )
    .unwrap();
    assert_eq!(u.preferred_email(), Some("ana.lima@x.test"));
    assert_eq!(u.user_name(), "ana.lima@x.test");
    assert_eq!(u.json()["name"]["givenName"], "Ana Maria");
    assert_eq!(u.json()["name"]["familyName"], "Lima");
    let ext = &u.json()[URN_ENTERPRISE_USER];
    assert_eq!(ext["manager"]["value"], "m-1");
    assert_eq!(ext["department"], "R&D");
    assert!(u.json().get("title").is_none());
    // Removing the extension's last attribute drops the extension.
    let u2 = patch(
        &ScimUser { attrs: u, ..ana() },
        json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}]),
    )
    .unwrap();
    assert!(u2.json().get(URN_ENTERPRISE_USER).is_none());
}

#[test]
fn entra_sets_a_work_email_on_a_user_without_one() {
    let bare = user(json!({"userName": "bo@x.test"}));
    let u = patch(
        &bare,
        json!([
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "bo@x.test"},
            {"op": "Add", "path": "emails[type eq \"work\"].primary", "value": "True"}
        ]),
    )
    .unwrap();
    assert_eq!(
        u.json()["emails"],
        json!([{"type": "work", "value": "bo@x.test", "primary": true}])
    );
    assert_eq!(u.preferred_email(), Some("bo@x.test"));
}

#[test]
fn entra_path_less_values_whose_keys_are_paths() {
    let u = patch(
        &ana(),
        json!([{"op": "Replace", "value": {
            "name.familyName": "Souza",
            "emails[type eq \"work\"].value": "ana@souza.test",
            "displayName": "Ana Souza",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42"
        }}]),
    )
    .unwrap();
    assert_eq!(u.json()["name"]["familyName"], "Souza");
    assert_eq!(u.json()["name"]["givenName"], "Ana");
    assert_eq!(u.preferred_email(), Some("ana@souza.test"));
    assert_eq!(u.display_name(), Some("Ana Souza"));
    assert_eq!(u.json()[URN_ENTERPRISE_USER]["employeeNumber"], "42");
}

// ---- PingFederate / generic ------------------------------------------------------------------

#[test]
fn ping_replaces_whole_attributes_and_adds_values() {
    let u = patch(
        &ana(),
        json!([
            {"op": "replace", "path": "emails", "value": [{"value": "a2@x.test", "primary": true}]},
            {"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 555", "type": "work"}]},
            {"op": "add", "path": "phoneNumbers", "value": {"value": "+1 556", "type": "home"}},
            {"op": "replace", "path": "name", "value": {"familyName": "L."}},
        ]),
    )
    .unwrap();
    assert_eq!(u.preferred_email(), Some("a2@x.test"));
    assert_eq!(u.json()["phoneNumbers"].as_array().unwrap().len(), 2);
    assert_eq!(
        u.json()["name"],
        json!({"givenName": "Ana", "familyName": "L."})
    );
    // Remove values from a multi-valued attribute by filter.
    let u = patch(
        &ScimUser { attrs: u, ..ana() },
        json!([{"op": "remove", "path": "phoneNumbers[type eq \"home\"]"}]),
    )
    .unwrap();
    assert_eq!(
        u.json()["phoneNumbers"],
        json!([{"value": "+1 555", "type": "work"}])
    );
}

#[test]
fn remove_all_members_then_add_is_the_added_set() {
    let p = group_patch(json!([
        {"op": "remove", "path": "members"},
        {"op": "add", "path": "members", "value": [{"value": "u-5"}]}
    ]))
    .unwrap();
    assert_eq!(p.members, MemberChange::Replace(ids(&["u-5"])));
    let p = group_patch(json!([
        {"op": "add", "path": "members", "value": [{"value": "u-5"}]},
        {"op": "remove", "path": "members", "value": [{"value": "u-5"}]}
    ]))
    .unwrap();
    assert_eq!(applied(&p.members, &["u-1"]), ["u-1"]);
}

#[test]
fn group_renames_by_path_and_keeps_other_attributes() {
    let p = group_patch(json!([
        {"op": "Replace", "path": "displayName", "value": "Sales EMEA"},
        {"op": "Add", "path": "externalId", "value": "ext-1"}
    ]))
    .unwrap();
    let attrs = patch_group_attrs(&group(&["u-1"]), &p.ops).unwrap();
    assert_eq!(attrs.display_name(), "Sales EMEA");
    assert_eq!(attrs.external_id(), Some("ext-1"));
}

// ---- errors ----------------------------------------------------------------------------------

#[test]
fn errors_name_what_is_wrong() {
    let e = parse_patch(
        &json!({"Operations": [{"op": "move", "path": "x"}]}),
        ResourceKind::User,
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    assert!(e.detail.contains("move"));
    let e = parse_patch(&json!({"schemas": [URN_PATCH]}), ResourceKind::User).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    let e = parse_patch(&json!("x"), ResourceKind::User).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    let e = parse_patch(
        &json!({"Operations": [{"op": "remove"}]}),
        ResourceKind::User,
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    let e = parse_patch(
        &json!({"Operations": [{"op": "add", "path": "emails[type eq", "value": "x"}]}),
        ResourceKind::User,
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    let e = parse_patch(
        &json!({"Operations": [{"op": "add", "path": "title"}]}),
        ResourceKind::User,
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    let e = parse_patch(
        &json!({"Operations": [{"op": "replace", "value": "x"}]}),
        ResourceKind::User,
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));

    let e = patch(
        &ana(),
        json!([{"op": "replace", "path": "id", "value": "other"}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::Mutability));
    let e = patch(&ana(), json!([{"op": "remove", "path": "userName"}])).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    assert!(e.detail.contains("userName"));
    let e = patch(
        &ana(),
        json!([{"op": "replace", "path": "emails[type eq \"home\" or primary eq false]", "value": {"value": "x"}}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    let e = patch(
        &ana(),
        json!([{"op": "add", "path": "groups", "value": [{"value": "g-1"}]}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::Mutability));

    let e = group_patch(
        json!([{"op": "add", "path": "members[value eq \"u-1\"]", "value": [{"value": "u-1"}]}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    let e =
        group_patch(json!([{"op": "remove", "path": "members[display eq \"ana\"]"}])).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    let e = group_patch(
        json!([{"op": "add", "path": "members", "value": [{"value": "g", "type": "Group"}]}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn a_patch_applies_all_its_operations_or_none() {
    let before = ana();
    let e = patch(
        &before,
        json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "active", "value": "perhaps"}
        ]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    // The input is untouched: the patch worked on a copy.
    assert_eq!(before.attrs.display_name(), Some("Ana Lima"));
}

#[test]
fn a_password_in_a_patch_is_accepted_and_never_kept() {
    let u = patch(
        &ana(),
        json!([{"op": "replace", "path": "password", "value": "s3cret"}]),
    )
    .unwrap();
    assert!(u.json().get("password").is_none());
    let u = patch(
        &ana(),
        json!([{"op": "replace", "value": {"password": "s3cret", "active": false}}]),
    )
    .unwrap();
    assert!(u.json().get("password").is_none());
    assert!(!u.active());
}

#[test]
fn patch_paths_parse_in_every_form() {
    let p = PatchPath::parse("members[value eq \"a]b\"]", ResourceKind::Group).unwrap();
    assert!(p.filter.is_some() && p.sub.is_none());
    let p = PatchPath::parse("emails[type eq \"work\"].value", ResourceKind::User).unwrap();
    assert_eq!(p.sub.as_deref(), Some("value"));
    assert!(PatchPath::parse("emails[type eq \"work\"]x", ResourceKind::User).is_err());
    assert!(PatchPath::parse("name.givenName[x eq 1]", ResourceKind::User).is_err());
    let _ = ops(ResourceKind::User, json!({"Operations": []}));
}

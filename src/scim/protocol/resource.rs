//! Users and groups: parsing a POST/PUT body (attribute names in any case, booleans as JSON
//! booleans or the strings "True"/"False"), the stored form, and the rendered JSON.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::schema::{self, AttrDef, Mutability, ResourceKind, Type, get_ci};

/// `meta` of a stored resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    /// The change sequence number of the resource's last write (see
    /// [`crate::scim::ScimRecord::change_seq`]).
    pub version: u64,
}

/// One email of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub value: String,
    pub kind: Option<String>,
    pub primary: bool,
}

/// A user's attributes as written by the IdP: everything but `id`, `meta`, `schemas`,
/// `password` (never kept) and `groups` (read-only), canonicalised; plus the fields the
/// service reads, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct UserAttrs {
    json: Map<String, Value>,
    user_name: String,
    external_id: Option<String>,
    active: bool,
    display_name: Option<String>,
    emails: Vec<Email>,
}

impl UserAttrs {
    /// A POST or PUT body. Read-only attributes in it (`id`, `meta`) are ignored.
    pub fn from_body(body: &Value) -> Result<UserAttrs, ScimError> {
        let obj = body.as_object().ok_or_else(|| {
            ScimError::invalid_syntax("the body must be a JSON object (a User resource)")
        })?;
        check_schemas(obj, ResourceKind::User)?;
        UserAttrs::from_json(canonical(ResourceKind::User, obj)?)
    }

    /// Canonical attributes (as stored, or after a PATCH), checked.
    pub fn from_json(json: Map<String, Value>) -> Result<UserAttrs, ScimError> {
        let user_name = match get_ci(&json, "userName") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) | None => {
                return Err(ScimError::invalid_value("userName is required"));
            }
            Some(_) => return Err(ScimError::invalid_value("userName must be a string")),
        };
        let active = match get_ci(&json, "active") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ScimError::invalid_value("active must be true or false")),
        };
        let mut emails = Vec::new();
        if let Some(v) = get_ci(&json, "emails") {
            let items = v
                .as_array()
                .ok_or_else(|| ScimError::invalid_value("emails must be an array"))?;
            for (i, item) in items.iter().enumerate() {
                let Some(o) = item.as_object() else {
                    return Err(ScimError::invalid_value(format!(
                        "emails[{i}] must be an object"
                    )));
                };
                let value = match get_ci(o, "value") {
                    Some(Value::String(s)) => s.clone(),
                    None => continue,
                    Some(_) => {
                        return Err(ScimError::invalid_value(format!(
                            "emails[{i}].value must be a string"
                        )));
                    }
                };
                emails.push(Email {
                    value,
                    kind: get_ci(o, "type").and_then(Value::as_str).map(str::to_owned),
                    primary: get_ci(o, "primary").and_then(Value::as_bool) == Some(true),
                });
            }
        }
        Ok(UserAttrs {
            user_name,
            external_id: string_attr(&json, "externalId")?,
            display_name: string_attr(&json, "displayName")?,
            active,
            emails,
            json,
        })
    }

    pub fn user_name(&self) -> &str {
        &self.user_name
    }

    /// The key `userName` is unique and looked up by: trimmed and lower-cased.
    pub fn user_name_key(&self) -> String {
        fold(&self.user_name)
    }

    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    pub fn active(&self) -> bool {
        self.active
    }

    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }

    pub fn emails(&self) -> &[Email] {
        &self.emails
    }

    /// The email the Q user id comes from by default: the primary one, else the first;
    /// trimmed, `None` when there is none (or it is blank).
    pub fn preferred_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.primary)
            .or_else(|| self.emails.first())
            .map(|e| e.value.trim())
            .filter(|v| !v.is_empty())
    }

    /// The attributes as stored.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    pub fn into_json(self) -> Map<String, Value> {
        self.json
    }
}

/// A group's attributes other than `members`: `displayName` (required), `externalId`, and any
/// other attribute the IdP sent, kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAttrs {
    json: Map<String, Value>,
    display_name: String,
    external_id: Option<String>,
}

impl GroupAttrs {
    /// A POST or PUT body: the attributes and the member ids.
    pub fn from_body(body: &Value) -> Result<(GroupAttrs, BTreeSet<String>), ScimError> {
        let obj = body.as_object().ok_or_else(|| {
            ScimError::invalid_syntax("the body must be a JSON object (a Group resource)")
        })?;
        check_schemas(obj, ResourceKind::Group)?;
        let mut obj = obj.clone();
        let members = match schema::key_ci(&obj, "members").and_then(|k| obj.remove(&k)) {
            Some(v) => member_ids(&v)?,
            None => BTreeSet::new(),
        };
        Ok((
            GroupAttrs::from_json(canonical(ResourceKind::Group, &obj)?)?,
            members,
        ))
    }

    /// Canonical attributes (as stored, or after a PATCH), checked.
    pub fn from_json(mut json: Map<String, Value>) -> Result<GroupAttrs, ScimError> {
        if let Some(k) = schema::key_ci(&json, "members") {
            json.remove(&k);
        }
        let display_name = match get_ci(&json, "displayName") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) | None => {
                return Err(ScimError::invalid_value("displayName is required"));
            }
            Some(_) => return Err(ScimError::invalid_value("displayName must be a string")),
        };
        Ok(GroupAttrs {
            external_id: string_attr(&json, "externalId")?,
            display_name,
            json,
        })
    }

    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// The key `displayName` is unique and looked up by: trimmed and lower-cased.
    pub fn display_name_key(&self) -> String {
        fold(&self.display_name)
    }

    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    pub fn into_json(self) -> Map<String, Value> {
        self.json
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUser {
    pub id: String,
    pub attrs: UserAttrs,
    pub meta: Meta,
}

/// A stored group. `members` is `None` when it was not read (a projection without it).
#[derive(Debug, Clone, PartialEq)]
pub struct ScimGroup {
    pub id: String,
    pub attrs: GroupAttrs,
    pub members: Option<BTreeSet<String>>,
    pub meta: Meta,
}

/// Trimmed and lower-cased: how `userName` and `displayName` are compared.
pub fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

/// A time as SCIM shows it (and the stores keep it): RFC 3339, milliseconds, `Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn meta_json(kind: ResourceKind, id: &str, meta: &Meta, base: &str) -> Value {
    json!({
        "resourceType": kind.as_str(),
        "created": timestamp(meta.created),
        "lastModified": timestamp(meta.last_modified),
        "location": location(base, kind, id),
        "version": format!("W/\"{}\"", meta.version),
    })
}

/// `{base}/Users/{id}` or `{base}/Groups/{id}`.
pub fn location(base: &str, kind: ResourceKind, id: &str) -> String {
    format!("{base}{}/{}", kind.endpoint(), id)
}

/// The schema URNs a resource shows: its core schema and the extensions it holds.
fn schemas(kind: ResourceKind, json: &Map<String, Value>) -> Value {
    let mut out = vec![Value::String(kind.core_urn().into())];
    out.extend(
        json.keys()
            .filter(|k| k.len() > 4 && k[..4].eq_ignore_ascii_case("urn:"))
            .map(|k| Value::String(k.clone())),
    );
    Value::Array(out)
}

impl ScimUser {
    /// The resource as returned: `schemas`, `id`, the attributes, `meta` (with `location`
    /// under `base`, e.g. `https://q.example.test/scim/v2`).
    pub fn render(&self, base: &str) -> Value {
        let json = self.attrs.json();
        let mut out = Map::new();
        out.insert("schemas".into(), schemas(ResourceKind::User, json));
        out.insert("id".into(), Value::String(self.id.clone()));
        out.extend(json.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.insert(
            "meta".into(),
            meta_json(ResourceKind::User, &self.id, &self.meta, base),
        );
        Value::Object(out)
    }
}

impl ScimGroup {
    /// The resource as returned; `members` only when they were read.
    pub fn render(&self, base: &str) -> Value {
        let json = self.attrs.json();
        let mut out = Map::new();
        out.insert("schemas".into(), schemas(ResourceKind::Group, json));
        out.insert("id".into(), Value::String(self.id.clone()));
        out.extend(json.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(members) = &self.members {
            out.insert(
                "members".into(),
                Value::Array(
                    members
                        .iter()
                        .map(|m| {
                            json!({
                                "value": m,
                                "$ref": location(base, ResourceKind::User, m),
                                "type": "User",
                            })
                        })
                        .collect(),
                ),
            );
        }
        out.insert(
            "meta".into(),
            meta_json(ResourceKind::Group, &self.id, &self.meta, base),
        );
        Value::Object(out)
    }
}

/// Member ids from a `members` value: an array of `{"value": id}` (other sub-attributes
/// ignored), or of plain id strings; a single object is one member. A member of type "Group"
/// is refused: groups cannot be nested here.
pub fn member_ids(v: &Value) -> Result<BTreeSet<String>, ScimError> {
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = BTreeSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let id = match item {
            Value::String(s) => s.clone(),
            Value::Object(o) => {
                if let Some(t) = get_ci(o, "type").and_then(Value::as_str)
                    && t.eq_ignore_ascii_case("Group")
                {
                    return Err(ScimError::invalid_value(format!(
                        "members[{i}] is a Group: groups cannot be members of groups here"
                    )));
                }
                match get_ci(o, "value") {
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        return Err(ScimError::invalid_value(format!(
                            "members[{i}].value must be a User id (a string)"
                        )));
                    }
                }
            }
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "members[{i}] must be an object with a value"
                )));
            }
        };
        let id = id.trim().to_owned();
        if id.is_empty() {
            return Err(ScimError::invalid_value(format!(
                "members[{i}].value is empty"
            )));
        }
        out.insert(id);
    }
    Ok(out)
}

fn string_attr(json: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    match get_ci(json, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

/// `schemas`, when present, must be an array of strings; which URNs it lists is not checked
/// (IdPs omit the enterprise URN, or send only the core one).
fn check_schemas(obj: &Map<String, Value>, kind: ResourceKind) -> Result<(), ScimError> {
    match get_ci(obj, "schemas") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(ScimError::invalid_syntax(format!(
            "schemas must be an array of URNs such as {:?}",
            kind.core_urn()
        ))),
    }
}

/// The attributes of a body in their canonical form: known names in their defined case,
/// booleans as booleans, nulls and empty values dropped, `schemas`/`id`/`meta` and read-only
/// or write-only attributes (`groups`, `password`) left out; unknown attributes kept as sent.
pub fn canonical(
    kind: ResourceKind,
    obj: &Map<String, Value>,
) -> Result<Map<String, Value>, ScimError> {
    let mut out = Map::new();
    merge_canonical(kind, obj, &mut out)?;
    Ok(out)
}

fn merge_canonical(
    kind: ResourceKind,
    obj: &Map<String, Value>,
    out: &mut Map<String, Value>,
) -> Result<(), ScimError> {
    for (k, v) in obj {
        if ["schemas", "id", "meta"]
            .iter()
            .any(|s| k.eq_ignore_ascii_case(s))
        {
            continue;
        }
        if k.eq_ignore_ascii_case(kind.core_urn()) {
            // The core attributes under their URN: the same as at the top.
            let inner = v.as_object().ok_or_else(|| {
                ScimError::invalid_value(format!("{k} must be an object of attributes"))
            })?;
            merge_canonical(kind, inner, out)?;
            continue;
        }
        if let Some((urn, attrs)) = kind.extension(k) {
            let inner = match v {
                Value::Null => continue,
                Value::Object(o) => o,
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "{urn} must be an object of attributes"
                    )));
                }
            };
            let mut ext = match out.remove(urn) {
                Some(Value::Object(o)) => o,
                _ => Map::new(),
            };
            for (ik, iv) in inner {
                match schema::find(attrs, ik) {
                    Some(def) => {
                        if let Some(v) =
                            canonical_value(def, iv.clone(), &format!("{urn}:{}", def.name))?
                        {
                            ext.insert(def.name.into(), v);
                        } else {
                            ext.remove(def.name);
                        }
                    }
                    None if iv.is_null() => {}
                    None => {
                        ext.insert(ik.clone(), iv.clone());
                    }
                }
            }
            if !ext.is_empty() {
                out.insert(urn.into(), Value::Object(ext));
            }
            continue;
        }
        match kind.attr(None, k) {
            Some(def) if matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly) => {
            }
            Some(def) => {
                if let Some(v) = canonical_value(def, v.clone(), def.name)? {
                    out.insert(def.name.into(), v);
                }
            }
            None if v.is_null() => {}
            None => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

/// A value of attribute `def` in canonical form; `None` when it is unassigned (null, an empty
/// array or object). `name` names the attribute in errors.
pub fn canonical_value(def: &AttrDef, v: Value, name: &str) -> Result<Option<Value>, ScimError> {
    if v.is_null() {
        return Ok(None);
    }
    if def.multi {
        let items = match v {
            Value::Array(items) => items,
            single => vec![single],
        };
        let one = AttrDef {
            multi: false,
            ..*def
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            if let Some(v) = canonical_value(&one, item, &format!("{name}[{i}]"))? {
                out.push(v);
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    match def.kind {
        Type::Complex => {
            let Value::Object(o) = v else {
                return Err(ScimError::invalid_value(format!(
                    "{name} must be an object"
                )));
            };
            let mut out = Map::new();
            for (k, sv) in o {
                match schema::find(def.sub, &k) {
                    Some(sub) => {
                        if let Some(sv) = canonical_value(sub, sv, &format!("{name}.{}", sub.name))?
                        {
                            out.insert(sub.name.into(), sv);
                        }
                    }
                    None if sv.is_null() => {}
                    None => {
                        out.insert(k, sv);
                    }
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        Type::Boolean => match v {
            Value::Bool(b) => Ok(Some(Value::Bool(b))),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => {
                Ok(Some(Value::Bool(true)))
            }
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => {
                Ok(Some(Value::Bool(false)))
            }
            _ => Err(ScimError::invalid_value(format!(
                "{name} must be true or false"
            ))),
        },
        _ => match v {
            Value::Object(_) | Value::Array(_) => Err(ScimError::invalid_value(format!(
                "{name} must be a single value, not an object or array"
            ))),
            scalar => Ok(Some(scalar)),
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::scim::protocol::ScimType;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_780_000_000 + s, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn an_okta_user_keeps_what_was_sent_and_drops_the_password() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ana@example.test",
            "name": {"givenName": "Ana", "familyName": "Lima"},
            "emails": [{"primary": true, "value": "ana@example.test", "type": "work"}],
            "displayName": "Ana Lima",
            "locale": "en-US",
            "externalId": "00u1",
            "groups": [],
            "password": "N3verSt0red!",
            "active": true
        });
        let u = UserAttrs::from_body(&body).expect("valid");
        assert_eq!(u.user_name(), "ana@example.test");
        assert!(u.active());
        assert_eq!(u.preferred_email(), Some("ana@example.test"));
        assert_eq!(u.external_id(), Some("00u1"));
        assert!(u.json().get("password").is_none());
        assert!(u.json().get("groups").is_none());
        let user = ScimUser {
            id: "u-1".into(),
            attrs: u,
            meta: Meta {
                created: at(0),
                last_modified: at(1),
                version: 7,
            },
        };
        let out = user.render("https://q.example.test/scim/v2");
        assert_eq!(out["id"], "u-1");
        assert_eq!(out["name"]["givenName"], "Ana");
        assert_eq!(out["locale"], "en-US");
        assert_eq!(
            out["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
        );
        assert_eq!(out["meta"]["resourceType"], "User");
        assert_eq!(
            out["meta"]["location"],
            "https://q.example.test/scim/v2/Users/u-1"
        );
        assert_eq!(out["meta"]["created"], "2026-05-28T20:26:40.000Z");
        assert_eq!(out["meta"]["version"], "W/\"7\"");
        assert!(out.get("password").is_none());
    }

    #[test]
    fn an_entra_user_with_string_booleans_and_the_enterprise_extension() {
        let body = json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "UserName": "Test_User_ab6490ee@contoso.test",
            "Active": "False",
            "emails": [
                {"Primary": "True", "type": "work", "value": "Test_User_fd0ea19b@contoso.test"},
                {"primary": "false", "type": "home", "value": "home@contoso.test"}
            ],
            "meta": {"resourceType": "User"},
            "name": {"familyName": "familyName", "givenName": "givenName"},
            "title": "Engineer",
            "urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User": {
                "Department": "R&D",
                "manager": {"value": "m-1"},
                "employeeNumber": null
            }
        });
        let u = UserAttrs::from_body(&body).expect("valid");
        assert_eq!(u.user_name(), "Test_User_ab6490ee@contoso.test");
        assert_eq!(u.user_name_key(), "test_user_ab6490ee@contoso.test");
        assert!(!u.active());
        assert_eq!(u.preferred_email(), Some("Test_User_fd0ea19b@contoso.test"));
        assert_eq!(u.json()["emails"][1]["primary"], json!(false));
        let ext = &u.json()["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(ext["department"], "R&D");
        assert!(ext.get("employeeNumber").is_none());
        assert!(u.json().get("meta").is_none());
    }

    #[test]
    fn a_ping_user_without_emails_uses_no_email() {
        let u = UserAttrs::from_body(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bo",
            "emails": [],
        }))
        .expect("valid");
        assert_eq!(u.preferred_email(), None);
        assert!(u.json().get("emails").is_none());
        // The first email when none is primary.
        let u = UserAttrs::from_body(&json!({
            "userName": "cy",
            "emails": [{"value": " cy@x.test "}, {"value": "c2@x.test"}],
        }))
        .expect("valid");
        assert_eq!(u.preferred_email(), Some("cy@x.test"));
    }

    #[test]
    fn bad_user_bodies_say_which_attribute() {
        let err = |v: Value| UserAttrs::from_body(&v).expect_err("invalid");
        let e = err(json!(["not", "an", "object"]));
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        let e = err(json!({"name": {"givenName": "x"}}));
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.contains("userName"), "{}", e.detail);
        let e = err(json!({"userName": "a", "active": "maybe"}));
        assert!(e.detail.contains("active"), "{}", e.detail);
        let e = err(json!({"userName": "a", "emails": [{"value": "a", "primary": "yes"}]}));
        assert!(e.detail.contains("emails[0].primary"), "{}", e.detail);
        let e = err(json!({"userName": 5}));
        assert!(e.detail.contains("userName"), "{}", e.detail);
        let e = err(json!({"userName": "a", "schemas": "urn:x"}));
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        let e = err(json!({"userName": "a", "name": "Ana"}));
        assert!(e.detail.contains("name"), "{}", e.detail);
    }

    #[test]
    fn groups_from_okta_entra_and_ping() {
        // Okta: members with display.
        let (g, m) = GroupAttrs::from_body(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
            "members": [{"value": "u-1", "display": "ana@x.test"}, {"value": "u-2"}]
        }))
        .expect("valid");
        assert_eq!(g.display_name(), "Engineering");
        assert_eq!(g.display_name_key(), "engineering");
        assert_eq!(m.into_iter().collect::<Vec<_>>(), ["u-1", "u-2"]);
        assert!(g.json().get("members").is_none());
        // Entra: no members at creation, an externalId.
        let (g, m) = GroupAttrs::from_body(&json!({
            "externalId": "8aa1a0c0",
            "DisplayName": "Sales",
            "meta": {"resourceType": "Group"},
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]
        }))
        .expect("valid");
        assert_eq!(g.external_id(), Some("8aa1a0c0"));
        assert!(m.is_empty());
        let e = GroupAttrs::from_body(&json!({"displayName": " "})).expect_err("blank");
        assert!(e.detail.contains("displayName"));
        let e = GroupAttrs::from_body(&json!({
            "displayName": "x", "members": [{"value": "g-2", "type": "Group"}]
        }))
        .expect_err("nested");
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = GroupAttrs::from_body(&json!({"displayName": "x", "members": [{"display": "a"}]}))
            .expect_err("no value");
        assert!(e.detail.contains("members[0].value"), "{}", e.detail);
    }

    #[test]
    fn a_group_renders_members_only_when_read() {
        let (attrs, members) =
            GroupAttrs::from_body(&json!({"displayName": "Eng", "members": ["u-1"]}))
                .expect("valid");
        let meta = Meta {
            created: at(0),
            last_modified: at(0),
            version: 1,
        };
        let mut g = ScimGroup {
            id: "g-1".into(),
            attrs,
            members: Some(members),
            meta,
        };
        let out = g.render("http://h/scim/v2");
        assert_eq!(
            out["members"],
            json!([{"value": "u-1", "$ref": "http://h/scim/v2/Users/u-1", "type": "User"}])
        );
        g.members = None;
        assert!(g.render("http://h/scim/v2").get("members").is_none());
    }
}

//! Okta's JSON, read as it streams: groups and members are parsed straight into the few fields
//! the sync needs ([`OktaGroup`], [`OktaMember`]); everything else is skipped, nothing is kept.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::model::OktaGroupId;
use crate::source::{GroupType, OktaGroup, OktaMember, OktaUser};

/// A group as Okta sends it; unknown fields (`_links`, `objectClass`, …) are skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireGroup {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "rfc3339")]
    last_membership_updated: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "rfc3339")]
    last_updated: Option<DateTime<Utc>>,
    profile: WireGroupProfile,
}

#[derive(Deserialize)]
struct WireGroupProfile {
    name: String,
}

fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| de::Error::custom(format!("date {s:?} is not RFC 3339: {e}"))),
    }
}

/// One page of `GET /api/v1/groups`.
pub(super) fn parse_groups(body: &[u8]) -> Result<Vec<OktaGroup>, serde_json::Error> {
    let wire: Vec<WireGroup> = serde_json::from_slice(body)?;
    Ok(wire
        .into_iter()
        .map(|g| OktaGroup {
            id: g.id,
            name: g.profile.name,
            kind: GroupType::parse(&g.kind),
            last_membership_updated: g.last_membership_updated,
            last_updated: g.last_updated,
        })
        .collect())
}

/// One page of `GET /api/v1/groups/{id}/users`, keeping only `id`, `status` and
/// `profile.<attr>` of each user.
pub(super) fn parse_members(body: &[u8], attr: &str) -> Result<Vec<OktaMember>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let members = MembersSeed { attr }.deserialize(&mut de)?;
    de.end()?;
    Ok(members)
}

/// A user of the users check, with its `lastUpdated`.
pub(super) type UpdatedUser = (OktaMember, Option<DateTime<Utc>>);

/// One page of `GET /api/v1/users` for the users check: each user as [`parse_members`] reads
/// it, with its `lastUpdated` (a date that is not RFC 3339 is an error, as for groups).
pub(super) fn parse_updated_users(
    body: &[u8],
    attr: &str,
) -> Result<Vec<UpdatedUser>, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Stamp {
        #[serde(default, deserialize_with = "rfc3339")]
        last_updated: Option<DateTime<Utc>>,
    }
    let members = parse_members(body, attr)?;
    let stamps: Vec<Stamp> = serde_json::from_slice(body)?;
    Ok(members
        .into_iter()
        .zip(stamps.into_iter().map(|s| s.last_updated))
        .collect())
}

/// One user object (`GET /api/v1/users/{id}`), for `explain`: `id`, `status`, `profile.login`,
/// `profile.email` and `profile.<attr>`.
pub(super) fn parse_user(body: &[u8], attr: &str) -> Result<OktaUser, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let member = MemberSeed { attr }.deserialize(&mut de)?;
    de.end()?;
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        profile: serde_json::Map<String, serde_json::Value>,
    }
    let wire: Wire = serde_json::from_slice(body)?;
    let text = |key: &str| {
        wire.profile
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(OktaUser {
        id: member.id,
        status: member.status,
        login: text("login"),
        email: text("email"),
        attribute: member.attribute,
    })
}

/// A page of `GET /api/v1/users` as full [`OktaUser`]s (a search finds a handful).
pub(super) fn parse_users(body: &[u8], attr: &str) -> Result<Vec<OktaUser>, serde_json::Error> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(body)?;
    items
        .iter()
        .map(|item| parse_user(&serde_json::to_vec(item)?, attr))
        .collect()
}

/// Seed for a JSON array of users.
#[derive(Clone, Copy)]
struct MembersSeed<'a> {
    attr: &'a str,
}

impl<'de> DeserializeSeed<'de> for MembersSeed<'_> {
    type Value = Vec<OktaMember>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed<'_> {
    type Value = Vec<OktaMember>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of Okta users")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1000));
        while let Some(member) = seq.next_element_seed(MemberSeed { attr: self.attr })? {
            members.push(member);
        }
        Ok(members)
    }
}

/// Seed for one user object.
#[derive(Clone, Copy)]
struct MemberSeed<'a> {
    attr: &'a str,
}

impl<'de> DeserializeSeed<'de> for MemberSeed<'_> {
    type Value = OktaMember;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed<'_> {
    type Value = OktaMember;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Okta user object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut id, mut status, mut attribute) = (None, None, None);
        while let Some(field) = map.next_key::<UserField>()? {
            match field {
                UserField::Id if id.is_some() => return Err(de::Error::duplicate_field("id")),
                UserField::Id => id = Some(map.next_value::<String>()?),
                UserField::Status if status.is_some() => {
                    return Err(de::Error::duplicate_field("status"));
                }
                UserField::Status => status = Some(map.next_value::<String>()?),
                UserField::Profile if attribute.is_some() => {
                    return Err(de::Error::duplicate_field("profile"));
                }
                UserField::Profile => {
                    attribute = Some(map.next_value_seed(ProfileSeed { attr: self.attr })?)
                }
                UserField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OktaMember {
            id: id.ok_or_else(|| de::Error::missing_field("id"))?,
            status: status.ok_or_else(|| de::Error::missing_field("status"))?,
            attribute: attribute.flatten(),
        })
    }
}

/// The user fields the sync reads; everything else is skipped.
enum UserField {
    Id,
    Status,
    Profile,
    Other,
}

impl<'de> Deserialize<'de> for UserField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = UserField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UserField, E> {
                Ok(match v {
                    "id" => UserField::Id,
                    "status" => UserField::Status,
                    "profile" => UserField::Profile,
                    _ => UserField::Other,
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

/// Seed for `profile`: yields `profile.<attr>` if it is a non-empty string.
#[derive(Clone, Copy)]
struct ProfileSeed<'a> {
    attr: &'a str,
}

impl<'de> DeserializeSeed<'de> for ProfileSeed<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ProfileSeed<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user profile object or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value: Option<Option<String>> = None;
        while let Some(is_attr) = map.next_key_seed(KeyIs(self.attr))? {
            if !is_attr {
                map.next_value::<IgnoredAny>()?;
            } else if value.is_some() {
                return Err(de::Error::custom(format!(
                    "duplicate field `{}` in profile",
                    self.attr
                )));
            } else {
                value = Some(map.next_value::<AttrValue>()?.0);
            }
        }
        Ok(value.flatten())
    }
}

/// Seed for a map key: true when it equals the wanted attribute name.
struct KeyIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a profile attribute name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// A profile attribute value: `Some` for a non-empty string; `None` for null, empty, numbers,
/// booleans, arrays and objects (skipped without being kept).
struct AttrValue(Option<String>);

impl<'de> Deserialize<'de> for AttrValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AttrVisitor;
        impl<'de> Visitor<'de> for AttrVisitor {
            type Value = AttrValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AttrValue, E> {
                Ok(AttrValue((!v.is_empty()).then(|| v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<AttrValue, E> {
                Ok(AttrValue((!v.is_empty()).then_some(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<AttrValue, D::Error> {
                AttrValue::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<AttrValue, E> {
                Ok(AttrValue(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AttrValue, A::Error> {
                IgnoredAny.visit_seq(seq)?;
                Ok(AttrValue(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AttrValue, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(AttrValue(None))
            }
        }
        d.deserialize_any(AttrVisitor)
    }
}

#[derive(Deserialize)]
struct WireGroupId {
    id: String,
}

/// One page of `GET /api/v1/users/{id}/groups`: the group ids.
pub(super) fn parse_group_ids(body: &[u8]) -> Result<Vec<OktaGroupId>, serde_json::Error> {
    let wire: Vec<WireGroupId> = serde_json::from_slice(body)?;
    Ok(wire.into_iter().map(|g| OktaGroupId::new(g.id)).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn member_attribute_is_a_non_empty_string_or_none() {
        let body = br#"[
            {"id":"u1","status":"ACTIVE","profile":{"email":"a@x.test","extra":{"deep":[1,2,{"email":"no"}]}}},
            {"id":"u2","status":"DEPROVISIONED","profile":{"email":null}},
            {"id":"u3","status":"ACTIVE","profile":{"login":"c"}},
            {"id":"u4","status":"ACTIVE","profile":{"email":42}},
            {"id":"u5","status":"ACTIVE","profile":{"email":["a@x.test"]}},
            {"id":"u6","status":"ACTIVE","profile":{"email":{"v":"a@x.test"}}},
            {"id":"u7","status":"ACTIVE","profile":{"email":""}},
            {"id":"u8","status":"SOMETHING_NEW","profile":null},
            {"status":"ACTIVE","id":"u9","_links":{"self":{"href":"x"}},"email":"top-level is not profile"},
            {"id":"u10","status":"ACTIVE","profile":{"email":"esc\u0061ped@x.test"}}
        ]"#;
        let members = parse_members(body, "email").unwrap();
        let got: Vec<_> = members
            .iter()
            .map(|m| (m.id.as_str(), m.status.as_str(), m.attribute.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("u1", "ACTIVE", Some("a@x.test")),
                ("u2", "DEPROVISIONED", None),
                ("u3", "ACTIVE", None),
                ("u4", "ACTIVE", None),
                ("u5", "ACTIVE", None),
                ("u6", "ACTIVE", None),
                ("u7", "ACTIVE", None),
                ("u8", "SOMETHING_NEW", None),
                ("u9", "ACTIVE", None),
                ("u10", "ACTIVE", Some("escaped@x.test")),
            ]
        );
    }

    #[test]
    fn broken_member_bodies_are_errors() {
        for (body, needle) in [
            (&br#"[{"id":"u1","status":"ACTIVE","profile":{"email":"a@x.test"}},{"id":"u2","sta"#[..], "EOF"),
            (br#"{"not": "an array"}"#, "invalid type"),
            (br#"[{"status":"ACTIVE"}]"#, "missing field `id`"),
            (br#"[{"id":"u1"}]"#, "missing field `status`"),
            (br#"[{"id":"u1","id":"u2","status":"ACTIVE"}]"#, "duplicate field"),
            (br#"[{"id":"u1","status":"ACTIVE","profile":{"email":"a","email":"b"}}]"#, "duplicate field"),
            (br#"[{"id":"u1","status":"ACTIVE","profile":"x"}]"#, "invalid type"),
            (br#"[] trailing"#, "trailing characters"),
        ] {
            let err = parse_members(body, "email").unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn broken_group_bodies_are_errors() {
        let ok = r#"{"id":"g1","type":"APP_GROUP","profile":{"name":"n","description":null,"windowsDomainQualifiedName":"x"},"lastMembershipUpdated":null}"#;
        let groups = parse_groups(format!("[{ok}]").as_bytes()).unwrap();
        assert_eq!(groups[0].kind, GroupType::App);
        assert_eq!(groups[0].last_membership_updated, None);
        assert_eq!(groups[0].last_updated, None);
        let odd = ok.replace("APP_GROUP", "FUTURE_GROUP");
        assert_eq!(
            parse_groups(format!("[{odd}]").as_bytes()).unwrap()[0].kind,
            GroupType::Other("FUTURE_GROUP".into())
        );
        for body in [
            r#"[{"id":"g1","type":"OKTA_GROUP","profile":{}}]"#.to_owned(),
            r#"[{"id":"g1","type":"OKTA_GROUP","profile":{"name":"n"},"lastUpdated":"yesterday"}]"#
                .to_owned(),
            format!("[{ok}")[..20].to_owned(),
        ] {
            assert!(parse_groups(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn group_ids_parse() {
        let got = parse_group_ids(br#"[{"id":"00g1","profile":{"name":"x"}},{"id":"00g2"}]"#);
        assert_eq!(
            got.unwrap(),
            vec![OktaGroupId::new("00g1"), OktaGroupId::new("00g2")]
        );
        assert!(parse_group_ids(br#"[{"name":"x"}]"#).is_err());
    }
}

//! The attributes q-group-sync knows (RFC 7643 §4 and §8.7): one table that both canonicalises
//! what IdPs send (attribute names in their defined case, booleans from strings) and renders
//! `/Schemas`. Attributes outside it are kept as sent.

use serde_json::{Map, Value, json};

use super::{URN_ENTERPRISE_USER, URN_GROUP, URN_USER};

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    Complex,
    Reference,
    DateTime,
    Binary,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Boolean => "boolean",
            Type::Complex => "complex",
            Type::Reference => "reference",
            Type::DateTime => "dateTime",
            Type::Binary => "binary",
        }
    }
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// One attribute definition.
#[derive(Debug, Clone, Copy)]
pub struct AttrDef {
    pub name: &'static str,
    pub kind: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    /// `server` uniqueness (else `none`).
    pub unique: bool,
    pub description: &'static str,
    pub sub: &'static [AttrDef],
    pub reference_types: &'static [&'static str],
}

const STRING: AttrDef = AttrDef {
    name: "",
    kind: Type::String,
    multi: false,
    required: false,
    case_exact: false,
    mutability: Mutability::ReadWrite,
    unique: false,
    description: "",
    sub: &[],
    reference_types: &[],
};

const fn string(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        description,
        ..STRING
    }
}

const fn boolean(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        description,
        kind: Type::Boolean,
        ..STRING
    }
}

const fn complex(
    name: &'static str,
    description: &'static str,
    sub: &'static [AttrDef],
) -> AttrDef {
    AttrDef {
        name,
        description,
        kind: Type::Complex,
        sub,
        ..STRING
    }
}

const fn multi(def: AttrDef) -> AttrDef {
    AttrDef { multi: true, ..def }
}

/// The sub-attributes most multi-valued attributes share (RFC 7643 §2.4).
const PLURAL: &[AttrDef] = &[
    string("value", "The attribute's value."),
    string("display", "A human-readable name."),
    string("type", "A label such as \"work\" or \"home\"."),
    boolean("primary", "Whether this is the preferred value."),
];

const NAME: &[AttrDef] = &[
    string("formatted", "The full name."),
    string("familyName", "The family name."),
    string("givenName", "The given name."),
    string("middleName", "The middle name."),
    string("honorificPrefix", "Prefix, e.g. \"Ms.\"."),
    string("honorificSuffix", "Suffix, e.g. \"III\"."),
];

const ADDRESS: &[AttrDef] = &[
    string("formatted", "The full mailing address."),
    string("streetAddress", "Street."),
    string("locality", "City or locality."),
    string("region", "State or region."),
    string("postalCode", "Postal code."),
    string("country", "Country (ISO 3166-1 alpha-2)."),
    string("type", "A label such as \"work\"."),
    boolean("primary", "Whether this is the preferred address."),
];

/// `urn:ietf:params:scim:schemas:core:2.0:User` (RFC 7643 §4.1).
pub const USER_ATTRS: &[AttrDef] = &[
    AttrDef {
        required: true,
        unique: true,
        ..string(
            "userName",
            "Unique identifier for the user, compared case-insensitively.",
        )
    },
    complex("name", "The components of the user's name.", NAME),
    string("displayName", "The name of the user, for display."),
    string("nickName", "The casual name of the user."),
    AttrDef {
        kind: Type::Reference,
        reference_types: &["external"],
        ..string("profileUrl", "A URI of the user's online profile.")
    },
    string("title", "The user's title."),
    string("userType", "The relationship to the organization."),
    string("preferredLanguage", "The preferred language."),
    string("locale", "The default location, for localization."),
    string("timezone", "The time zone (IANA)."),
    boolean(
        "active",
        "Whether the user is active: an inactive user is in no Q Business group.",
    ),
    AttrDef {
        mutability: Mutability::WriteOnly,
        ..string("password", "Never stored or returned by q-group-sync.")
    },
    multi(complex(
        "emails",
        "Email addresses; the primary one (else the first) is the Q Business user id by default.",
        PLURAL,
    )),
    multi(complex("phoneNumbers", "Phone numbers.", PLURAL)),
    multi(complex("ims", "Instant messaging addresses.", PLURAL)),
    multi(complex("photos", "URLs of photos.", PLURAL)),
    multi(complex("addresses", "Physical mailing addresses.", ADDRESS)),
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..multi(complex(
            "groups",
            "Not returned: group membership is written through /Groups.",
            PLURAL,
        ))
    },
    multi(complex("entitlements", "Entitlements.", PLURAL)),
    multi(complex("roles", "Roles.", PLURAL)),
    multi(complex("x509Certificates", "Certificates.", PLURAL)),
];

const MANAGER: &[AttrDef] = &[
    string("value", "The id of the manager's User."),
    AttrDef {
        kind: Type::Reference,
        reference_types: &["User"],
        ..string("$ref", "The URI of the manager's User.")
    },
    string("displayName", "The manager's name."),
];

/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User` (RFC 7643 §4.3).
pub const ENTERPRISE_ATTRS: &[AttrDef] = &[
    string("employeeNumber", "Employee number."),
    string("costCenter", "Cost center."),
    string("organization", "Organization."),
    string("division", "Division."),
    string("department", "Department."),
    complex("manager", "The user's manager.", MANAGER),
];

const MEMBER: &[AttrDef] = &[
    AttrDef {
        case_exact: true,
        mutability: Mutability::Immutable,
        ..string("value", "The id of a User.")
    },
    AttrDef {
        kind: Type::Reference,
        reference_types: &["User"],
        mutability: Mutability::Immutable,
        ..string("$ref", "The URI of the User.")
    },
    AttrDef {
        mutability: Mutability::Immutable,
        ..string("type", "\"User\" (groups cannot be members).")
    },
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..string("display", "Not kept.")
    },
];

/// `urn:ietf:params:scim:schemas:core:2.0:Group` (RFC 7643 §4.2).
pub const GROUP_ATTRS: &[AttrDef] = &[
    AttrDef {
        required: true,
        unique: true,
        ..string(
            "displayName",
            "The group's name, and the Q Business group name (through the groups.* rules); unique, compared case-insensitively.",
        )
    },
    multi(complex("members", "The Users in the group.", MEMBER)),
];

/// The `externalId` common attribute (RFC 7643 §3.1).
pub const EXTERNAL_ID: AttrDef = AttrDef {
    case_exact: true,
    ..string("externalId", "The IdP's identifier of the resource.")
};

/// A resource type served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    /// `meta.resourceType` and the `/ResourceTypes` id.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }

    /// The endpoint, relative to the base URL.
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "/Users",
            ResourceKind::Group => "/Groups",
        }
    }

    pub fn core_urn(self) -> &'static str {
        match self {
            ResourceKind::User => URN_USER,
            ResourceKind::Group => URN_GROUP,
        }
    }

    pub fn core_attrs(self) -> &'static [AttrDef] {
        match self {
            ResourceKind::User => USER_ATTRS,
            ResourceKind::Group => GROUP_ATTRS,
        }
    }

    /// Schema extensions of this type: (URN, attributes).
    pub fn extensions(self) -> &'static [(&'static str, &'static [AttrDef])] {
        match self {
            ResourceKind::User => &[(URN_ENTERPRISE_USER, ENTERPRISE_ATTRS)],
            ResourceKind::Group => &[],
        }
    }

    /// The canonical spelling of a known extension URN, matched case-insensitively.
    pub fn extension(self, urn: &str) -> Option<(&'static str, &'static [AttrDef])> {
        self.extensions()
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(urn))
            .copied()
    }

    /// The attribute `name` of the core schema or of extension `urn`, case-insensitively.
    pub fn attr(self, urn: Option<&str>, name: &str) -> Option<&'static AttrDef> {
        if urn.is_none() && name.eq_ignore_ascii_case(EXTERNAL_ID.name) {
            return Some(&EXTERNAL_ID);
        }
        let attrs = match urn {
            None => self.core_attrs(),
            Some(u) if u.eq_ignore_ascii_case(self.core_urn()) => self.core_attrs(),
            Some(u) => self.extension(u)?.1,
        };
        find(attrs, name)
    }
}

/// The definition of `name` among `attrs`, case-insensitively.
pub fn find<'a>(attrs: &'a [AttrDef], name: &str) -> Option<&'a AttrDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Whether string comparisons of an attribute are case-exact: `id`, `externalId`, member
/// values and references are; everything else (including unknown attributes) is not.
pub fn case_exact(def: Option<&AttrDef>, name: &str) -> bool {
    match def {
        Some(d) => d.case_exact || d.kind == Type::Reference,
        None => name.eq_ignore_ascii_case("id") || name == "$ref",
    }
}

fn render_attr(a: &AttrDef) -> Value {
    let mut o = json!({
        "name": a.name,
        "type": a.kind.as_str(),
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "mutability": match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        },
        "returned": if a.mutability == Mutability::WriteOnly { "never" } else { "default" },
        "uniqueness": if a.unique { "server" } else { "none" },
    });
    if let Some(obj) = o.as_object_mut() {
        if matches!(a.kind, Type::String | Type::Reference | Type::Binary) {
            obj.insert("caseExact".into(), Value::Bool(case_exact(Some(a), a.name)));
        }
        if !a.sub.is_empty() {
            obj.insert(
                "subAttributes".into(),
                Value::Array(a.sub.iter().map(render_attr).collect()),
            );
        }
        if !a.reference_types.is_empty() {
            obj.insert("referenceTypes".into(), json!(a.reference_types));
        }
    }
    o
}

/// One `/Schemas` entry.
pub fn render_schema(
    id: &str,
    name: &str,
    description: &str,
    attrs: &[AttrDef],
    base: &str,
) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(render_attr).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{id}"),
        },
    })
}

/// The attributes of a `Map` looked up case-insensitively: the exact key first.
pub fn get_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The key under which `name` is stored in `obj`, case-insensitively.
pub fn key_ci(obj: &Map<String, Value>, name: &str) -> Option<String> {
    if obj.contains_key(name) {
        return Some(name.to_owned());
    }
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

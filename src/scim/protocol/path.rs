//! Attribute paths (RFC 7644 §3.10): `userName`, `name.givenName`, and the same with a schema
//! URN in front (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`).

use super::schema::ResourceKind;

/// A parsed attribute path. Names keep the case they were sent in; lookups ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// An extension schema URN; `None` for the core schema (an explicit core URN is dropped).
    pub urn: Option<String>,
    /// The attribute; empty when the path is the extension URN itself (its whole object).
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// A core attribute without a sub-attribute.
    pub fn plain(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_owned(),
            sub: None,
        }
    }

    /// Whether this is the core attribute `name` (any case), with no sub-attribute.
    pub fn is(&self, name: &str) -> bool {
        self.urn.is_none() && self.sub.is_none() && self.name.eq_ignore_ascii_case(name)
    }

    /// Parses `text` for a resource of `kind`. The error says what is wrong, for an
    /// `invalidPath` or `invalidFilter` detail.
    pub fn parse(text: &str, kind: ResourceKind) -> Result<AttrPath, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty attribute path".into());
        }
        let (urn, rest) = split_urn(text, kind)?;
        if rest.is_empty() {
            return match urn {
                Some(urn) => Ok(AttrPath {
                    urn: Some(urn),
                    name: String::new(),
                    sub: None,
                }),
                None => Err(format!("{text:?} names a schema, not an attribute")),
            };
        }
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        check_name(name, text)?;
        if let Some(s) = sub {
            check_name(s, text)?;
        }
        Ok(AttrPath {
            urn,
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.urn {
            f.write_str(u)?;
            if !self.name.is_empty() {
                f.write_str(":")?;
            }
        }
        f.write_str(&self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// Splits a leading schema URN off: known URNs (the core schema of `kind` and its extensions)
/// by prefix, case-insensitively; an unknown `urn:` at its last colon.
fn split_urn(text: &str, kind: ResourceKind) -> Result<(Option<String>, &str), String> {
    if !text
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        return Ok((None, text));
    }
    let core = kind.core_urn();
    let known = std::iter::once(core).chain(kind.extensions().iter().map(|(u, _)| *u));
    for urn in known {
        let Some(head) = text.get(..urn.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(urn) {
            continue;
        }
        let rest = &text[urn.len()..];
        let canonical = (urn != core).then(|| urn.to_owned());
        if rest.is_empty() {
            return Ok((canonical, ""));
        }
        if let Some(rest) = rest.strip_prefix(':') {
            return Ok((canonical, rest));
        }
    }
    match text.rsplit_once(':') {
        Some((urn, rest)) if !rest.is_empty() => {
            // An unknown extension: the attribute follows the last colon (its sub-attribute,
            // if any, after a dot, so "2.0" in the URN itself is not a sub-attribute).
            Ok((Some(urn.to_owned()), rest))
        }
        _ => Err(format!("{text:?} is not a valid attribute path")),
    }
}

/// RFC 7643 §2.1 ATTRNAME: a letter, then letters, digits, `-` or `_`; also `$ref`.
fn check_name(name: &str, whole: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = name == "$ref"
        || chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{whole:?} is not a valid attribute path ({name:?} is not an attribute name)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> AttrPath {
        AttrPath::parse(s, ResourceKind::User).expect(s)
    }

    #[test]
    fn parses_plain_dotted_and_urn_paths() {
        assert_eq!(p("userName"), AttrPath::plain("userName"));
        assert_eq!(p("name.givenName").sub.as_deref(), Some("givenName"));
        let core = p("urn:ietf:params:scim:schemas:core:2.0:User:userName");
        assert_eq!(core, AttrPath::plain("userName"));
        let e = p("URN:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value");
        assert_eq!(
            e.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(
            (e.name.as_str(), e.sub.as_deref()),
            ("manager", Some("value"))
        );
        let whole = p("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User");
        assert!(whole.name.is_empty() && whole.urn.is_some());
        let custom = p("urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge");
        assert_eq!(
            custom.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:acme:2.0:User")
        );
        assert_eq!(custom.name, "badge");
        assert_eq!(
            custom.to_string(),
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge"
        );
    }

    #[test]
    fn refuses_what_is_not_a_path() {
        for bad in ["", "  ", "9lives", "name.", "a b", "emails[type"] {
            assert!(AttrPath::parse(bad, ResourceKind::User).is_err(), "{bad:?}");
        }
    }
}

//! Filters (RFC 7644 §3.4.2.2): the whole grammar (`eq ne co sw ew gt ge lt le pr`, `and`,
//! `or`, `not`, parentheses, `attr[filter]`), plus Entra's `emails[type eq "work"].value eq
//! "x"`. Attribute names and operators are case-insensitive; string comparison follows each
//! attribute's `caseExact` (so `userName` compares case-insensitively).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::ScimError;
use super::path::AttrPath;
use super::schema::{self, AttrDef, ResourceKind, get_ci};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8 * 1024;
/// Deepest nesting of parentheses, `not` and brackets accepted.
const MAX_DEPTH: usize = 32;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }
}

/// A comparison value: a JSON string, number, boolean or null.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, Op, Literal),
    /// `attr[filter]`: some value of the multi-valued `attr` matches `filter`, whose paths are
    /// that attribute's sub-attributes.
    Has(AttrPath, Box<Filter>),
}

/// What an index can answer: `attr eq "value"` on a column the stores index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexHint {
    Id(String),
    /// Compared case-insensitively: the value as sent (the stores lower-case it).
    UserName(String),
    ExternalId(String),
    /// Compared case-insensitively.
    DisplayName(String),
}

impl Filter {
    /// Parses a filter over resources of `kind`; an error is 400 `invalidFilter` naming the
    /// position (a byte offset) and the token.
    pub fn parse(text: &str, kind: ResourceKind) -> Result<Filter, ScimError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(ScimError::invalid_filter(format!(
                "the filter is longer than {MAX_FILTER_LEN} bytes"
            )));
        }
        let tokens = tokenize(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            kind,
            depth: 0,
            text_len: text.len(),
        };
        let f = p.or_expr(false)?;
        match p.peek() {
            None => Ok(f),
            Some(t) => Err(p.unexpected(t, "the end of the filter")),
        }
    }

    /// Whether `resource` (a rendered resource: `id`, attributes, `meta`) matches.
    pub fn matches(&self, resource: &Value, kind: ResourceKind) -> bool {
        match resource.as_object() {
            Some(obj) => eval(self, obj, &Scope::Resource(kind)),
            None => false,
        }
    }

    /// An `eq` that an index answers, when the filter is one or an `and` holding one: the
    /// candidates it selects are then checked against the whole filter.
    pub fn index_hint(&self, kind: ResourceKind) -> Option<IndexHint> {
        match self {
            Filter::And(a, b) => a.index_hint(kind).or_else(|| b.index_hint(kind)),
            Filter::Compare(path, Op::Eq, Literal::Str(v)) if path.urn.is_none() => {
                let hint = |name: &str| path.is(name);
                if hint("id") {
                    Some(IndexHint::Id(v.clone()))
                } else if hint("externalId") {
                    Some(IndexHint::ExternalId(v.clone()))
                } else if kind == ResourceKind::User && hint("userName") {
                    Some(IndexHint::UserName(v.clone()))
                } else if kind == ResourceKind::Group && hint("displayName") {
                    Some(IndexHint::DisplayName(v.clone()))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Whether any path of the filter names `attr` (a core attribute, any case).
    pub fn mentions(&self, attr: &str) -> bool {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => a.mentions(attr) || b.mentions(attr),
            Filter::Not(f) => f.mentions(attr),
            Filter::Present(p) | Filter::Compare(p, _, _) | Filter::Has(p, _) => {
                p.urn.is_none() && p.name.eq_ignore_ascii_case(attr)
            }
        }
    }
}

// ---- tokens ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    LBracket,
    RBracket,
    Str(String),
    /// An attribute path, operator, keyword or bare literal.
    Word(String),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Open => "\"(\"".into(),
            Tok::Close => "\")\"".into(),
            Tok::LBracket => "\"[\"".into(),
            Tok::RBracket => "\"]\"".into(),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Word(w) => format!("{w:?}"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, ScimError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push((i, Tok::Open));
                i += 1;
            }
            b')' => {
                out.push((i, Tok::Close));
                i += 1;
            }
            b'[' => {
                out.push((i, Tok::LBracket));
                i += 1;
            }
            b']' => {
                out.push((i, Tok::RBracket));
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut escaped = false;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' if !escaped => escaped = true,
                        b'"' if !escaped => break,
                        _ => escaped = false,
                    }
                    i += 1;
                }
                if i >= bytes.len() {
                    return Err(ScimError::invalid_filter(format!(
                        "unterminated string at position {start}"
                    )));
                }
                let raw = &text[start..=i];
                let s: String = serde_json::from_str(raw).map_err(|_| {
                    ScimError::invalid_filter(format!("invalid string at position {start}"))
                })?;
                out.push((start, Tok::Str(s)));
                i += 1;
            }
            _ => {
                let start = i;
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b'[' | b']' | b'"'
                    )
                {
                    i += 1;
                }
                out.push((start, Tok::Word(text[start..i].to_owned())));
            }
        }
    }
    Ok(out)
}

// ---- parser --------------------------------------------------------------------------------

struct Parser {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    kind: ResourceKind,
    depth: usize,
    text_len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(usize, Tok)> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<(usize, Tok)> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn unexpected(&self, (at, tok): &(usize, Tok), wanted: &str) -> ScimError {
        ScimError::invalid_filter(format!(
            "unexpected {} at position {at}; expected {wanted}",
            tok.describe()
        ))
    }

    fn end(&self, wanted: &str) -> ScimError {
        ScimError::invalid_filter(format!(
            "the filter ends at position {}; expected {wanted}",
            self.text_len
        ))
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case(word))
    }

    fn deeper(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ScimError::invalid_filter(format!(
                "the filter nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    /// `or` binds loosest, then `and`, then `not`.
    fn or_expr(&mut self, nested: bool) -> Result<Filter, ScimError> {
        let mut f = self.and_expr(nested)?;
        while self.keyword("or") {
            self.pos += 1;
            let rhs = self.and_expr(nested)?;
            f = Filter::Or(Box::new(f), Box::new(rhs));
        }
        Ok(f)
    }

    fn and_expr(&mut self, nested: bool) -> Result<Filter, ScimError> {
        let mut f = self.unary(nested)?;
        while self.keyword("and") {
            self.pos += 1;
            let rhs = self.unary(nested)?;
            f = Filter::And(Box::new(f), Box::new(rhs));
        }
        Ok(f)
    }

    fn unary(&mut self, nested: bool) -> Result<Filter, ScimError> {
        if self.keyword("not") {
            // `not` is a keyword only before "(": an attribute may be called "not".
            if matches!(self.tokens.get(self.pos + 1), Some((_, Tok::Open))) {
                self.pos += 1;
                return Ok(Filter::Not(Box::new(self.group(nested)?)));
            }
        }
        if matches!(self.peek(), Some((_, Tok::Open))) {
            return self.group(nested);
        }
        self.attr_expr(nested)
    }

    fn group(&mut self, nested: bool) -> Result<Filter, ScimError> {
        self.deeper()?;
        self.pos += 1; // "("
        let f = self.or_expr(nested)?;
        match self.next() {
            Some((_, Tok::Close)) => {}
            Some(t) => return Err(self.unexpected(&t, "\")\"")),
            None => return Err(self.end("\")\"")),
        }
        self.depth -= 1;
        Ok(f)
    }

    fn path(&self, at: usize, word: &str) -> Result<AttrPath, ScimError> {
        AttrPath::parse(word, self.kind)
            .map_err(|e| ScimError::invalid_filter(format!("at position {at}: {e}")))
    }

    fn attr_expr(&mut self, nested: bool) -> Result<Filter, ScimError> {
        let (at, word) = match self.next() {
            Some((at, Tok::Word(w))) => (at, w),
            Some(t) => return Err(self.unexpected(&t, "an attribute name")),
            None => return Err(self.end("an attribute name")),
        };
        let path = self.path(at, &word)?;
        if matches!(self.peek(), Some((_, Tok::LBracket))) {
            if nested {
                return Err(ScimError::invalid_filter(format!(
                    "at position {at}: a filter inside brackets cannot hold another"
                )));
            }
            if path.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "at position {at}: {word:?} has a sub-attribute before \"[\""
                )));
            }
            self.deeper()?;
            self.pos += 1;
            let inner = self.or_expr(true)?;
            match self.next() {
                Some((_, Tok::RBracket)) => {}
                Some(t) => return Err(self.unexpected(&t, "\"]\"")),
                None => return Err(self.end("\"]\"")),
            }
            self.depth -= 1;
            // Entra: `emails[type eq "work"].value eq "x"`, read as
            // `emails[type eq "work" and value eq "x"]`.
            if let Some((sub_at, Tok::Word(w))) = self.peek().cloned()
                && let Some(sub) = w.strip_prefix('.')
            {
                self.pos += 1;
                let sub_path = self.path(sub_at, sub)?;
                let cond = self.condition(sub_path)?;
                return Ok(Filter::Has(
                    path,
                    Box::new(Filter::And(Box::new(inner), Box::new(cond))),
                ));
            }
            return Ok(Filter::Has(path, Box::new(inner)));
        }
        self.condition(path)
    }

    /// `pr`, or an operator and a value, after `path`.
    fn condition(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        let (at, op) = match self.next() {
            Some((at, Tok::Word(w))) => (at, w),
            Some(t) => {
                return Err(
                    self.unexpected(&t, "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)")
                );
            }
            None => return Err(self.end("an operator")),
        };
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = Op::parse(&op) else {
            return Err(ScimError::invalid_filter(format!(
                "unknown operator {op:?} at position {at}"
            )));
        };
        let value = match self.next() {
            Some((_, Tok::Str(s))) => Literal::Str(s),
            Some((at, Tok::Word(w))) => literal(&w).ok_or_else(|| {
                ScimError::invalid_filter(format!(
                    "{w:?} at position {at} is not a value (strings are quoted)"
                ))
            })?,
            Some(t) => return Err(self.unexpected(&t, "a value")),
            None => return Err(self.end("a value")),
        };
        Ok(Filter::Compare(path, op, value))
    }
}

fn literal(word: &str) -> Option<Literal> {
    match word.to_ascii_lowercase().as_str() {
        "true" => Some(Literal::Bool(true)),
        "false" => Some(Literal::Bool(false)),
        "null" => Some(Literal::Null),
        _ => word
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Literal::Num),
    }
}

// ---- evaluation ----------------------------------------------------------------------------

/// What paths are relative to: a resource, or a value of a multi-valued attribute.
enum Scope {
    Resource(ResourceKind),
    Element(Option<&'static AttrDef>),
}

impl Scope {
    fn def(&self, path: &AttrPath) -> Option<&'static AttrDef> {
        match self {
            Scope::Resource(kind) => kind.attr(path.urn.as_deref(), &path.name),
            Scope::Element(parent) => parent.and_then(|p| schema::find(p.sub, &path.name)),
        }
    }
}

fn eval(f: &Filter, obj: &Map<String, Value>, scope: &Scope) -> bool {
    match f {
        Filter::And(a, b) => eval(a, obj, scope) && eval(b, obj, scope),
        Filter::Or(a, b) => eval(a, obj, scope) || eval(b, obj, scope),
        Filter::Not(a) => !eval(a, obj, scope),
        Filter::Present(path) => {
            resolve(obj, path).is_some_and(|v| present(v, path.sub.as_deref()))
        }
        Filter::Compare(path, op, lit) => {
            let def = scope.def(path);
            let exact = match (&path.sub, def) {
                (Some(sub), Some(d)) => schema::case_exact(schema::find(d.sub, sub), sub),
                (Some(sub), None) => schema::case_exact(None, sub),
                (None, d) => schema::case_exact(d, &path.name),
            };
            let (op, negate) = match op {
                Op::Ne => (Op::Eq, true),
                other => (*other, false),
            };
            let hit = resolve(obj, path)
                .is_some_and(|v| compare_any(v, path.sub.as_deref(), op, lit, exact));
            hit != negate
        }
        Filter::Has(path, inner) => {
            let scope = Scope::Element(scope.def(path));
            match resolve(obj, path) {
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|i| i.as_object().is_some_and(|o| eval(inner, o, &scope))),
                Some(Value::Object(o)) => eval(inner, o, &scope),
                _ => false,
            }
        }
    }
}

/// The value of `path`'s attribute (not its sub-attribute) in `obj`.
fn resolve<'a>(obj: &'a Map<String, Value>, path: &AttrPath) -> Option<&'a Value> {
    let container = match &path.urn {
        Some(urn) => get_ci(obj, urn)?.as_object()?,
        None => obj,
    };
    if path.name.is_empty() {
        return None;
    }
    get_ci(container, &path.name)
}

fn present(v: &Value, sub: Option<&str>) -> bool {
    match (v, sub) {
        (Value::Array(items), _) => items.iter().any(|i| present(i, sub)),
        (Value::Object(o), Some(s)) => get_ci(o, s).is_some_and(|x| present(x, None)),
        (Value::Object(o), None) => !o.is_empty(),
        (_, Some(_)) => false,
        (Value::Null, None) => false,
        (Value::String(s), None) => !s.is_empty(),
        _ => true,
    }
}

/// Multi-valued attributes match when any value does; a complex value without a named
/// sub-attribute is compared by its `value`.
fn compare_any(v: &Value, sub: Option<&str>, op: Op, lit: &Literal, exact: bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| compare_any(i, sub, op, lit, exact)),
        Value::Object(o) => {
            let key = sub.unwrap_or("value");
            get_ci(o, key).is_some_and(|x| compare_any(x, None, op, lit, exact))
        }
        scalar if sub.is_none() => compare(scalar, op, lit, exact),
        _ => false,
    }
}

fn compare(v: &Value, op: Op, lit: &Literal, exact: bool) -> bool {
    match (v, lit) {
        (Value::String(a), Literal::Str(b)) => {
            if let (Some(x), Some(y)) = (date(a), date(b)) {
                return ordered(x.cmp(&y), op);
            }
            let (a, b) = if exact {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            match op {
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                _ => ordered(a.cmp(&b), op),
            }
        }
        (Value::Number(a), Literal::Num(b)) => a
            .as_f64()
            .and_then(|a| a.partial_cmp(b))
            .is_some_and(|o| ordered(o, op)),
        (Value::Bool(a), Literal::Bool(b)) => op == Op::Eq && a == b,
        // Entra sends booleans as strings; a stored "True" still equals true.
        (Value::String(a), Literal::Bool(b)) => {
            op == Op::Eq && a.eq_ignore_ascii_case(if *b { "true" } else { "false" })
        }
        (Value::Null, Literal::Null) => op == Op::Eq,
        _ => false,
    }
}

fn ordered(o: Ordering, op: Op) -> bool {
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Ne | Op::Co | Op::Sw | Op::Ew => false,
    }
}

fn date(s: &str) -> Option<DateTime<Utc>> {
    // Only strings that look like timestamps: "2011-05-13T04:42:34Z".
    if s.len() < 20 || s.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::protocol::ScimType;

    fn user_filter(s: &str) -> Filter {
        Filter::parse(s, ResourceKind::User).expect(s)
    }

    fn ana() -> Value {
        json!({
            "id": "2819c223-7f76-453a-919d-413861904646",
            "userName": "Ana@Example.test",
            "externalId": "00u1AbC",
            "active": true,
            "displayName": "Ana Lima",
            "name": {"givenName": "Ana", "familyName": "Lima"},
            "title": "Engineer",
            "emails": [
                {"value": "ana@example.test", "type": "work", "primary": true},
                {"value": "ana@home.test", "type": "home"}
            ],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "R&D",
                "manager": {"value": "m-1"}
            },
            "meta": {"resourceType": "User", "lastModified": "2026-01-02T03:04:05.000Z"}
        })
    }

    fn hits(s: &str) -> bool {
        user_filter(s).matches(&ana(), ResourceKind::User)
    }

    #[test]
    fn user_name_compares_without_case_and_ids_with_it() {
        assert!(hits(r#"userName eq "ana@example.test""#));
        assert!(hits(r#"USERNAME EQ "ANA@EXAMPLE.TEST""#));
        assert!(hits(r#"externalId eq "00u1AbC""#));
        assert!(!hits(r#"externalId eq "00u1abc""#));
        assert!(hits(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
        assert!(!hits(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
        assert!(!hits(r#"userName eq "bo@example.test""#));
    }

    #[test]
    fn the_whole_grammar() {
        assert!(hits(r#"userName eq "ana@example.test" and active eq true"#));
        assert!(!hits(
            r#"userName eq "ana@example.test" and active eq false"#
        ));
        assert!(hits(r#"userName eq "x" or title eq "engineer""#));
        assert!(hits(r#"not (userName eq "x")"#));
        assert!(!hits(r#"not(userName sw "ana")"#));
        assert!(hits(
            r#"(userName sw "ANA" or x eq "y") and name.familyName ew "ma""#
        ));
        assert!(hits(r#"title pr and nickName ne "x""#));
        assert!(!hits("nickName pr"));
        assert!(hits(r#"displayName co "lim""#));
        assert!(hits(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#));
        assert!(!hits(r#"meta.lastModified lt "2026-01-01T00:00:00+00:00""#));
        assert!(hits(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r&d""#
        ));
        assert!(hits(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m-1""#
        ));
        // `and` binds tighter than `or`.
        assert!(hits(
            r#"userName eq "x" and title eq "y" or active eq true"#
        ));
        assert!(!hits(
            r#"userName eq "x" and (title eq "y" or active eq true)"#
        ));
    }

    #[test]
    fn multi_valued_attributes_and_value_paths() {
        assert!(hits(r#"emails.value eq "ANA@home.test""#));
        assert!(hits(r#"emails eq "ana@home.test""#));
        assert!(hits(r#"emails[type eq "work" and value co "example"]"#));
        assert!(!hits(r#"emails[type eq "home" and primary eq true]"#));
        // Entra's form.
        assert!(hits(
            r#"emails[type eq "work"].value eq "ana@example.test""#
        ));
        assert!(!hits(
            r#"emails[type eq "home"].value eq "ana@example.test""#
        ));
        assert!(hits(r#"emails[primary eq true]"#));
    }

    #[test]
    fn index_hints_only_for_indexed_equality() {
        let hint = |s: &str, k| Filter::parse(s, k).expect(s).index_hint(k);
        assert_eq!(
            hint(r#"userName eq "Ana""#, ResourceKind::User),
            Some(IndexHint::UserName("Ana".into()))
        );
        assert_eq!(
            hint(
                r#"active eq true and externalId eq "e""#,
                ResourceKind::User
            ),
            Some(IndexHint::ExternalId("e".into()))
        );
        assert_eq!(
            hint(r#"displayName eq "Eng""#, ResourceKind::Group),
            Some(IndexHint::DisplayName("Eng".into()))
        );
        assert_eq!(
            hint(r#"userName eq "a" or id eq "b""#, ResourceKind::User),
            None
        );
        assert_eq!(hint(r#"userName co "a""#, ResourceKind::User), None);
        assert_eq!(hint(r#"displayName eq "x""#, ResourceKind::User), None);
    }

    #[test]
    fn bad_filters_name_the_position_and_token() {
        let err = |s: &str| Filter::parse(s, ResourceKind::User).expect_err(s);
        let e = err(r#"userName eq"#);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
        assert_eq!(e.status, 400);
        assert!(e.detail.contains("position 11"), "{}", e.detail);
        let e = err(r#"userName zz "a""#);
        assert!(
            e.detail.contains("\"zz\"") && e.detail.contains("position 9"),
            "{}",
            e.detail
        );
        let e = err(r#"(userName eq "a""#);
        assert!(e.detail.contains("\")\""), "{}", e.detail);
        let e = err(r#"userName eq "a" )"#);
        assert!(e.detail.contains("position 16"), "{}", e.detail);
        let e = err(r#"userName eq "unterminated"#);
        assert!(e.detail.contains("unterminated"), "{}", e.detail);
        let e = err("userName eq bare");
        assert!(e.detail.contains("\"bare\""), "{}", e.detail);
        err(r#"emails[value[type eq "x"]]"#);
        err("");
        err(&format!("{}userName pr{}", "(".repeat(40), ")".repeat(40)));
        err(&"x".repeat(MAX_FILTER_LEN + 1));
    }
}

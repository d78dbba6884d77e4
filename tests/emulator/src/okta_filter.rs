//! Okta's `filter` (and a minimal group `search`) expression language: parse once, then match
//! groups ([`GroupFilter`]) or users ([`UserFilter`]). Both share one tokenizer and one parser;
//! each decides which `ATTR OP "value"` comparisons it accepts.
//!
//! Grammar (operators and keywords case-insensitive, attribute names case-sensitive, values in
//! double quotes): `expr := and ("or" and)*`, `and := unary ("and" unary)*`,
//! `unary := "not" unary | "(" expr ")" | ATTR OP "value"`.
//!
//! - Groups, `filter`: `id`, `type` (`eq` only) and `lastUpdated`, `lastMembershipUpdated`
//!   (`eq gt ge lt le`, dates `YYYY-MM-DDTHH:MM:SS[.sss]Z`). `search` additionally allows
//!   `created`, `profile.name` and `profile.description`, and `sw` / `co` on string attributes.
//! - Users, `filter` (`GET /api/v1/users`): `status`, `id`, `profile.login`, `profile.email`,
//!   `profile.firstName`, `profile.lastName` (`eq` only, exact and case-sensitive, as Okta
//!   documents for query values) and `lastUpdated` (`eq gt ge lt le`). No `sw` / `co` and no
//!   `not`: Okta documents neither for the users filter, and the emulator refuses what it cannot
//!   vouch for.

use std::fmt;

use serde_json::Value;

use crate::okta::{OktaGroup, OktaUser};
use crate::timefmt::parse_iso_millis;

/// A parsed group filter or search expression.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupFilter(Expr<GroupCmp>);

/// A parsed `GET /api/v1/users` filter expression.
#[derive(Clone, Debug, PartialEq)]
pub struct UserFilter(Expr<UserCmp>);

/// Why an expression was rejected; the emulator answers 400 `E0000031`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

/// The boolean structure of an expression over comparisons `C`.
#[derive(Clone, Debug, PartialEq)]
enum Expr<C> {
    And(Box<Expr<C>>, Box<Expr<C>>),
    Or(Box<Expr<C>>, Box<Expr<C>>),
    Not(Box<Expr<C>>),
    Cmp(C),
}

impl<C> Expr<C> {
    fn eval(&self, cmp: &impl Fn(&C) -> bool) -> bool {
        match self {
            Expr::And(a, b) => a.eval(cmp) && b.eval(cmp),
            Expr::Or(a, b) => a.eval(cmp) || b.eval(cmp),
            Expr::Not(e) => !e.eval(cmp),
            Expr::Cmp(c) => cmp(c),
        }
    }

    /// Whether any comparison satisfies `pred`.
    fn any(&self, pred: &impl Fn(&C) -> bool) -> bool {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => a.any(pred) || b.any(pred),
            Expr::Not(e) => e.any(pred),
            Expr::Cmp(c) => pred(c),
        }
    }
}

/// One group comparison.
#[derive(Clone, Debug, PartialEq)]
enum GroupCmp {
    Str {
        attr: GroupStr,
        op: Op,
        value: String,
    },
    Date {
        attr: GroupDate,
        op: Op,
        millis: i64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupStr {
    Id,
    Type,
    Name,
    Description,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupDate {
    Created,
    LastUpdated,
    LastMembershipUpdated,
}

/// One user comparison.
#[derive(Clone, Debug, PartialEq)]
enum UserCmp {
    /// `eq` on a string attribute.
    Eq { attr: UserStr, value: String },
    /// `lastUpdated OP "date"`.
    LastUpdated { op: Op, millis: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UserStr {
    Status,
    Id,
    /// `profile.<name>`.
    Profile(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
    Sw,
    Co,
}

impl Op {
    fn is_ordering(self) -> bool {
        matches!(self, Op::Eq | Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }
}

/// `actual OP millis`, at millisecond precision; `actual` is (epoch seconds, milliseconds
/// within the second), the latter 0 for whole-second stamps.
fn compare_date((secs, ms): (i64, u16), op: Op, millis: i64) -> bool {
    let actual = secs.saturating_mul(1000) + i64::from(ms);
    match op {
        Op::Eq => actual == millis,
        Op::Gt => actual > millis,
        Op::Ge => actual >= millis,
        Op::Lt => actual < millis,
        Op::Le => actual <= millis,
        Op::Sw | Op::Co => false,
    }
}

fn parse_date(value: &str) -> Result<i64, FilterError> {
    parse_iso_millis(value).ok_or_else(|| FilterError(format!("invalid date {value:?}")))
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Token {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

impl GroupFilter {
    /// Parses a `filter=` expression (`id`, `type`, `lastUpdated`, `lastMembershipUpdated`).
    pub fn parse_filter(input: &str) -> Result<GroupFilter, FilterError> {
        parse(input, true, |attr, op, value| {
            group_cmp(attr, op, value, false)
        })
        .map(GroupFilter)
    }

    /// Parses a `search=` expression: the filter attributes plus `created`, `profile.name`,
    /// `profile.description`, and `sw` / `co`.
    pub fn parse_search(input: &str) -> Result<GroupFilter, FilterError> {
        parse(input, true, |attr, op, value| {
            group_cmp(attr, op, value, true)
        })
        .map(GroupFilter)
    }

    /// Whether `group` satisfies the expression.
    pub fn matches(&self, group: &OktaGroup) -> bool {
        self.0.eval(&|cmp| group_matches(cmp, group))
    }
}

fn group_cmp(attr: &str, op: Op, value: String, search: bool) -> Result<GroupCmp, FilterError> {
    if !search && matches!(op, Op::Sw | Op::Co) {
        return Err(FilterError(format!(
            "operator {op:?} not supported in filter"
        )));
    }
    let str_attr = match attr {
        "id" => Some(GroupStr::Id),
        "type" => Some(GroupStr::Type),
        "profile.name" if search => Some(GroupStr::Name),
        "profile.description" if search => Some(GroupStr::Description),
        _ => None,
    };
    if let Some(attr) = str_attr {
        if !matches!(op, Op::Eq | Op::Sw | Op::Co) {
            return Err(FilterError(format!("operator not supported for {attr:?}")));
        }
        return Ok(GroupCmp::Str { attr, op, value });
    }
    let attr = match attr {
        "lastUpdated" => GroupDate::LastUpdated,
        "lastMembershipUpdated" => GroupDate::LastMembershipUpdated,
        "created" if search => GroupDate::Created,
        _ => return Err(FilterError(format!("unsupported attribute {attr:?}"))),
    };
    if !op.is_ordering() {
        return Err(FilterError("sw/co on a date".into()));
    }
    let millis = parse_date(&value)?;
    Ok(GroupCmp::Date { attr, op, millis })
}

fn group_matches(cmp: &GroupCmp, g: &OktaGroup) -> bool {
    match cmp {
        GroupCmp::Str { attr, op, value } => {
            let actual = match attr {
                GroupStr::Id => Some(g.id.as_str()),
                GroupStr::Type => Some(g.group_type.as_str()),
                GroupStr::Name => Some(g.name.as_str()),
                GroupStr::Description => g.description.as_deref(),
            };
            let Some(actual) = actual else { return false };
            match op {
                Op::Eq => actual == value,
                Op::Sw => actual.to_lowercase().starts_with(&value.to_lowercase()),
                Op::Co => actual.to_lowercase().contains(&value.to_lowercase()),
                Op::Gt | Op::Ge | Op::Lt | Op::Le => false,
            }
        }
        GroupCmp::Date { attr, op, millis } => {
            let stamp = match attr {
                GroupDate::Created => (g.created, 0),
                GroupDate::LastUpdated => (g.last_updated, g.last_updated_ms),
                GroupDate::LastMembershipUpdated => {
                    (g.last_membership_updated, g.last_membership_updated_ms)
                }
            };
            compare_date(stamp, *op, *millis)
        }
    }
}

impl UserFilter {
    /// Parses a `filter=` expression of `GET /api/v1/users` (see the module docs).
    pub fn parse(input: &str) -> Result<UserFilter, FilterError> {
        parse(input, false, user_cmp).map(UserFilter)
    }

    /// Whether `user` satisfies the expression (DEPROVISIONED users included: omitting them is
    /// the listing's job, see [`UserFilter::names_status`]).
    pub fn matches(&self, user: &OktaUser) -> bool {
        self.0.eval(&|cmp| user_matches(cmp, user))
    }

    /// Whether the expression has a `status` condition anywhere. Without one, the users listing
    /// omits DEPROVISIONED users, as Okta does by default.
    pub fn names_status(&self) -> bool {
        self.0.any(&|cmp| {
            matches!(
                cmp,
                UserCmp::Eq {
                    attr: UserStr::Status,
                    ..
                }
            )
        })
    }
}

fn user_cmp(attr: &str, op: Op, value: String) -> Result<UserCmp, FilterError> {
    if attr == "lastUpdated" {
        if !op.is_ordering() {
            return Err(FilterError(format!(
                "operator {op:?} not supported for lastUpdated"
            )));
        }
        let millis = parse_date(&value)?;
        return Ok(UserCmp::LastUpdated { op, millis });
    }
    let attr = match attr {
        "status" => UserStr::Status,
        "id" => UserStr::Id,
        "profile.login" => UserStr::Profile("login"),
        "profile.email" => UserStr::Profile("email"),
        "profile.firstName" => UserStr::Profile("firstName"),
        "profile.lastName" => UserStr::Profile("lastName"),
        _ => return Err(FilterError(format!("unsupported attribute {attr:?}"))),
    };
    if op != Op::Eq {
        return Err(FilterError(format!(
            "operator {op:?} not supported for {attr:?}"
        )));
    }
    Ok(UserCmp::Eq { attr, value })
}

fn user_matches(cmp: &UserCmp, u: &OktaUser) -> bool {
    match cmp {
        UserCmp::Eq { attr, value } => match attr {
            UserStr::Status => u.status == *value,
            UserStr::Id => u.id == *value,
            UserStr::Profile(key) => u.profile.get(*key).and_then(Value::as_str) == Some(value),
        },
        UserCmp::LastUpdated { op, millis } => {
            compare_date((u.last_updated, u.last_updated_ms), *op, *millis)
        }
    }
}

pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err(FilterError("unterminated string".into())),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err(FilterError("dangling escape".into())),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Parses `input` with the shared grammar; `cmp` turns each `ATTR OP "value"` into a
/// comparison or rejects it. `allow_not`: whether the `not` keyword is accepted.
fn parse<C>(
    input: &str,
    allow_not: bool,
    cmp: impl Fn(&str, Op, String) -> Result<C, FilterError>,
) -> Result<Expr<C>, FilterError> {
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(FilterError("empty expression".into()));
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        allow_not,
        cmp: &cmp,
    };
    let expr = parser.or_expr()?;
    match parser.tokens.get(parser.pos) {
        None => Ok(expr),
        Some(t) => Err(FilterError(format!("unexpected {t:?}"))),
    }
}

type CmpFn<'a, C> = &'a dyn Fn(&str, Op, String) -> Result<C, FilterError>;

struct Parser<'a, C> {
    tokens: Vec<Token>,
    pos: usize,
    allow_not: bool,
    cmp: CmpFn<'a, C>,
}

impl<C> Parser<'_, C> {
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or_expr(&mut self) -> Result<Expr<C>, FilterError> {
        let mut left = self.and_expr()?;
        while self.peek_keyword("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and_expr()?));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr<C>, FilterError> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr<C>, FilterError> {
        if self.peek_keyword("not") {
            if !self.allow_not {
                return Err(FilterError("'not' is not supported here".into()));
            }
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or_expr()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err(FilterError("missing ')'".into())),
                }
            }
            Some(Token::Word(attr)) => self.comparison(&attr),
            other => Err(FilterError(format!("expected an attribute, got {other:?}"))),
        }
    }

    fn comparison(&mut self, attr: &str) -> Result<Expr<C>, FilterError> {
        let op = match self.next() {
            Some(Token::Word(op)) => match op.to_ascii_lowercase().as_str() {
                "eq" => Op::Eq,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                "sw" => Op::Sw,
                "co" => Op::Co,
                _ => return Err(FilterError(format!("unsupported operator {op:?}"))),
            },
            other => return Err(FilterError(format!("expected an operator, got {other:?}"))),
        };
        let value = match self.next() {
            Some(Token::Quoted(v)) => v,
            other => {
                return Err(FilterError(format!(
                    "expected a quoted value, got {other:?}"
                )));
            }
        };
        (self.cmp)(attr, op, value).map(Expr::Cmp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn group(id: &str, group_type: &str, membership_updated: i64, updated: i64) -> OktaGroup {
        OktaGroup {
            id: id.into(),
            name: format!("name-{id}"),
            description: None,
            group_type: group_type.into(),
            created: 0,
            last_updated: updated,
            last_updated_ms: 0,
            last_membership_updated: membership_updated,
            last_membership_updated_ms: 0,
            members: BTreeSet::new(),
        }
    }

    // 2024-01-01T00:00:00Z
    const JAN1: i64 = 1_704_067_200;

    fn ok(filter: &str) -> GroupFilter {
        GroupFilter::parse_filter(filter).expect(filter)
    }

    #[test]
    fn type_eq() {
        let f = ok(r#"type eq "OKTA_GROUP""#);
        assert!(f.matches(&group("a", "OKTA_GROUP", 0, 0)));
        assert!(!f.matches(&group("a", "APP_GROUP", 0, 0)));
        assert!(ok(r#"id EQ "a""#).matches(&group("a", "APP_GROUP", 0, 0)));
    }

    #[test]
    fn dates_compare_with_millisecond_precision() {
        let g = group("a", "OKTA_GROUP", JAN1 + 1, JAN1);
        assert!(ok(r#"lastMembershipUpdated gt "2024-01-01T00:00:00.000Z""#).matches(&g));
        assert!(ok(r#"lastMembershipUpdated gt "2024-01-01T00:00:00.999Z""#).matches(&g));
        assert!(!ok(r#"lastMembershipUpdated gt "2024-01-01T00:00:01.000Z""#).matches(&g));
        assert!(ok(r#"lastMembershipUpdated ge "2024-01-01T00:00:01Z""#).matches(&g));
        assert!(ok(r#"lastMembershipUpdated lt "2024-01-01T00:00:02Z""#).matches(&g));
        assert!(ok(r#"lastMembershipUpdated le "2024-01-01T00:00:01Z""#).matches(&g));
        assert!(ok(r#"lastMembershipUpdated eq "2024-01-01T00:00:01.000Z""#).matches(&g));
        assert!(ok(r#"lastUpdated eq "2024-01-01T00:00:00.000Z""#).matches(&g));
    }

    #[test]
    fn and_or_not_parentheses() {
        let f = ok(
            r#"type eq "OKTA_GROUP" and (lastUpdated gt "2024-01-01T00:00:00.000Z" or lastMembershipUpdated gt "2024-01-01T00:00:00.000Z")"#,
        );
        assert!(f.matches(&group("a", "OKTA_GROUP", JAN1 + 5, 0)));
        assert!(f.matches(&group("a", "OKTA_GROUP", 0, JAN1 + 5)));
        assert!(!f.matches(&group("a", "OKTA_GROUP", 0, 0)));
        assert!(!f.matches(&group("a", "APP_GROUP", JAN1 + 5, JAN1 + 5)));

        // `and` binds tighter than `or`.
        let f = ok(r#"type eq "APP_GROUP" or type eq "OKTA_GROUP" AND id eq "x""#);
        assert!(f.matches(&group("a", "APP_GROUP", 0, 0)));
        assert!(!f.matches(&group("a", "OKTA_GROUP", 0, 0)));
        assert!(f.matches(&group("x", "OKTA_GROUP", 0, 0)));

        let f = ok(r#"not (type eq "BUILT_IN") and not type eq "APP_GROUP""#);
        assert!(f.matches(&group("a", "OKTA_GROUP", 0, 0)));
        assert!(!f.matches(&group("a", "BUILT_IN", 0, 0)));
        assert!(!f.matches(&group("a", "APP_GROUP", 0, 0)));
    }

    #[test]
    fn rejects_what_okta_rejects() {
        for bad in [
            "",
            "type",
            "type eq",
            "type eq OKTA_GROUP",
            r#"type eq "OKTA_GROUP"#,
            r#"type gt "OKTA_GROUP""#,
            r#"Type eq "OKTA_GROUP""#,
            r#"profile.name eq "x""#,
            r#"lastMembershipUpdated gt "2024-01-01""#,
            r#"lastMembershipUpdated sw "2024-01-01T00:00:00.000Z""#,
            r#"(type eq "OKTA_GROUP""#,
            r#"type eq "OKTA_GROUP")"#,
            r#"type eq "OKTA_GROUP" and"#,
            r#"type eq "OKTA_GROUP" xor id eq "a""#,
        ] {
            assert!(GroupFilter::parse_filter(bad).is_err(), "accepted {bad:?}");
        }
    }

    fn user(id: &str, status: &str, last_updated: i64) -> OktaUser {
        let mut profile = serde_json::Map::new();
        profile.insert("login".into(), format!("{id}@example.test").into());
        profile.insert("email".into(), format!("{id}@example.test").into());
        profile.insert("firstName".into(), "Ana".into());
        OktaUser {
            id: id.into(),
            status: status.into(),
            profile,
            last_updated,
            ..OktaUser::default()
        }
    }

    fn user_ok(filter: &str) -> UserFilter {
        UserFilter::parse(filter).expect(filter)
    }

    #[test]
    fn user_filters_match_status_profile_and_dates() {
        let u = user("a", "ACTIVE", JAN1 + 1);
        assert!(user_ok(r#"status eq "ACTIVE""#).matches(&u));
        assert!(
            !user_ok(r#"status eq "active""#).matches(&u),
            "values are case-sensitive"
        );
        assert!(user_ok(r#"profile.email eq "a@example.test""#).matches(&u));
        assert!(user_ok(r#"profile.login EQ "a@example.test""#).matches(&u));
        assert!(user_ok(r#"profile.firstName eq "Ana""#).matches(&u));
        assert!(
            !user_ok(r#"profile.lastName eq "Ana""#).matches(&u),
            "absent"
        );
        assert!(user_ok(r#"id eq "a""#).matches(&u));
        assert!(user_ok(r#"lastUpdated gt "2024-01-01T00:00:00.000Z""#).matches(&u));
        assert!(user_ok(r#"lastUpdated gt "2024-01-01T00:00:00.999Z""#).matches(&u));
        assert!(!user_ok(r#"lastUpdated gt "2024-01-01T00:00:01Z""#).matches(&u));
        assert!(user_ok(r#"lastUpdated ge "2024-01-01T00:00:01Z""#).matches(&u));
        assert!(user_ok(r#"lastUpdated le "2024-01-01T00:00:01Z""#).matches(&u));
        assert!(user_ok(r#"lastUpdated lt "2024-01-01T00:00:02.000Z""#).matches(&u));
        assert!(user_ok(r#"lastUpdated eq "2024-01-01T00:00:01.000Z""#).matches(&u));
        let f = user_ok(
            r#"(status eq "ACTIVE" or status eq "DEPROVISIONED") and lastUpdated gt "2024-01-01T00:00:00.000Z""#,
        );
        assert!(f.matches(&u));
        assert!(f.matches(&user("b", "DEPROVISIONED", JAN1 + 1)));
        assert!(!f.matches(&user("c", "SUSPENDED", JAN1 + 1)));
        assert!(!f.matches(&user("d", "ACTIVE", JAN1)));
    }

    #[test]
    fn user_filters_know_whether_they_name_status() {
        assert!(user_ok(r#"status eq "ACTIVE""#).names_status());
        assert!(
            user_ok(r#"lastUpdated gt "2024-01-01T00:00:00Z" and (id eq "a" or status eq "X")"#)
                .names_status()
        );
        assert!(!user_ok(r#"lastUpdated gt "2024-01-01T00:00:00Z""#).names_status());
        assert!(!user_ok(r#"profile.login eq "status""#).names_status());
    }

    #[test]
    fn user_filters_reject_what_okta_rejects() {
        for bad in [
            "",
            r#"status sw "A""#,
            r#"profile.login co "a""#,
            r#"status gt "A""#,
            r#"profile.email lt "a""#,
            r#"lastUpdated sw "2024-01-01T00:00:00Z""#,
            r#"lastUpdated gt "2024-01-01""#,
            r#"created gt "2024-01-01T00:00:00Z""#,
            r#"type eq "OKTA_GROUP""#,
            r#"profile.department eq "x""#,
            r#"not status eq "ACTIVE""#,
            r#"status eq "ACTIVE" or"#,
            r#"status ne "ACTIVE""#,
        ] {
            assert!(UserFilter::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn search_accepts_profile_attributes() {
        let f = GroupFilter::parse_search(
            r#"profile.name sw "NAME-" and created lt "2024-01-01T00:00:00.000Z""#,
        )
        .expect("valid search");
        assert!(f.matches(&group("a", "OKTA_GROUP", 0, 0)));
        assert!(
            GroupFilter::parse_search(r#"profile.name co "me-a""#)
                .expect("valid")
                .matches(&group("a", "OKTA_GROUP", 0, 0))
        );
    }
}

//! Okta's group `filter` (and a minimal `search`) expression language: parse once, then match groups.
//!
//! Grammar (operators and keywords case-insensitive, attribute names case-sensitive, values in
//! double quotes): `expr := and ("or" and)*`, `and := unary ("and" unary)*`,
//! `unary := "not" unary | "(" expr ")" | ATTR OP "value"`.
//! `filter` allows `id`, `type` (`eq` only) and `lastUpdated`, `lastMembershipUpdated`
//! (`eq gt ge lt le`, dates `YYYY-MM-DDTHH:MM:SS[.sss]Z`). `search` additionally allows `created`,
//! `profile.name` and `profile.description`, and `sw` / `co` on string attributes.

use std::fmt;

use crate::okta::OktaGroup;
use crate::timefmt::parse_iso_millis;

/// A parsed group filter or search expression.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupFilter(Expr);

/// Why an expression was rejected; the emulator answers 400 `E0000031`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Str {
        attr: StrAttr,
        op: Op,
        value: String,
    },
    Date {
        attr: DateAttr,
        op: Op,
        millis: i64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StrAttr {
    Id,
    Type,
    Name,
    Description,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DateAttr {
    Created,
    LastUpdated,
    LastMembershipUpdated,
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

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Token {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

/// Which parameter the expression came from; `search` accepts more attributes and operators.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Filter,
    Search,
}

impl GroupFilter {
    /// Parses a `filter=` expression (`id`, `type`, `lastUpdated`, `lastMembershipUpdated`).
    pub fn parse_filter(input: &str) -> Result<GroupFilter, FilterError> {
        Parser::new(input, Mode::Filter)?
            .parse_all()
            .map(GroupFilter)
    }

    /// Parses a `search=` expression: the filter attributes plus `created`, `profile.name`,
    /// `profile.description`, and `sw` / `co`.
    pub fn parse_search(input: &str) -> Result<GroupFilter, FilterError> {
        Parser::new(input, Mode::Search)?
            .parse_all()
            .map(GroupFilter)
    }

    /// Whether `group` satisfies the expression.
    pub fn matches(&self, group: &OktaGroup) -> bool {
        self.0.matches(group)
    }
}

impl Expr {
    fn matches(&self, g: &OktaGroup) -> bool {
        match self {
            Expr::And(a, b) => a.matches(g) && b.matches(g),
            Expr::Or(a, b) => a.matches(g) || b.matches(g),
            Expr::Not(e) => !e.matches(g),
            Expr::Str { attr, op, value } => {
                let actual = match attr {
                    StrAttr::Id => Some(g.id.as_str()),
                    StrAttr::Type => Some(g.group_type.as_str()),
                    StrAttr::Name => Some(g.name.as_str()),
                    StrAttr::Description => g.description.as_deref(),
                };
                let Some(actual) = actual else { return false };
                match op {
                    Op::Eq => actual == value,
                    Op::Sw => actual.to_lowercase().starts_with(&value.to_lowercase()),
                    Op::Co => actual.to_lowercase().contains(&value.to_lowercase()),
                    Op::Gt | Op::Ge | Op::Lt | Op::Le => false,
                }
            }
            Expr::Date { attr, op, millis } => {
                let secs = match attr {
                    DateAttr::Created => g.created,
                    DateAttr::LastUpdated => g.last_updated,
                    DateAttr::LastMembershipUpdated => g.last_membership_updated,
                };
                let actual = secs.saturating_mul(1000);
                match op {
                    Op::Eq => actual == *millis,
                    Op::Gt => actual > *millis,
                    Op::Ge => actual >= *millis,
                    Op::Lt => actual < *millis,
                    Op::Le => actual <= *millis,
                    Op::Sw | Op::Co => false,
                }
            }
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

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    mode: Mode,
}

impl Parser {
    fn new(input: &str, mode: Mode) -> Result<Parser, FilterError> {
        Ok(Parser {
            tokens: tokenize(input)?,
            pos: 0,
            mode,
        })
    }

    fn parse_all(mut self) -> Result<Expr, FilterError> {
        if self.tokens.is_empty() {
            return Err(FilterError("empty expression".into()));
        }
        let expr = self.or_expr()?;
        match self.tokens.get(self.pos) {
            None => Ok(expr),
            Some(t) => Err(FilterError(format!("unexpected {t:?}"))),
        }
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and_expr()?;
        while self.peek_keyword("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and_expr()?));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.peek_keyword("not") {
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

    fn comparison(&mut self, attr: &str) -> Result<Expr, FilterError> {
        let op = match self.next() {
            Some(Token::Word(op)) => match op.to_ascii_lowercase().as_str() {
                "eq" => Op::Eq,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                "sw" if self.mode == Mode::Search => Op::Sw,
                "co" if self.mode == Mode::Search => Op::Co,
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
        let search = self.mode == Mode::Search;
        let str_attr = match attr {
            "id" => Some(StrAttr::Id),
            "type" => Some(StrAttr::Type),
            "profile.name" if search => Some(StrAttr::Name),
            "profile.description" if search => Some(StrAttr::Description),
            _ => None,
        };
        if let Some(attr) = str_attr {
            let allowed = op == Op::Eq || (search && matches!(op, Op::Sw | Op::Co));
            if !allowed {
                return Err(FilterError(format!("operator not supported for {attr:?}")));
            }
            return Ok(Expr::Str { attr, op, value });
        }
        let date_attr = match attr {
            "lastUpdated" => DateAttr::LastUpdated,
            "lastMembershipUpdated" => DateAttr::LastMembershipUpdated,
            "created" if search => DateAttr::Created,
            _ => return Err(FilterError(format!("unsupported attribute {attr:?}"))),
        };
        if matches!(op, Op::Sw | Op::Co) {
            return Err(FilterError("sw/co on a date".into()));
        }
        let millis = parse_iso_millis(&value)
            .ok_or_else(|| FilterError(format!("invalid date {value:?}")))?;
        Ok(Expr::Date {
            attr: date_attr,
            op,
            millis,
        })
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
            last_membership_updated: membership_updated,
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

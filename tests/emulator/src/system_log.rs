//! The emulated System Log: the events [`crate::OktaOrg`]'s mutators append, and the query
//! semantics of `GET /api/v1/logs` (polling and bounded mode, `filter`, `limit`, cursors).
//!
//! Eventual consistency is modelled per event: an event is *published* when the change happens
//! and becomes visible (is *persisted*) `lag` (+ up to `lag_jitter`) later. Polling mode returns
//! events in persistence order, so with a lag, persistence order can differ from `published`
//! order, as Okta warns. The polling cursor is the (persistence millis, sequence) pair of the
//! last event read, rendered as Okta's `1627500044869_1` form; an event that is not yet visible
//! when a page is served is always persisted after that page's cursor, so a client that follows
//! the `next` links sees every event exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rand::Rng;
use serde_json::{Value, json};

use crate::okta_filter::Token;
use crate::timefmt::{epoch_millis, okta_date_millis, parse_iso_millis};

/// Who every emulated change is made by.
pub const ACTOR_ID: &str = "00uEMUADMIN000000001";
/// Okta's retention; also the default `since` window of a query is 7 days.
const DEFAULT_SINCE: Duration = Duration::from_secs(7 * 24 * 3600);
/// `limit` when none is sent.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;

/// One stored System Log event.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEvent {
    /// Order of recording, from 1.
    pub seq: u64,
    /// `uuid` (absent for raw events without one).
    pub uuid: String,
    /// `eventType` (empty for raw events without one).
    pub event_type: String,
    /// When the change happened (epoch millis), as `published` shows.
    pub published_ms: i64,
    /// When the event becomes visible to queries (epoch millis).
    pub visible_ms: i64,
    /// The event as served.
    pub body: Value,
}

/// The org's System Log. Records nothing until `recording` is set (the emulator sets it when it
/// starts, so the seeding of an org is not logged, unless [`crate::OktaOptions::system_log`] is
/// off).
#[derive(Clone, Debug, Default)]
pub struct SystemLog {
    /// Whether mutators append events.
    pub recording: bool,
    /// Delay between an event's `published` and when queries see it.
    pub lag: Duration,
    /// A random extra delay in `[0, lag_jitter]` per event, so events become visible out of
    /// `published` order.
    pub lag_jitter: Duration,
    /// By (visible millis, seq): persistence order.
    events: BTreeMap<(i64, u64), LogEvent>,
    next_seq: u64,
}

/// A target of an event: `{"id", "type", "alternateId", "displayName", "detailEntry"}`.
pub(crate) fn target(id: &str, kind: &str, alternate_id: &str, display_name: &str) -> Value {
    json!({
        "id": id,
        "type": kind,
        "alternateId": alternate_id,
        "displayName": display_name,
        "detailEntry": Value::Null,
    })
}

impl SystemLog {
    /// Appends an event of `event_type` about `targets`, published now (if recording).
    pub fn record(
        &mut self,
        event_type: &str,
        display_message: &str,
        targets: Vec<Value>,
        request_uri: &str,
    ) {
        if !self.recording {
            return;
        }
        let now = epoch_millis(SystemTime::now());
        let uuid = uuid_v4();
        let transaction = random_hex(20);
        let body = json!({
            "actor": {
                "id": ACTOR_ID,
                "type": "User",
                "alternateId": "admin@example.test",
                "displayName": "Emulator Admin",
                "detailEntry": Value::Null,
            },
            "client": {
                "userAgent": { "rawUserAgent": "q-group-sync-emulator", "os": "Unknown", "browser": "UNKNOWN" },
                "zone": "null",
                "device": "Unknown",
                "id": Value::Null,
                "ipAddress": "127.0.0.1",
                "geographicalContext": Value::Null,
            },
            "authenticationContext": {
                "authenticationProvider": Value::Null,
                "credentialProvider": Value::Null,
                "credentialType": Value::Null,
                "issuer": Value::Null,
                "interface": Value::Null,
                "authenticationStep": 0,
                "externalSessionId": "trs-emulator",
            },
            "displayMessage": display_message,
            "eventType": event_type,
            "outcome": { "result": "SUCCESS", "reason": Value::Null },
            "published": okta_date_millis(now),
            "securityContext": {
                "asNumber": Value::Null, "asOrg": Value::Null, "isp": Value::Null,
                "domain": Value::Null, "isProxy": Value::Null,
            },
            "severity": "INFO",
            "debugContext": {
                "debugData": {
                    "requestId": transaction,
                    "requestUri": request_uri,
                    "url": request_uri,
                }
            },
            "legacyEventType": Value::Null,
            "transaction": { "type": "WEB", "id": transaction, "detail": {} },
            "uuid": uuid,
            "version": "0",
            "request": { "ipChain": [] },
            "target": targets,
        });
        self.insert(now, body);
    }

    /// Appends `body` verbatim as an event published now (if recording), e.g. a malformed one.
    pub fn append_raw(&mut self, body: Value) {
        if self.recording {
            self.insert(epoch_millis(SystemTime::now()), body);
        }
    }

    fn insert(&mut self, published_ms: i64, body: Value) {
        self.next_seq += 1;
        let seq = self.next_seq;
        let mut lag = self.lag;
        if !self.lag_jitter.is_zero() {
            let max = u64::try_from(self.lag_jitter.as_millis()).unwrap_or(u64::MAX);
            lag += Duration::from_millis(rand::rng().random_range(0..=max));
        }
        let visible_ms = published_ms + i64::try_from(lag.as_millis()).unwrap_or(i64::MAX / 2);
        let text = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let event = LogEvent {
            seq,
            uuid: text("uuid"),
            event_type: text("eventType"),
            published_ms,
            visible_ms,
            body,
        };
        self.events.insert((visible_ms, seq), event);
    }

    /// Every event recorded, in recording order (visible or not).
    pub fn events(&self) -> Vec<&LogEvent> {
        let mut all: Vec<&LogEvent> = self.events.values().collect();
        all.sort_by_key(|e| e.seq);
        all
    }

    /// Number of events recorded.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Forgets every event (the sequence keeps counting).
    pub fn clear(&mut self) {
        self.events.clear();
    }
}

/// A System Log query error: 400 with this code and summary.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct QueryError {
    pub code: &'static str,
    pub summary: String,
}

fn invalid(summary: impl Into<String>) -> QueryError {
    QueryError {
        code: "E0000053",
        summary: summary.into(),
    }
}

/// A parsed `GET /api/v1/logs` request.
#[derive(Debug)]
pub(crate) struct LogQuery {
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    after: Option<(i64, u64)>,
    /// Bounded mode: the `since` a cursor carries (its next links cannot repeat `since`).
    after_since: Option<i64>,
    filter: Option<Expr>,
    filter_text: Option<String>,
    limit: usize,
    descending: bool,
}

/// One page of a query: the events and the `next` cursor (always `Some` in polling mode).
pub(crate) struct LogPage {
    pub events: Vec<Value>,
    pub next_after: Option<String>,
    /// The parameters the `self` and `next` links repeat (`after` is added to `next`).
    pub link_params: Vec<(&'static str, String)>,
}

impl LogQuery {
    /// Validates the query parameters as Okta does.
    pub(crate) fn parse(params: &BTreeMap<String, String>) -> Result<LogQuery, QueryError> {
        let date = |key: &str| -> Result<Option<i64>, QueryError> {
            params
                .get(key)
                .map(|v| {
                    parse_iso_millis(v).ok_or_else(|| QueryError {
                        code: "E0000030",
                        summary: format!(
                            "Invalid date. Dates must be of the form yyyy-MM-dd'T'HH:mm:ss.SSSZZ, e.g. 2013-01-01T12:00:00.000-07:00. ({key})"
                        ),
                    })
                })
                .transpose()
        };
        let since_ms = date("since")?;
        let until_ms = date("until")?;
        if let (Some(since), Some(until)) = (since_ms, until_ms)
            && since > until
        {
            return Err(invalid("Invalid parameters: since must be before until."));
        }
        let (after, after_since) = match params.get("after") {
            None => (None, None),
            Some(_) if since_ms.is_some() => {
                return Err(invalid(
                    "Invalid parameters: after cannot be combined with since.",
                ));
            }
            Some(raw) => {
                let (key, since) = parse_cursor(raw).ok_or_else(|| {
                    invalid(format!(
                        "Invalid parameters: after ({raw}) is not a cursor."
                    ))
                })?;
                (Some(key), since)
            }
        };
        let limit = match params.get("limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if n <= MAX_LIMIT => n,
                _ => {
                    return Err(invalid(format!(
                        "Invalid parameters: limit ({raw}) must be between 0 and {MAX_LIMIT}."
                    )));
                }
            },
        };
        let descending = match params.get("sortOrder").map(String::as_str) {
            None | Some("ASCENDING") => false,
            Some("DESCENDING") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "Invalid parameters: sortOrder ({other}) must be ASCENDING or DESCENDING."
                )));
            }
        };
        let filter = params.get("filter").map(|f| parse_filter(f)).transpose()?;
        Ok(LogQuery {
            since_ms,
            until_ms,
            after,
            after_since,
            filter,
            filter_text: params.get("filter").cloned(),
            limit,
            descending,
        })
    }

    /// Polling mode: no `until` and ascending order.
    fn polling(&self) -> bool {
        self.until_ms.is_none() && !self.descending
    }

    /// Runs the query against `log` at `now_ms`.
    pub(crate) fn run(&self, log: &SystemLog, now_ms: i64) -> LogPage {
        let matches = |e: &LogEvent| self.filter.as_ref().is_none_or(|f| f.matches(&e.body));
        let default_since = now_ms - i64::try_from(DEFAULT_SINCE.as_millis()).unwrap_or(0);
        let mut link_params = vec![("limit", self.limit.to_string())];
        if let Some(filter) = &self.filter_text {
            link_params.push(("filter", filter.clone()));
        }
        if self.polling() {
            link_params.push(("sortOrder", "ASCENDING".to_owned()));
            // `since` is compared with persistence time in polling mode.
            let start = self
                .after
                .unwrap_or((self.since_ms.unwrap_or(default_since), 0));
            let visible = log
                .events
                .range((std::ops::Bound::Excluded(start), std::ops::Bound::Unbounded))
                .take_while(|((visible, _), _)| *visible <= now_ms);
            let mut events = Vec::new();
            let mut cursor = start;
            for (key, event) in visible {
                if events.len() == self.limit {
                    break;
                }
                // Past every event scanned, matching or not.
                cursor = *key;
                if matches(event) {
                    events.push(event.body.clone());
                }
            }
            return LogPage {
                events,
                next_after: Some(format_cursor(cursor)),
                link_params,
            };
        }
        // Bounded mode: by `published`, finite pages.
        // `until` is exclusive; by default it is now, including this very millisecond.
        let until = self.until_ms.unwrap_or(now_ms + 1);
        let since = self
            .since_ms
            .or(self.after_since)
            .unwrap_or(until - (now_ms - default_since));
        link_params.push((
            "sortOrder",
            if self.descending {
                "DESCENDING"
            } else {
                "ASCENDING"
            }
            .to_owned(),
        ));
        link_params.push(("until", okta_date_millis(until)));
        let mut all: Vec<&LogEvent> = log
            .events
            .values()
            .filter(|e| e.visible_ms <= now_ms)
            .filter(|e| e.published_ms >= since && e.published_ms < until)
            .filter(|e| matches(e))
            .collect();
        all.sort_by_key(|e| (e.published_ms, e.seq));
        if self.descending {
            all.reverse();
        }
        let key = |e: &LogEvent| (e.published_ms, e.seq);
        let start = match self.after {
            None => 0,
            Some(after) if self.descending => all.partition_point(|e| key(e) >= after),
            Some(after) => all.partition_point(|e| key(e) <= after),
        };
        let end = start.saturating_add(self.limit).min(all.len());
        let page = &all[start..end];
        let next_after = match page.last() {
            Some(last) if end < all.len() => Some(format!("{}_{since}", format_cursor(key(last)))),
            _ => None,
        };
        LogPage {
            events: page.iter().map(|e| e.body.clone()).collect(),
            next_after,
            link_params,
        }
    }
}

fn format_cursor((millis, seq): (i64, u64)) -> String {
    format!("{millis}_{seq}")
}

/// `millis_seq` (polling), or `millis_seq_since` (bounded mode, which carries its `since`).
fn parse_cursor(raw: &str) -> Option<((i64, u64), Option<i64>)> {
    let mut parts = raw.split('_');
    let millis = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let since = parts.next().map(str::parse).transpose().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(((millis, seq), since))
}

// ---------------------------------------------------------------------------------------------
// Filter: SCIM-style expressions over event attributes (`published` is refused)
// ---------------------------------------------------------------------------------------------

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Cmp { path: String, op: Op, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Sw,
    Co,
}

impl Expr {
    fn matches(&self, event: &Value) -> bool {
        match self {
            Expr::Or(a, b) => a.matches(event) || b.matches(event),
            Expr::And(a, b) => a.matches(event) && b.matches(event),
            Expr::Cmp { path, op, value } => {
                let mut found = Vec::new();
                lookup(event, &path.split('.').collect::<Vec<_>>(), &mut found);
                let hit = |s: &str| match op {
                    Op::Eq | Op::Ne => s == value,
                    Op::Sw => s.starts_with(value.as_str()),
                    Op::Co => s.contains(value.as_str()),
                };
                let any = found.iter().any(|s| hit(s));
                if *op == Op::Ne { !any } else { any }
            }
        }
    }
}

/// Every string at `path` in `value`; arrays on the way (e.g. `target`) match any element.
fn lookup<'a>(value: &'a Value, path: &[&str], out: &mut Vec<&'a str>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| lookup(v, path, out)),
        _ => match path.split_first() {
            None => {
                if let Some(s) = value.as_str() {
                    out.push(s);
                }
            }
            Some((key, rest)) => {
                if let Some(v) = value.get(*key) {
                    lookup(v, rest, out);
                }
            }
        },
    }
}

/// The same lexical rules as the groups filter (`okta_filter`).
fn tokenize(s: &str) -> Result<Vec<Token>, QueryError> {
    crate::okta_filter::tokenize(s).map_err(|e| invalid(format!("Invalid filter: {e}.")))
}

/// Parses a System Log filter; `published` may not appear in it.
fn parse_filter(text: &str) -> Result<Expr, QueryError> {
    let tokens = tokenize(text)?;
    let mut pos = 0;
    let expr = parse_or(&tokens, &mut pos)?;
    if pos != tokens.len() {
        return Err(invalid(format!(
            "Invalid filter: unexpected input at token {}.",
            pos + 1
        )));
    }
    Ok(expr)
}

fn keyword(tokens: &[Token], pos: usize, word: &str) -> bool {
    matches!(tokens.get(pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

fn parse_or(tokens: &[Token], pos: &mut usize) -> Result<Expr, QueryError> {
    let mut left = parse_and(tokens, pos)?;
    while keyword(tokens, *pos, "or") {
        *pos += 1;
        let right = parse_and(tokens, pos)?;
        left = Expr::Or(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_and(tokens: &[Token], pos: &mut usize) -> Result<Expr, QueryError> {
    let mut left = parse_term(tokens, pos)?;
    while keyword(tokens, *pos, "and") {
        *pos += 1;
        let right = parse_term(tokens, pos)?;
        left = Expr::And(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_term(tokens: &[Token], pos: &mut usize) -> Result<Expr, QueryError> {
    if tokens.get(*pos) == Some(&Token::Open) {
        *pos += 1;
        let inner = parse_or(tokens, pos)?;
        if tokens.get(*pos) != Some(&Token::Close) {
            return Err(invalid("Invalid filter: missing ')'."));
        }
        *pos += 1;
        return Ok(inner);
    }
    let (Some(Token::Word(path)), Some(Token::Word(op)), Some(Token::Quoted(value))) =
        (tokens.get(*pos), tokens.get(*pos + 1), tokens.get(*pos + 2))
    else {
        return Err(invalid(
            "Invalid filter: expected <attribute> <operator> \"<value>\".",
        ));
    };
    if path == "published" || path.starts_with("published.") {
        return Err(invalid(
            "Invalid filter: published cannot be used in a filter; use since and until.",
        ));
    }
    let op = match op.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "sw" => Op::Sw,
        "co" => Op::Co,
        other => {
            return Err(invalid(format!(
                "Invalid filter: unknown operator {other}."
            )));
        }
    };
    *pos += 3;
    Ok(Expr::Cmp {
        path: path.clone(),
        op,
        value: value.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------

fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A random RFC 4122 version-4 UUID, as Okta's event `uuid`s are.
fn uuid_v4() -> String {
    let hex = random_hex(32);
    let variant = ['8', '9', 'a', 'b'][rand::rng().random_range(0..4)];
    format!(
        "{}-{}-4{}-{}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        variant,
        &hex[17..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn log_with(types: &[&str]) -> SystemLog {
        let mut log = SystemLog {
            recording: true,
            ..SystemLog::default()
        };
        for t in types {
            log.record(
                t,
                "x",
                vec![target("00g1", "UserGroup", "unknown", "G")],
                "/",
            );
        }
        log
    }

    fn types(page: &LogPage) -> Vec<&str> {
        page.events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap_or_default())
            .collect()
    }

    fn now() -> i64 {
        epoch_millis(SystemTime::now())
    }

    #[test]
    fn nothing_is_recorded_until_recording() {
        let mut log = SystemLog::default();
        log.record("group.lifecycle.create", "x", vec![], "/");
        log.append_raw(json!({}));
        assert!(log.is_empty());
    }

    #[test]
    fn events_have_the_documented_shape() {
        let log = log_with(&["group.user_membership.add"]);
        let e = &log.events()[0].body;
        assert_eq!(e["eventType"], "group.user_membership.add");
        assert_eq!(e["outcome"]["result"], "SUCCESS");
        assert_eq!(e["target"][0]["type"], "UserGroup");
        let uuid = e["uuid"].as_str().unwrap_or_default();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        let published = e["published"].as_str().unwrap_or_default();
        assert!(parse_iso_millis(published).is_some(), "{published}");
        assert_eq!(published.len(), "2024-01-01T00:00:00.000Z".len());
        assert!(e["transaction"]["id"].is_string());
        assert!(e["debugContext"]["debugData"]["requestUri"].is_string());
    }

    #[test]
    fn polling_pages_follow_the_cursor_and_never_end() {
        let mut log = log_with(&["a.one", "a.two", "a.three"]);
        let q = LogQuery::parse(&params(&[("limit", "2")])).expect("valid");
        let page = q.run(&log, now());
        assert_eq!(types(&page), ["a.one", "a.two"]);
        let after = page.next_after.expect("next");
        let q = LogQuery::parse(&params(&[("limit", "2"), ("after", &after)])).expect("valid");
        let page = q.run(&log, now());
        assert_eq!(types(&page), ["a.three"]);
        let after = page.next_after.expect("next even on a short page");
        let q = LogQuery::parse(&params(&[("limit", "2"), ("after", &after)])).expect("valid");
        let page = q.run(&log, now());
        assert!(page.events.is_empty());
        let empty_after = page.next_after.expect("next even on an empty page");
        assert_eq!(empty_after, after, "an empty page keeps the cursor");
        log.record("a.four", "x", vec![], "/");
        let q = LogQuery::parse(&params(&[("after", &empty_after)])).expect("valid");
        assert_eq!(types(&q.run(&log, now())), ["a.four"]);
    }

    #[test]
    fn late_events_come_after_the_cursor_in_persistence_order() {
        let mut log = log_with(&[]);
        log.lag = Duration::from_secs(3600);
        log.record("late", "x", vec![], "/");
        log.lag = Duration::ZERO;
        log.record("prompt", "x", vec![], "/");
        let q = LogQuery::parse(&params(&[])).expect("valid");
        let page = q.run(&log, now());
        assert_eq!(types(&page), ["prompt"]);
        let after = page.next_after.expect("next");
        let q = LogQuery::parse(&params(&[("after", &after)])).expect("valid");
        assert!(q.run(&log, now()).events.is_empty());
        let page = q.run(&log, now() + 3_600_001);
        assert_eq!(types(&page), ["late"]);
        let late = &log.events()[0];
        let prompt = &log.events()[1];
        assert!(late.published_ms <= prompt.published_ms);
    }

    #[test]
    fn filters_match_eq_sw_co_and_paths() {
        let log = log_with(&[
            "group.user_membership.add",
            "user.lifecycle.deactivate",
            "user.session.start",
            "group.lifecycle.create",
        ]);
        let run = |filter: &str| {
            let q = LogQuery::parse(&params(&[("filter", filter)])).expect(filter);
            let page = q.run(&log, now());
            types(&page)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run(r#"eventType eq "group.user_membership.add" or eventType SW "user.lifecycle.""#),
            ["group.user_membership.add", "user.lifecycle.deactivate"]
        );
        assert_eq!(
            run(r#"(eventType sw "group.") and target.type eq "UserGroup""#),
            ["group.user_membership.add", "group.lifecycle.create"]
        );
        assert_eq!(run(r#"eventType co "session""#), ["user.session.start"]);
        assert_eq!(run(r#"target.id eq "00g2""#), Vec::<String>::new());
    }

    #[test]
    fn bad_parameters_are_refused() {
        for (pairs, code) in [
            (
                vec![("filter", r#"published gt "2024-01-01T00:00:00.000Z""#)],
                "E0000053",
            ),
            (vec![("filter", r#"eventType eq"#)], "E0000053"),
            (vec![("filter", r#"eventType gt "x""#)], "E0000053"),
            (vec![("filter", r#"(eventType eq "x""#)], "E0000053"),
            (vec![("limit", "1001")], "E0000053"),
            (vec![("limit", "-1")], "E0000053"),
            (vec![("sortOrder", "UP")], "E0000053"),
            (vec![("since", "yesterday")], "E0000030"),
            (
                vec![("since", "2024-01-01T00:00:00.000Z"), ("after", "1_1")],
                "E0000053",
            ),
            (vec![("after", "nonsense")], "E0000053"),
            (
                vec![
                    ("since", "2024-01-02T00:00:00.000Z"),
                    ("until", "2024-01-01T00:00:00.000Z"),
                ],
                "E0000053",
            ),
        ] {
            let err = LogQuery::parse(&params(&pairs)).expect_err("refused");
            assert_eq!(err.code, code, "{pairs:?}");
        }
        for limit in ["0", "1000"] {
            LogQuery::parse(&params(&[("limit", limit)])).expect("in range");
        }
    }

    #[test]
    fn limit_zero_returns_nothing_and_keeps_the_cursor() {
        let log = log_with(&["a"]);
        let q = LogQuery::parse(&params(&[("limit", "0"), ("after", "0_0")])).expect("valid");
        let page = q.run(&log, now());
        assert!(page.events.is_empty());
        assert_eq!(page.next_after.as_deref(), Some("0_0"));
    }

    #[test]
    fn bounded_mode_is_finite_and_ordered_by_published() {
        let log = log_with(&["a", "b", "c"]);
        let until = okta_date_millis(now() + 1000);
        let q = LogQuery::parse(&params(&[("until", &until), ("limit", "2")])).expect("valid");
        let page = q.run(&log, now());
        assert_eq!(types(&page), ["a", "b"]);
        let after = page.next_after.expect("more");
        let q = LogQuery::parse(&params(&[
            ("until", &until),
            ("limit", "2"),
            ("after", &after),
        ]))
        .expect("valid");
        let page = q.run(&log, now());
        assert_eq!(types(&page), ["c"]);
        assert!(
            page.next_after.is_none(),
            "the last bounded page has no next"
        );
        let q = LogQuery::parse(&params(&[("sortOrder", "DESCENDING")])).expect("valid");
        assert_eq!(types(&q.run(&log, now())), ["c", "b", "a"]);
    }
}

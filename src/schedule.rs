//! Cron expressions: [`Schedule`], parsed once at config load, and the next fire time (for
//! `/status`).
//!
//! Firing is tokio-cron-scheduler's job; this module only answers "when next?", purely.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses a 6-field (seconds first) cron expression the way the scheduler does.
pub fn parse(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

/// The first fire time strictly after `after`.
pub fn next_fire(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

/// `schedule.cron`, checked: the expression as written, with its seconds field, and parsed.
///
/// Deserializes from the string (a bad expression is a config error naming the key) and
/// serializes back to it as written.
#[derive(Debug, Clone)]
pub struct Schedule {
    written: String,
    with_seconds: String,
    cron: Cron,
    /// Read from the configuration (the file or the environment), not the built-in default.
    configured: bool,
}

impl Schedule {
    /// Parses a UTC cron expression with a seconds field; a 5-field expression gets second 0.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let trimmed = expr.trim();
        let with_seconds = if trimmed.split_whitespace().count() == 5 {
            format!("0 {trimmed}")
        } else {
            trimmed.to_owned()
        };
        let cron = parse(&with_seconds).map_err(|e| {
            format!(
                "{expr:?} is not a cron expression: {e}; write 5 fields (min hour day month weekday, e.g. \"*/15 * * * *\") or 6 with seconds first (\"0 */15 * * * *\")"
            )
        })?;
        // A date that never exists (30 February) parses but never fires. Any expression that
        // fires at all does so within 8 years (29 February comes every 4, with a skip in 2100),
        // counted from a fixed date: the check is the same on every run.
        let from = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default(); // 2000-01-01
        let fires =
            next_fire(&cron, from).is_some_and(|t| t - from < chrono::TimeDelta::days(8 * 366));
        if !fires {
            return Err(format!(
                "{expr:?} never fires (no such date, e.g. 30 February); check the day and month fields"
            ));
        }
        Ok(Schedule {
            written: expr.to_owned(),
            with_seconds,
            cron,
            configured: false,
        })
    }

    /// Whether the expression was configured (`schedule.cron` set), not the built-in default.
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// The expression as configured.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The expression with a seconds field, as the scheduler takes it.
    pub fn with_seconds(&self) -> &str {
        &self.with_seconds
    }

    /// The parsed expression.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }

    /// The first fire time strictly after `after`.
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        next_fire(&self.cron, after)
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.written)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expr = String::deserialize(d)?;
        let mut schedule = Schedule::parse(&expr).map_err(serde::de::Error::custom)?;
        schedule.configured = true;
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_expression_that_never_fires_is_refused() {
        let err = Schedule::parse("0 0 0 30 2 *").expect_err("30 February");
        assert!(err.contains("never fires"), "{err}");
        Schedule::parse("0 0 0 29 2 *").expect("29 February comes in leap years");
        Schedule::parse("0 0 0 1 1 *").expect("once a year");
    }

    #[test]
    fn next_fire_of_every_15_minutes() {
        let cron = parse("0 */15 * * * *").expect("parses");
        let at = Utc
            .with_ymd_and_hms(2026, 11, 26, 3, 14, 59)
            .single()
            .expect("date");
        let next = next_fire(&cron, at).expect("next");
        assert_eq!(
            next,
            Utc.with_ymd_and_hms(2026, 11, 26, 3, 15, 0)
                .single()
                .expect("date")
        );
        assert_eq!(
            next_fire(&cron, next),
            Utc.with_ymd_and_hms(2026, 11, 26, 3, 30, 0).single()
        );
    }

    #[test]
    fn rejects_nonsense_and_five_fields() {
        assert!(parse("every now and then").is_err());
        assert!(
            parse("*/15 * * * *").is_err(),
            "the seconds field is required here"
        );
        assert!(parse("0 61 * * * *").is_err());
    }

    #[test]
    fn only_a_deserialized_expression_counts_as_configured() {
        assert!(
            !Schedule::parse("0 */15 * * * *")
                .expect("parses")
                .configured()
        );
        let s: Schedule = serde_json::from_str(r#""0 */15 * * * *""#).expect("deserializes");
        assert!(s.configured());
    }

    #[test]
    fn schedule_adds_second_zero_to_five_fields_and_keeps_the_text() {
        let s = Schedule::parse("*/15 * * * *").expect("five fields");
        assert_eq!(s.with_seconds(), "0 */15 * * * *");
        assert_eq!(s.as_str(), "*/15 * * * *");
        let err = Schedule::parse("0 61 * * * *").expect_err("bad minute");
        assert!(err.contains("is not a cron expression"), "{err}");
    }
}

//! Cron expressions: parsing (at config load) and the next fire time (for `/status`).
//!
//! Firing is tokio-cron-scheduler's job; this module only answers "when next?", purely.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
}

//! Date helpers shared by both emulators: epoch seconds <-> ISO-8601 (UTC), without a date crate.
//!
//! Only the formats the two wire protocols use are supported.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now (negative times clamp to 0).
pub(crate) fn now_secs() -> i64 {
    epoch_secs(SystemTime::now())
}

/// Whole seconds since the Unix epoch of `t` (times before 1970 clamp to 0).
pub(crate) fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Fractional seconds since the Unix epoch of `t`, as Q Business sends timestamps in JSON bodies.
pub(crate) fn epoch_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Milliseconds since the Unix epoch of `t` (before 1970 clamps to 0).
pub(crate) fn epoch_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `SystemTime` of an epoch-seconds value.
pub(crate) fn from_epoch_secs(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Okta's date format: `2020-05-13T13:29:23.000Z` (second granularity, as recorded).
pub(crate) fn okta_date(epoch_secs: i64) -> String {
    let days = epoch_secs.div_euclid(86_400);
    let rem = epoch_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Okta's date format with milliseconds, as System Log events carry `published`:
/// `2020-05-13T13:29:23.417Z`.
pub(crate) fn okta_date_millis(epoch_millis: i64) -> String {
    let secs = okta_date(epoch_millis.div_euclid(1000));
    let base = secs.strip_suffix(".000Z").unwrap_or(&secs);
    format!("{base}.{:03}Z", epoch_millis.rem_euclid(1000))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into epoch milliseconds.
///
/// Okta filters use `...SS.sssZ` (millis optional); the AWS SDK sends `updatedEarlierThan` as
/// `...SSZ` or with a fraction. Anything else is `None`.
pub(crate) fn parse_iso_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start || end - start > 9 {
            return None;
        }
        let frac = &s[start..end];
        let padded = format!("{frac:0<3}");
        millis = padded[..3].parse::<i64>().ok()?;
        i = end;
    }
    let offset_secs = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6
            && (tz.starts_with('+') || tz.starts_with('-'))
            && tz.as_bytes()[3] == b':' =>
        {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_okta() {
        assert_eq!(okta_date(1_589_376_563), "2020-05-13T13:29:23.000Z");
        assert_eq!(
            okta_date_millis(1_589_376_563_417),
            "2020-05-13T13:29:23.417Z"
        );
        assert_eq!(
            okta_date_millis(1_589_376_563_007),
            "2020-05-13T13:29:23.007Z"
        );
        assert_eq!(
            parse_iso_millis("2020-05-13T13:29:23.417Z"),
            Some(1_589_376_563_417)
        );
        assert_eq!(okta_date(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_the_accepted_shapes() {
        assert_eq!(
            parse_iso_millis("2020-05-13T13:29:23.000Z"),
            Some(1_589_376_563_000)
        );
        assert_eq!(
            parse_iso_millis("2020-05-13T13:29:23Z"),
            Some(1_589_376_563_000)
        );
        assert_eq!(
            parse_iso_millis("2020-05-13T13:29:23.5Z"),
            Some(1_589_376_563_500)
        );
        assert_eq!(
            parse_iso_millis("2020-05-13T15:29:23+02:00"),
            Some(1_589_376_563_000)
        );
        assert_eq!(
            parse_iso_millis("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        for bad in [
            "",
            "2020-05-13",
            "2020-13-13T13:29:23Z",
            "2020-05-13T13:29:23",
            "2020-05-13T13:29:23.Z",
            "yesterday at noon!!!",
        ] {
            assert_eq!(parse_iso_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_dates() {
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_iso_millis(&okta_date(secs)), Some(secs * 1000));
        }
    }
}

//! Okta rate-limit budgeting: pace requests so that this process uses at most its share of each
//! bucket Okta reports, instead of reacting to 429s after the fact.
//!
//! Okta's limits are org-wide and shared by every integration; a sync that drains a bucket
//! starves the others. Each response reports the bucket's `X-Rate-Limit-Limit`, `-Remaining`
//! and `-Reset` (epoch seconds, Okta's clock). From them the budget learns the limit, counts its
//! own requests per window, spreads them evenly (governor) at `share × limit` per window, waits
//! for the reset when its share or the bucket is spent, and slows down after a 429.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::pacing::{Pacer, per_period, until_ready};

/// Okta's rate-limit windows are one minute long; shorter ones (emulators) are learned.
const WINDOW: Duration = Duration::from_secs(60);
/// Requests kept back from a bucket's `Remaining` for everyone else, at the least.
const MIN_RESERVE: u32 = 2;
/// The furthest a reset (or a 429's wait) is believed to be: windows are a minute long.
const MAX_RESET: Duration = Duration::from_secs(3600);
/// After a 429 the pace is multiplied by this, down to `MIN_SLOWDOWN`.
const SLOWDOWN_STEP: f64 = 0.8;
const MIN_SLOWDOWN: f64 = 0.25;

/// The pacer shared by every request of one Okta client.
pub struct Budget {
    share: f64,
    concurrency: u32,
    buckets: Mutex<BTreeMap<&'static str, Bucket>>,
}

/// What is known of one bucket.
struct Bucket {
    /// Learned from `X-Rate-Limit-Limit` (the concurrency form, 0, is ignored).
    limit: Option<u32>,
    remaining: Option<u32>,
    /// The current window's `X-Rate-Limit-Reset` and when that is on our clock.
    window_reset: Option<i64>,
    reset_at: Option<Instant>,
    /// Our requests sent in the current window.
    used: u32,
    /// Nobody sends before this (after a 429).
    paused_until: Option<Instant>,
    slowdown: f64,
    /// The window length, as the longest `Reset - Date` seen (at most a minute).
    window: Option<Duration>,
    /// Paces requests evenly; rebuilt when the allowance or the window changes.
    pacer: Option<((u32, Duration), Arc<Pacer>)>,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            limit: None,
            remaining: None,
            window_reset: None,
            reset_at: None,
            used: 0,
            paused_until: None,
            slowdown: 1.0,
            window: None,
            pacer: None,
        }
    }
}

enum Step {
    Wait(Duration),
    Go(Option<Arc<Pacer>>),
}

impl Budget {
    /// `share` of each bucket (0 < share <= 1); `concurrency` is the request limit in flight.
    pub fn new(share: f64, concurrency: usize) -> Budget {
        Budget {
            share: share.clamp(0.01, 1.0),
            concurrency: u32::try_from(concurrency).unwrap_or(u32::MAX).max(1),
            buckets: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a request to `bucket` fits the budget, and counts it. Returns the time waited.
    pub async fn acquire(&self, bucket: &'static str) -> Duration {
        let started = Instant::now();
        loop {
            let step = {
                let mut buckets = self.lock();
                let b = buckets.entry(bucket).or_default();
                self.next_step(b, Instant::now())
            };
            match step {
                Step::Wait(d) => tokio::time::sleep(d).await,
                Step::Go(pacer) => {
                    if let Some(p) = pacer {
                        until_ready(&p).await;
                    }
                    // The window may have been used up while this request waited on the pacer.
                    let mut buckets = self.lock();
                    let b = buckets.entry(bucket).or_default();
                    if let Step::Wait(_) = self.next_step(b, Instant::now()) {
                        continue;
                    }
                    b.used += 1;
                    if let Some(r) = b.remaining.as_mut() {
                        *r = r.saturating_sub(1);
                    }
                    return started.elapsed();
                }
            }
        }
    }

    /// Our allowance per window for a bucket of `limit`.
    fn allowance(&self, limit: u32, slowdown: f64) -> u32 {
        ((f64::from(limit) * self.share * slowdown).floor() as u32).max(1)
    }

    fn next_step(&self, b: &mut Bucket, now: Instant) -> Step {
        if let Some(until) = b.paused_until {
            if until > now {
                return Step::Wait(until - now);
            }
            b.paused_until = None;
        }
        let window_open = b.reset_at.is_some_and(|r| r > now);
        if !window_open && b.reset_at.is_some() {
            // The window Okta reported has passed: a new one starts with the next answer.
            b.used = 0;
            b.remaining = None;
            b.reset_at = None;
        }
        let Some(limit) = b.limit else {
            return Step::Go(None);
        };
        let allowance = self.allowance(limit, b.slowdown);
        if window_open {
            let until_reset = b.reset_at.map_or(Duration::ZERO, |r| r - now) + jitter();
            if b.used >= allowance {
                return Step::Wait(until_reset);
            }
            let reserve = MIN_RESERVE.max(self.concurrency);
            if b.remaining.is_some_and(|r| r <= reserve) {
                return Step::Wait(until_reset);
            }
        }
        let window = b.window.unwrap_or(WINDOW);
        let pacer = match &b.pacer {
            Some((key, p)) if *key == (allowance, window) => Arc::clone(p),
            _ => {
                let p = Arc::new(pacer(allowance, window, self.concurrency));
                b.pacer = Some(((allowance, window), Arc::clone(&p)));
                p
            }
        };
        Step::Go(Some(pacer))
    }

    /// Learns from a response's rate-limit headers.
    pub fn observe(&self, bucket: &'static str, headers: &HeaderMap) {
        let number = |name: &str| -> Option<i64> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok()?.trim().parse().ok())
                .min()
        };
        let limit = number("x-rate-limit-limit");
        if limit == Some(0) || limit.is_none() {
            return; // the concurrency form of a 429, or no bucket reported
        }
        let (remaining, reset) = (
            number("x-rate-limit-remaining"),
            number("x-rate-limit-reset"),
        );
        let gauge = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        crate::metrics::okta_rate_limit(bucket, gauge(limit), gauge(remaining));
        let date = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        let now = Instant::now();
        let mut buckets = self.lock();
        let b = buckets.entry(bucket).or_default();
        b.limit = limit.and_then(|l| u32::try_from(l).ok());
        let new_window = reset.is_some() && b.window_reset != reset;
        if let Some(reset) = reset {
            if new_window {
                // A new window: only the request that brought this answer counts so far.
                b.window_reset = Some(reset);
                b.used = 1;
            }
            // Okta's own clock (Date) places the reset, so local clock skew does not matter.
            // Both come from the wire: any value, however large or negative, is clamped to
            // [0, MAX_RESET] rather than overflowing.
            let secs = date
                .map_or(WINDOW.as_secs() as i64, |d| reset.saturating_sub(d))
                .clamp(0, MAX_RESET.as_secs() as i64);
            let secs = u64::try_from(secs).unwrap_or(0);
            // Reset and Date are whole seconds: a window is at least one second long.
            let seen = Duration::from_secs(secs.saturating_add(1)).min(WINDOW);
            b.window = Some(b.window.map_or(seen, |w| w.max(seen)));
            let wait = Duration::from_secs(secs) + Duration::from_millis(500);
            b.reset_at = Some(now.checked_add(wait).unwrap_or(now));
        }
        if let Some(r) = remaining.and_then(|r| u32::try_from(r).ok()) {
            // Answers can arrive out of order: within a window the lowest count is the latest.
            b.remaining = Some(if new_window {
                r
            } else {
                b.remaining.map_or(r, |known| known.min(r))
            });
        }
    }

    /// A 429: nobody sends until `wait` has passed, and the pace slows down.
    pub fn throttled(&self, bucket: &'static str, wait: Duration) {
        let mut buckets = self.lock();
        let b = buckets.entry(bucket).or_default();
        let now = Instant::now();
        let until = now.checked_add(wait.min(MAX_RESET)).unwrap_or(now);
        b.paused_until = Some(b.paused_until.map_or(until, |p| p.max(until)));
        b.slowdown = (b.slowdown * SLOWDOWN_STEP).max(MIN_SLOWDOWN);
    }
}

/// `per_window` requests per `window`, evenly, with a burst of at most the concurrency.
fn pacer(per_window: u32, window: Duration, concurrency: u32) -> Pacer {
    let period = window / per_window.max(1);
    let burst = NonZeroU32::new(concurrency.min(per_window).max(1)).unwrap_or(NonZeroU32::MIN);
    per_period(period, burst)
}

/// Up to 250 ms, so that clients released by one reset do not all send at once.
fn jitter() -> Duration {
    Duration::from_millis(rand::random_range(0..250))
}

/// The bucket a request path counts against, as Okta documents its rate limits: listing
/// groups and reading their members (`groups`), the System Log (`logs`), listing users
/// (`users`), one user (`user`) and a user's groups (`user_groups`) are buckets of their own,
/// each paced on its own `X-Rate-Limit-*` headers.
pub fn bucket_of(path: &str) -> &'static str {
    let path = path.trim_end_matches('/');
    if path.starts_with("/api/v1/groups") {
        "groups"
    } else if path.starts_with("/api/v1/logs") {
        "logs"
    } else if path == "/api/v1/users" {
        "users"
    } else if let Some(rest) = path.strip_prefix("/api/v1/users/") {
        match rest.split_once('/') {
            Some((_, "groups")) => "user_groups",
            Some(_) => "other",
            None => "user",
        }
    } else if path.starts_with("/oauth2/") {
        "oauth"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(limit: u32, remaining: u32, reset: i64, date: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-limit", HeaderValue::from(limit));
        h.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
        h.insert("x-rate-limit-reset", HeaderValue::from(reset));
        let date =
            std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(date).expect("positive"));
        h.insert(
            "date",
            HeaderValue::from_str(&httpdate::fmt_http_date(date)).expect("date"),
        );
        h
    }

    #[tokio::test(start_paused = true)]
    async fn uses_at_most_its_share_of_a_window() {
        let budget = Budget::new(0.5, 4);
        assert_eq!(
            budget.acquire("groups").await,
            Duration::ZERO,
            "unknown limit: go"
        );
        budget.observe("groups", &headers(20, 19, 1_000_060, 1_000_000));
        let start = Instant::now();
        // Allowance 10 per window; one is used. Nine more fit before the reset (~60 s away).
        for _ in 0..9 {
            budget.acquire("groups").await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "paced within the window: {:?}",
            start.elapsed()
        );
        budget.acquire("groups").await;
        assert!(
            start.elapsed() >= Duration::from_secs(60),
            "the 11th waits for the reset: {:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn spreads_requests_evenly() {
        let budget = Budget::new(0.5, 1);
        budget.observe("groups", &headers(240, 239, 1_000_060, 1_000_000));
        let start = Instant::now();
        for _ in 0..31 {
            budget.acquire("groups").await;
        }
        // 120 per minute: one every 500 ms after the burst of one.
        let secs = start.elapsed().as_secs_f64();
        assert!((14.0..=16.0).contains(&secs), "{secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_the_bucket_is_nearly_empty_and_after_a_429() {
        let budget = Budget::new(0.5, 4);
        budget.observe("groups", &headers(100, 4, 1_000_030, 1_000_000));
        let start = Instant::now();
        budget.acquire("groups").await;
        assert!(
            start.elapsed() >= Duration::from_secs(30),
            "others used the bucket: wait for the reset"
        );

        let budget = Budget::new(0.5, 4);
        budget.observe("groups", &headers(100, 90, 1_000_060, 1_000_000));
        budget.throttled("groups", Duration::from_secs(5));
        let start = Instant::now();
        budget.acquire("groups").await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn hostile_reset_and_date_values_do_not_overflow() {
        let budget = Budget::new(0.5, 4);
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-limit", HeaderValue::from(100));
        h.insert("x-rate-limit-remaining", HeaderValue::from(90));
        for reset in [i64::MAX, i64::MIN, -1, 0] {
            h.insert("x-rate-limit-reset", HeaderValue::from(reset));
            for date in [
                "Thu, 01 Jan 1970 00:00:00 GMT",
                "Fri, 31 Dec 9999 23:59:59 GMT",
            ] {
                h.insert("date", HeaderValue::from_static(date));
                budget.observe("groups", &h);
            }
            budget.observe("groups", &HeaderMap::new());
        }
        budget.throttled("groups", Duration::MAX);
        // Still usable: the longest wait is bounded.
        let waited = budget.acquire("groups").await;
        assert!(waited <= MAX_RESET + Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn each_bucket_is_paced_on_its_own_figures() {
        let budget = Budget::new(0.5, 4);
        // The users listing is nearly spent; one user and a user's groups are not.
        budget.observe("users", &headers(600, 3, 1_000_060, 1_000_000));
        budget.observe("user", &headers(2000, 1990, 1_000_060, 1_000_000));
        budget.observe("user_groups", &headers(1000, 990, 1_000_060, 1_000_000));
        let start = Instant::now();
        budget.acquire("user").await;
        budget.acquire("user_groups").await;
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not held by users"
        );
        budget.acquire("users").await;
        assert!(
            start.elapsed() >= Duration::from_secs(60),
            "the spent listing bucket waits for its reset"
        );
    }

    #[test]
    fn buckets_by_path() {
        assert_eq!(bucket_of("/api/v1/groups"), "groups");
        assert_eq!(bucket_of("/api/v1/groups/00g1/users"), "groups");
        assert_eq!(bucket_of("/api/v1/logs"), "logs");
        assert_eq!(bucket_of("/api/v1/users"), "users");
        assert_eq!(bucket_of("/api/v1/users/00u1"), "user");
        assert_eq!(bucket_of("/api/v1/users/ana@x.test"), "user");
        assert_eq!(bucket_of("/api/v1/users/00u1/groups"), "user_groups");
        assert_eq!(bucket_of("/oauth2/v1/token"), "oauth");
    }
}

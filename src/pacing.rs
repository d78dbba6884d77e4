//! Pacing on tokio's clock: governor rate limiters shared by the Okta client (its rate-limit
//! budget, [`crate::source::budget`]) and the Q Business sink (`qbusiness.max_writes_per_second`).
//!
//! On tokio's clock, pacing follows `tokio::time`, so paused time in tests paces too.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// governor on tokio's clock, so that pacing follows `tokio::time` (and paused time in tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

/// A tokio instant as a governor reference point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(Instant);

impl std::ops::Add<Nanos> for TokioInstant {
    type Output = TokioInstant;
    fn add(self, other: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(Instant::now())
    }
}

/// A governor rate limiter on tokio's clock.
pub type Pacer = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// A pacer of `per_second` requests per second with a burst of `burst`.
pub fn per_second(per_second: u32, burst: u32) -> Pacer {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct_with_clock(Quota::per_second(rate).allow_burst(burst), TokioClock)
}

/// Waits until `pacer` lets one request through; returns the time waited.
pub async fn until_ready(pacer: &Pacer) -> Duration {
    let started = Instant::now();
    while let Err(not_until) = pacer.check() {
        tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await;
    }
    started.elapsed()
}

/// A pacer of one request per `period`, with a burst of `burst`.
pub fn per_period(period: Duration, burst: NonZeroU32) -> Pacer {
    let quota = Quota::with_period(period.max(Duration::from_micros(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    RateLimiter::direct_with_clock(quota.allow_burst(burst), TokioClock)
}

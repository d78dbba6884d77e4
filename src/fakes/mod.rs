//! In-memory fakes of the three edges, for engine tests: the Okta directory and its System Log
//! (`source`, `feed`), Q Business (`sink`) and the snapshot store (`store`).

use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};

use crate::clock::Clock;

mod feed;
mod scim;
mod sink;
mod source;
mod store;

pub use feed::FakeChangeFeed;
pub use scim::FlakyScim;
pub use sink::{MemAccess, RecordingSink};
pub use source::{MemSource, ReadFault};
pub use store::MemStore;

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fixed clock.
pub struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
            .single()
            .expect("valid date")
    }
}

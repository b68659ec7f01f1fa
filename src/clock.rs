//! The gateway's one wall clock: Unix seconds and milliseconds for token
//! expiry, snapshot freshness, metrics and passive upstream health. Code that
//! must be tested across time takes a [`Clock`] ([`SystemClock`] in
//! production, [`ManualClock`] in tests) instead of reading the time itself.
//! (Durations measured inside one process, such as request latency, use
//! `std::time::Instant`; the local rate limiter counts on a monotonic clock
//! or on a [`ManualClock`].)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn unix_ms(&self) -> i64;

    /// Seconds since the Unix epoch.
    fn unix_secs(&self) -> i64 {
        self.unix_ms().div_euclid(1000)
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that moves only when told to (tests). It counts nanoseconds, so
/// the rate limiter's GCRA maths can run on it too
/// (`ratelimit::Limiter::local_with_clock`).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock showing `unix_ms`.
    pub fn at(unix_ms: i64) -> ManualClock {
        let ms = u64::try_from(unix_ms).unwrap_or(0);
        ManualClock {
            nanos: AtomicU64::new(ms.saturating_mul(1_000_000)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::Relaxed);
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: i64) {
        self.advance(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    }

    /// Nanoseconds since the Unix epoch.
    pub fn nanos(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

impl Clock for ManualClock {
    fn unix_ms(&self) -> i64 {
        i64::try_from(self.nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// Seconds since the Unix epoch, by the system clock (0 before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch, by the system clock (0 before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at(1_500);
        assert_eq!((c.unix_ms(), c.unix_secs()), (1_500, 1));
        c.advance_ms(2_600);
        assert_eq!((c.unix_ms(), c.unix_secs()), (4_100, 4));
    }

    #[test]
    fn system_clock_agrees_with_the_free_functions() {
        let before = unix_now();
        let ms = SystemClock.unix_ms();
        assert!(ms / 1000 >= before && ms / 1000 <= unix_now());
    }
}

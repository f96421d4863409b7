//! Time as an injectable dependency, so every expiry rule is testable without sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in milliseconds since the Unix epoch.
///
/// The default is [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, duration_ms)
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::config::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_700_000_000_000);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now_ms(), 1_700_000_090_000);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `now_ms` milliseconds since the epoch.
    pub fn new(now_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now_ms)))
    }

    /// A clock standing at the system's current time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now_ms())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(duration_ms(by), Ordering::SeqCst);
    }

    /// Sets the clock to `now_ms`.
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Shared handle to a clock.
pub(crate) type SharedClock = Arc<dyn Clock>;

// Units. Inside the crate every instant is milliseconds since the epoch (`u64`), the unit of
// [`Clock`] and the store; every span a `Duration`. Seconds appear only at the wire (JWT
// NumericDates, `X-Token-Expires-In`, cookie `Max-Age`), and the public API speaks
// `SystemTime` / `Duration`. The conversions between them are these few functions.

/// Whole seconds since the epoch (a JWT NumericDate) in milliseconds.
#[inline]
pub(crate) const fn secs_to_ms(secs: u64) -> u64 {
    secs.saturating_mul(1000)
}

/// Milliseconds since the epoch in whole seconds, rounded down (a JWT NumericDate).
#[inline]
pub(crate) const fn ms_to_secs(ms: u64) -> u64 {
    ms / 1000
}

/// A span in milliseconds, saturating at `u64::MAX`.
#[inline]
pub(crate) fn duration_ms(span: Duration) -> u64 {
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the epoch as a `SystemTime`, clamped to 9999-12-31 so that a token
/// claiming an `exp` near `u64::MAX` cannot overflow it.
pub(crate) fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.min(MAX_RFC3339_MS))
}

/// A `SystemTime` in milliseconds since the epoch (0 before the epoch).
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, duration_ms)
}

/// Formats milliseconds since the epoch as an RFC 3339 UTC timestamp with millisecond precision,
/// e.g. `2026-11-28T18:12:59.123Z`.
pub(crate) fn rfc3339(ms: u64) -> String {
    // RFC 3339 ends at year 9999; later instants (a token claiming exp near u64::MAX) clamp.
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.min(MAX_RFC3339_MS));
    humantime::format_rfc3339_millis(at).to_string()
}

/// 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
pub(crate) const MAX_RFC3339_MS: u64 = 253_402_300_799_999;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn unit_conversions_round_trip_and_saturate() {
        assert_eq!(secs_to_ms(1_700_000_000), 1_700_000_000_000);
        assert_eq!(secs_to_ms(u64::MAX), u64::MAX);
        assert_eq!(ms_to_secs(1_700_000_000_999), 1_700_000_000);
        assert_eq!(duration_ms(Duration::MAX), u64::MAX);
        assert_eq!(unix_ms(system_time(1_700_000_000_123)), 1_700_000_000_123);
        assert_eq!(unix_ms(system_time(u64::MAX)), MAX_RFC3339_MS);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[test]
    fn manual_clock_is_shared_between_clones() {
        let a = ManualClock::new(5);
        let b = a.clone();
        a.advance(Duration::from_millis(10));
        assert_eq!(b.now_ms(), 15);
        b.set(1);
        assert_eq!(a.now_ms(), 1);
    }
}

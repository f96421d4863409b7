//! [`RevocationCacheSettings`]: how long and how many "not revoked" answers are kept, and what
//! happens when the store cannot answer.

use std::time::Duration;

/// The in-process cache of revocation answers in front of the store.
///
/// No environment variable sets these; the defaults follow [the protocol](crate::routes#sessions-and-tokens) (a revocation made by
/// another instance is seen within one second; fail closed).
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::config::RevocationCacheSettings;
///
/// let cache = RevocationCacheSettings::default().with_capacity(1_000);
/// assert_eq!(cache.ttl(), Duration::from_secs(1));
/// assert_eq!(cache.capacity(), 1_000);
/// assert!(!cache.fail_open());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RevocationCacheSettings {
    ttl: Duration,
    capacity: u64,
    fail_open: bool,
}

impl Default for RevocationCacheSettings {
    /// 1 second, 100 000 sessions, fail closed.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(1),
            capacity: 100_000,
            fail_open: false,
        }
    }
}

impl RevocationCacheSettings {
    /// How long a "not revoked" answer may be served from the cache before the store is asked
    /// again. This bounds how long a revocation made by *another* instance can go unnoticed
    /// here; revocations made by this process are seen at once. The default is 1 second.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How many sessions the cache holds. The default is 100 000.
    pub fn with_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// When the store cannot be reached and the cache has no answer, let requests with a valid
    /// token through (`true`) instead of answering 503 (`false`). The default is `false` (fail
    /// closed); fail-open means a revoked session may be used while the store is down.
    pub fn with_fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// How long a "not revoked" answer is kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How many sessions the cache holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether requests pass when the store cannot answer.
    pub fn fail_open(&self) -> bool {
        self.fail_open
    }
}

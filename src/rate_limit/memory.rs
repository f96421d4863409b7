//! [`MemoryBackend`]: the in-process rate-limit counters, on moka.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::backend::{BackendError, RateDecision, RateLimitBackend};

/// One key's window: when it started and how many requests it has seen.
#[derive(Debug)]
struct Bucket {
    start_ms: u64,
    /// The window the bucket was made for; moka drops the entry when it has passed.
    window: Duration,
    count: AtomicU64,
}

impl Bucket {
    /// Whether `now_ms` is inside the window that started at `start_ms`. A clock that moved
    /// back stays in the window rather than handing out a fresh budget.
    #[inline]
    fn is_current(&self, now_ms: u64, window_ms: u64) -> bool {
        now_ms < self.start_ms.saturating_add(window_ms)
    }
}

/// Each entry lives until its window ends, so stale keys are reclaimed without a sweep.
struct WindowEnd;

impl Expiry<String, Arc<Bucket>> for WindowEnd {
    fn expire_after_create(
        &self,
        _: &String,
        bucket: &Arc<Bucket>,
        _: Instant,
    ) -> Option<Duration> {
        Some(bucket.window)
    }

    fn expire_after_update(
        &self,
        _: &String,
        bucket: &Arc<Bucket>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(bucket.window)
    }
}

/// The default [`RateLimitBackend`]: fixed-window counters in a bounded moka cache, for one
/// process.
///
/// - **Cost.** A request in a running window is one lock-free cache read and one atomic add:
///   no lock, no allocation, no await. Only the first request of a window takes moka's
///   per-key lock to start a fresh bucket.
/// - **Memory.** Each key expires when its window ends, and the cache holds at most
///   `max_keys` entries (least recently used evicted first), so memory does not grow with the
///   number of distinct clients. Should more than `max_keys` clients be active within one
///   window, the least recently seen lose their count and start over: the limit errs towards
///   letting requests through, never towards refusing them. An entry costs about 150 bytes;
///   the default of [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS) is about 15 MB at most.
/// - **Scope.** Counts are per process. With several instances, use a shared backend.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::rate_limit::{MemoryBackend, RateLimitBackend};
///
/// let backend = MemoryBackend::new(10_000);
/// let window = Duration::from_secs(60);
/// let first = backend.try_hit("203.0.113.7", 0, window, 2).unwrap()?;
/// assert_eq!((first.allowed, first.remaining), (true, 1));
/// backend.try_hit("203.0.113.7", 1_000, window, 2).unwrap()?;
/// let third = backend.try_hit("203.0.113.7", 2_000, window, 2).unwrap()?;
/// assert!(!third.allowed);
/// assert_eq!(third.reset_after, Duration::from_secs(58));
/// # Ok::<(), tower_jwt_session::rate_limit::BackendError>(())
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    cache: Cache<String, Arc<Bucket>>,
}

impl MemoryBackend {
    /// The default bound on tracked keys: 100 000.
    pub const DEFAULT_MAX_KEYS: u64 = crate::config::DEFAULT_MAX_TRACKED_KEYS;

    /// A backend tracking at most `max_keys` clients at a time.
    pub fn new(max_keys: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_keys)
                // LRU, not TinyLFU: a new client must always get a counter. TinyLFU may refuse
                // to admit a key it has rarely seen, and a refused key would never be limited.
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(WindowEnd)
                .build(),
        }
    }

    /// The number of keys held, as of the last maintenance run (see
    /// [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Runs the cache's pending maintenance now: drops expired keys and applies the capacity
    /// bound. It also runs on its own as the cache is used.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    /// Counts a hit and decides, without waiting.
    #[inline]
    pub(crate) fn hit_now(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        max: u32,
    ) -> RateDecision {
        let window_ms = crate::clock::duration_ms(window).max(1);
        let bucket = match self.cache.get(key) {
            Some(bucket) if bucket.is_current(now_ms, window_ms) => bucket,
            _ => self.start_window(key, now_ms, window, window_ms),
        };
        let count = bucket
            .count
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let end = bucket.start_ms.saturating_add(window_ms);
        let reset_after = Duration::from_millis(end.saturating_sub(now_ms).min(window_ms));
        RateDecision::from_count(count, max, reset_after)
    }

    /// Replaces a missing or finished bucket, under moka's per-key lock so that concurrent
    /// first hits agree on one bucket.
    #[cold]
    fn start_window(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        window_ms: u64,
    ) -> Arc<Bucket> {
        let fresh = || {
            Arc::new(Bucket {
                start_ms: now_ms,
                window,
                count: AtomicU64::new(0),
            })
        };
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(entry) if entry.value().is_current(now_ms, window_ms) => Op::Nop,
                _ => Op::Put(fresh()),
            });
        match result.into_entry() {
            Some(entry) => entry.into_value(),
            // Not reachable: the closure either kept an entry or put one.
            None => fresh(),
        }
    }
}

impl Default for MemoryBackend {
    /// [`MemoryBackend::new`] with [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS).
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_KEYS)
    }
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("entries", &self.cache.entry_count())
            .field("max_keys", &self.cache.policy().max_capacity())
            .finish()
    }
}

#[async_trait::async_trait]
impl RateLimitBackend for MemoryBackend {
    async fn hit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        max: u32,
    ) -> Result<RateDecision, BackendError> {
        Ok(self.hit_now(key, now_ms, window, max))
    }

    #[inline]
    fn try_hit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        max: u32,
    ) -> Option<Result<RateDecision, BackendError>> {
        Some(Ok(self.hit_now(key, now_ms, window, max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn counts_within_a_window_and_starts_over_after_it() {
        let b = MemoryBackend::new(100);
        let t0 = 1_800_000_000_000;
        for (i, remaining) in [(0, 2), (1, 1), (2, 0)] {
            let d = b.hit_now("k", t0 + i * 1000, MIN, 3);
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
            assert_eq!(d.reset_after, MIN - Duration::from_secs(i));
        }
        let d = b.hit_now("k", t0 + 59_999, MIN, 3);
        assert!(!d.allowed);
        assert_eq!(d.reset_after, Duration::from_millis(1));
        assert!(b.hit_now("other", t0 + 59_999, MIN, 3).allowed);
        let d = b.hit_now("k", t0 + 60_000, MIN, 3);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 2, MIN));
        // A clock that moves back stays in the current window.
        let d = b.hit_now("k", t0, MIN, 3);
        assert_eq!((d.remaining, d.reset_after), (1, MIN));
    }

    #[test]
    fn concurrent_hits_never_exceed_the_limit() {
        let b = MemoryBackend::new(100);
        let allowed = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..250 {
                        if b.hit_now("k", 1, MIN, 100).allowed {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn memory_is_bounded_and_keys_expire_with_their_window() {
        let b = MemoryBackend::new(500);
        let window = Duration::from_millis(200);
        for i in 0..5_000u32 {
            let key = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            assert!(b.hit_now(&key, 0, window, 10).allowed);
        }
        b.run_pending_tasks();
        let held = b.entry_count();
        assert!(held <= 500, "{held} entries held, bound is 500");
        assert!(held > 0);
        // Entries go when their window has passed (moka's own clock, whose timer wheel works
        // in ticks of about one second), with no further hits.
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.entry_count() != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            b.run_pending_tasks();
        }
        assert_eq!(b.entry_count(), 0);
    }
}

//! [`MemoryAttemptBackend`]: the attempt counts in a bounded moka cache.

use std::fmt;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::{AttemptBackend, AttemptPolicy, AttemptState};
use crate::rate_limit::backend::BackendError;

/// What the memory backend holds per key.
#[derive(Debug, Clone, Copy)]
struct Record {
    window_end_ms: u64,
    count: u32,
    /// Zero when the key has not been locked out in this window.
    locked_until_ms: u64,
    /// How long the entry is needed, from its last write: to the end of its window or its
    /// lock-out, whichever is later.
    keep_for: Duration,
}

impl Record {
    fn fresh(now_ms: u64, window_ms: u64) -> Self {
        Self {
            window_end_ms: now_ms.saturating_add(window_ms),
            count: 0,
            locked_until_ms: 0,
            keep_for: Duration::ZERO,
        }
    }

    /// The record as the next attempt at `now_ms` finds it: a running lock-out as it is; a
    /// fresh window once the window or a lock-out has ended.
    fn current(found: Option<Self>, now_ms: u64, window_ms: u64) -> Self {
        match found {
            Some(r) if r.locked_until_ms > now_ms => r,
            Some(r) if r.locked_until_ms == 0 && now_ms < r.window_end_ms => r,
            _ => Self::fresh(now_ms, window_ms),
        }
    }

    fn kept_from(mut self, now_ms: u64) -> Self {
        let keep_until = self.window_end_ms.max(self.locked_until_ms);
        self.keep_for = Duration::from_millis(keep_until.saturating_sub(now_ms).max(1));
        self
    }
}

struct KeepFor;

impl Expiry<String, Record> for KeepFor {
    fn expire_after_create(&self, _: &String, r: &Record, _: Instant) -> Option<Duration> {
        Some(r.keep_for)
    }

    fn expire_after_update(
        &self,
        _: &String,
        r: &Record,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(r.keep_for)
    }
}

/// The default [`AttemptBackend`]: a bounded moka cache whose entries expire when their window
/// or lock-out ends. Operations on one key are serialised by moka's `and_compute_with`, so a
/// reservation is atomic.
///
/// Bounded by `max_keys` (least recently used evicted first); under a flood of distinct keys
/// the oldest counts are forgotten, which errs towards letting attempts through.
#[derive(Clone)]
pub struct MemoryAttemptBackend {
    cache: Cache<String, Record>,
}

impl MemoryAttemptBackend {
    /// The default bound on tracked keys: 100 000.
    pub const DEFAULT_MAX_KEYS: u64 = crate::config::DEFAULT_MAX_TRACKED_KEYS;

    /// A backend tracking at most `max_keys` keys at a time.
    pub fn new(max_keys: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_keys)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(KeepFor)
                .build(),
        }
    }

    /// The number of keys held, as of the last maintenance run.
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Runs the cache's pending maintenance now (expiry, capacity bound).
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    pub(super) fn reserve_now(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<(), u64> {
        if policy.max_failures == 0 {
            return Ok(());
        }
        let window_ms = millis(policy.window);
        let mut answer = Ok(());
        self.cache.entry_by_ref(key).and_compute_with(|found| {
            let mut r = Record::current(found.map(|e| e.into_value()), now_ms, window_ms);
            if r.locked_until_ms > now_ms {
                answer = Err(r.locked_until_ms);
                return Op::Nop;
            }
            if r.count >= policy.max_failures {
                r.locked_until_ms = now_ms
                    .saturating_add(millis(policy.lockout))
                    .max(now_ms + 1);
                answer = Err(r.locked_until_ms);
            } else {
                r.count += 1;
            }
            Op::Put(r.kept_from(now_ms))
        });
        answer
    }

    pub(super) fn release_now(&self, key: &str, now_ms: u64) {
        self.cache.entry_by_ref(key).and_compute_with(|found| {
            match found.map(|e| e.into_value()) {
                Some(mut r) if r.count > 0 => {
                    r.count -= 1;
                    Op::Put(r.kept_from(now_ms))
                }
                _ => Op::Nop,
            }
        });
    }

    pub(super) fn record_failure_now(&self, key: &str, now_ms: u64, policy: AttemptPolicy) -> u32 {
        let window_ms = millis(policy.window);
        let mut count = 0;
        self.cache.entry_by_ref(key).and_compute_with(|found| {
            let mut r = Record::current(found.map(|e| e.into_value()), now_ms, window_ms);
            r.count = r.count.saturating_add(1);
            count = r.count;
            if policy.max_failures != 0
                && r.count == policy.max_failures
                && r.locked_until_ms <= now_ms
            {
                r.locked_until_ms = now_ms
                    .saturating_add(millis(policy.lockout))
                    .max(now_ms + 1);
            }
            Op::Put(r.kept_from(now_ms))
        });
        count
    }

    pub(super) fn state_now(&self, key: &str, now_ms: u64) -> AttemptState {
        let Some(r) = self.cache.get(key) else {
            return AttemptState::default();
        };
        let locked = r.locked_until_ms > now_ms;
        AttemptState {
            count: if locked || now_ms < r.window_end_ms {
                r.count
            } else {
                0
            },
            locked_until_ms: locked.then_some(r.locked_until_ms),
        }
    }
}

use crate::clock::duration_ms as millis;

impl Default for MemoryAttemptBackend {
    /// [`MemoryAttemptBackend::new`] with
    /// [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS).
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_KEYS)
    }
}

impl fmt::Debug for MemoryAttemptBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryAttemptBackend")
            .field("entries", &self.cache.entry_count())
            .field("max_keys", &self.cache.policy().max_capacity())
            .finish()
    }
}

#[async_trait::async_trait]
impl AttemptBackend for MemoryAttemptBackend {
    async fn reserve(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<Result<(), u64>, BackendError> {
        Ok(self.reserve_now(key, now_ms, policy))
    }

    async fn release(&self, key: &str, now_ms: u64) -> Result<(), BackendError> {
        self.release_now(key, now_ms);
        Ok(())
    }

    async fn record_failure(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<u32, BackendError> {
        Ok(self.record_failure_now(key, now_ms, policy))
    }

    async fn state(&self, key: &str, now_ms: u64) -> Result<AttemptState, BackendError> {
        Ok(self.state_now(key, now_ms))
    }

    async fn clear(&self, key: &str) -> Result<(), BackendError> {
        self.cache.invalidate(key);
        Ok(())
    }
}

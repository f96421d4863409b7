//! [`AttemptBackend`]: where the attempt tracker keeps its counts.

use std::fmt;
use std::time::Duration;

use crate::rate_limit::backend::BackendError;

/// One key's rule: at most `max_failures` attempts within `window`; the one beyond starts a
/// lock-out of `lockout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// Attempts (reserved, or failures recorded) within `window` that exhaust the key. Zero
    /// never locks.
    pub max_failures: u32,
    /// The window attempts are counted in; it starts at a key's first attempt.
    pub window: Duration,
    /// How long a lock-out lasts.
    pub lockout: Duration,
}

/// What a key holds at an instant: see [`AttemptBackend::state`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptState {
    /// Attempts counted in the key's current window (zero when the window has ended).
    pub count: u32,
    /// The end of the key's running lock-out, in milliseconds since the epoch; `None` when it
    /// is not locked out.
    pub locked_until_ms: Option<u64>,
}

/// Where [`AttemptTracker`](super::AttemptTracker) keeps its counts:
/// [`MemoryAttemptBackend`](super::MemoryAttemptBackend) (the default, one process) or a shared
/// store, so a lock-out holds across instances.
///
/// Each key (see [`AttemptTracker`](super::AttemptTracker) for the keys) holds a count within a
/// window and maybe a lock-out. Every operation on one key must be atomic with respect to the
/// others on the same key: [`reserve`](Self::reserve) in particular is a check and an increment
/// in one step, so concurrent reservations never both take the last one. Times are milliseconds
/// since the epoch from the tracker's clock. Object-safe.
#[async_trait::async_trait]
pub trait AttemptBackend: fmt::Debug + Send + Sync + 'static {
    /// Reserves one attempt of `key` under `policy`, atomically:
    ///
    /// - while `key` is locked out: `Ok(Err(locked_until_ms))`, nothing changes;
    /// - when `policy.max_failures` attempts are already counted in the window: a lock-out of
    ///   `policy.lockout` starts now and `Ok(Err(its end))`;
    /// - otherwise the count grows by one (a new window starts when the last one has ended,
    ///   or a lock-out has) and `Ok(Ok(()))`.
    ///
    /// With `policy.max_failures == 0` nothing is counted and the answer is `Ok(Ok(()))`.
    ///
    /// # Errors
    /// When the backend cannot answer; the tracker then lets the attempt through (fail open)
    /// and logs the error.
    async fn reserve(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<Result<(), u64>, BackendError>;

    /// Gives one reservation of `key` back (the attempt succeeded): its count goes down by one,
    /// never below zero. A running lock-out stays; a key that holds nothing stays empty.
    ///
    /// # Errors
    /// When the backend cannot answer; the tracker logs it and carries on.
    async fn release(&self, key: &str, now_ms: u64) -> Result<(), BackendError>;

    /// Counts one failure of `key` that was not reserved, atomically, and returns the count in
    /// the window, this failure included. The failure that brings the count to
    /// `policy.max_failures` starts a lock-out of `policy.lockout` (zero: never); a running
    /// lock-out is not extended.
    ///
    /// # Errors
    /// When the backend cannot answer; the tracker logs it and carries on.
    async fn record_failure(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<u32, BackendError>;

    /// The count in `key`'s current window and its running lock-out, at `now_ms`.
    ///
    /// # Errors
    /// When the backend cannot answer; the tracker then treats the key as empty (fail open)
    /// and logs the error.
    async fn state(&self, key: &str, now_ms: u64) -> Result<AttemptState, BackendError>;

    /// Forgets `key`: its count and its lock-out.
    ///
    /// # Errors
    /// When the backend cannot answer; the tracker logs it and carries on.
    async fn clear(&self, key: &str) -> Result<(), BackendError>;
}

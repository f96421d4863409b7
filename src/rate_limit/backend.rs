//! [`RateLimitBackend`]: where the counters live.

use std::fmt;
use std::time::Duration;

/// The answer of a [`RateLimitBackend`] for one request.
///
/// Backends outside this crate build it with [`RateDecision::from_count`] or field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request is within the limit.
    pub allowed: bool,
    /// Requests allowed per window (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in the current window after this one (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Time until the current window ends and the budget is full again.
    pub reset_after: Duration,
}

impl RateDecision {
    /// The decision for the `count`th request of a window (counting this one) under a limit of
    /// `max` requests: allowed while `count <= max`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_jwt_session::rate_limit::RateDecision;
    ///
    /// let d = RateDecision::from_count(3, 3, Duration::from_secs(10));
    /// assert!(d.allowed && d.remaining == 0);
    /// assert!(!RateDecision::from_count(4, 3, Duration::from_secs(10)).allowed);
    /// ```
    pub fn from_count(count: u64, max: u32, reset_after: Duration) -> Self {
        Self {
            allowed: count <= u64::from(max),
            limit: max,
            remaining: u64::from(max).saturating_sub(count) as u32,
            reset_after,
        }
    }

    /// Whole seconds until the window resets, rounded up (`RateLimit-Reset`).
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A rate-limit or attempt backend could not answer. The layer then lets the request through
/// (fail open) and logs this at `warn`.
#[derive(Debug, thiserror::Error)]
#[error("rate-limit backend failed: {source}")]
pub struct BackendError {
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl BackendError {
    /// Wraps the backend's own error (or a message).
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

/// Where [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) counts requests: [`MemoryBackend`] (the
/// default, one process) or a shared store such as Redis, so the limit holds across instances.
///
/// One operation, [`hit`](Self::hit), counts a request and decides, atomically: concurrent hits
/// on one key must never both take the last unit of budget. The window is fixed and starts at
/// a key's first hit (as `INCR` + `PEXPIRE … NX` does in Redis); a backend may implement
/// another algorithm (sliding window, GCRA) as long as it answers a [`RateDecision`].
///
/// Object-safe: the layer holds an `Arc<dyn RateLimitBackend>`.
///
/// # The synchronous fast path
///
/// An in-process backend can answer without waiting, and then the request should not pay for
/// a boxed future. [`try_hit`](Self::try_hit) is that path: the layer calls it first, and only
/// when it returns `None` calls (and boxes) [`hit`](Self::hit). A remote backend keeps the
/// default `try_hit`, which returns `None` **without counting anything**.
///
/// [`MemoryBackend`]: crate::rate_limit::MemoryBackend
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::rate_limit::{BackendError, RateDecision, RateLimitBackend};
///
/// /// A backend that never limits: every request is allowed.
/// #[derive(Debug)]
/// struct Unlimited;
///
/// #[async_trait::async_trait]
/// impl RateLimitBackend for Unlimited {
///     async fn hit(
///         &self,
///         _key: &str,
///         _now_ms: u64,
///         window: Duration,
///         max: u32,
///     ) -> Result<RateDecision, BackendError> {
///         Ok(RateDecision::from_count(1, max, window))
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait RateLimitBackend: fmt::Debug + Send + Sync + 'static {
    /// Counts one request for `key` at `now_ms` (milliseconds since the epoch, from the layer's
    /// clock) under a limit of `max` requests per `window`, and decides.
    ///
    /// `key` is the client address (`203.0.113.7`, or an IPv6 /64 such as
    /// `2001:db8:1:2::/64`); a shared backend adds its own namespace.
    ///
    /// # Errors
    /// When the backend cannot be reached or answers nonsense. The layer lets the request
    /// through and logs the error (fail open).
    async fn hit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        max: u32,
    ) -> Result<RateDecision, BackendError>;

    /// The same as [`hit`](Self::hit), answered at once, or `None` (having counted nothing)
    /// when the answer needs to wait. The default is `None`.
    #[inline]
    fn try_hit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        max: u32,
    ) -> Option<Result<RateDecision, BackendError>> {
        let _ = (key, now_ms, window, max);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_from_counts() {
        let reset = Duration::from_millis(1500);
        let d = RateDecision::from_count(1, 3, reset);
        assert_eq!((d.allowed, d.limit, d.remaining), (true, 3, 2));
        assert_eq!(d.reset_after_secs(), 2);
        let d = RateDecision::from_count(u64::MAX, 3, reset);
        assert_eq!((d.allowed, d.remaining), (false, 0));
        assert!(!RateDecision::from_count(1, 0, reset).allowed);
        assert_eq!(ceil_secs(Duration::from_secs(60)), 60);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }
}

//! [`AttemptTracker`]: failed logins and refreshes per user and per IP, and lock-outs.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use moka::Expiry;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::backend::{BackendError, ceil_secs};
use super::client_ip::IpKey;
use crate::clock::{Clock, SystemClock};
use crate::error::{ErrorCode, json_error};

/// User ids longer than this are keyed by their SHA-256, so a client cannot make the tracker
/// hold megabytes per entry.
const MAX_USER_KEY_LEN: usize = 128;
/// How much of a user id goes into a log line.
const MAX_LOGGED_USER_LEN: usize = 64;

/// One key's rule: `max_failures` in `window` lock the key for `lockout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// Failures within `window` that start a lock-out. Zero never locks.
    pub max_failures: u32,
    /// The window failures are counted in; it starts at a key's first failure.
    pub window: Duration,
    /// How long a lock-out lasts.
    pub lockout: Duration,
}

/// Where [`AttemptTracker`] keeps its counts: [`MemoryAttemptBackend`] (the default, one
/// process) or a shared store, so a lock-out holds across instances.
///
/// Keys are `user:<id>` (or `user#<sha256>` for very long ids) and `ip:<address>`. Times are
/// milliseconds since the epoch from the tracker's clock. Object-safe.
#[async_trait::async_trait]
pub trait AttemptBackend: fmt::Debug + Send + Sync + 'static {
    /// Until when `key` is locked out, if it is at `now_ms`.
    ///
    /// # Errors
    /// When the backend cannot answer; the tracker then treats the key as not locked (fail
    /// open) and logs the error.
    async fn locked_until(&self, key: &str, now_ms: u64) -> Result<Option<u64>, BackendError>;

    /// Counts one failure of `key` under `policy`, atomically. Returns the end of the lock-out
    /// when this failure started one; `None` otherwise. A key already locked is left as it is
    /// (its lock-out is not extended).
    ///
    /// # Errors
    /// When the backend cannot answer; the tracker logs it and carries on.
    async fn record_failure(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<Option<u64>, BackendError>;

    /// Forgets the failures of `key`; a running lock-out stays.
    ///
    /// # Errors
    /// When the backend cannot answer; the tracker logs it and carries on.
    async fn clear_failures(&self, key: &str) -> Result<(), BackendError>;
}

/// What the memory backend holds per key.
#[derive(Debug, Clone, Copy)]
struct Record {
    window_start_ms: u64,
    failures: u32,
    locked_until_ms: u64,
    /// How long the entry is needed, from its last write: to the end of its window or its
    /// lock-out, whichever is later.
    keep_for: Duration,
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
/// or lock-out ends.
///
/// Bounded by `max_keys` (least recently used evicted first); under a flood of distinct keys
/// the oldest counts are forgotten, which errs towards letting attempts through.
#[derive(Clone)]
pub struct MemoryAttemptBackend {
    cache: Cache<String, Record>,
}

impl MemoryAttemptBackend {
    /// The default bound on tracked keys: 100 000.
    pub const DEFAULT_MAX_KEYS: u64 = 100_000;

    /// A backend tracking at most `max_keys` users and addresses at a time.
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

    fn locked_until_now(&self, key: &str, now_ms: u64) -> Option<u64> {
        self.cache
            .get(key)
            .map(|r| r.locked_until_ms)
            .filter(|until| *until > now_ms)
    }

    fn record_failure_now(&self, key: &str, now_ms: u64, policy: AttemptPolicy) -> Option<u64> {
        if policy.max_failures == 0 {
            return None;
        }
        let window_ms = millis(policy.window);
        let lockout_ms = millis(policy.lockout);
        let mut started = None;
        self.cache.entry_by_ref(key).and_compute_with(|current| {
            let mut r = match current.map(|e| e.into_value()) {
                Some(r) if r.locked_until_ms > now_ms => return Op::Nop,
                Some(r)
                    if r.locked_until_ms == 0
                        && now_ms < r.window_start_ms.saturating_add(window_ms) =>
                {
                    r
                }
                _ => Record {
                    window_start_ms: now_ms,
                    failures: 0,
                    locked_until_ms: 0,
                    keep_for: Duration::ZERO,
                },
            };
            r.failures = r.failures.saturating_add(1);
            if r.failures >= policy.max_failures {
                let until = now_ms.saturating_add(lockout_ms);
                started = Some(until);
                r.locked_until_ms = until;
                r.failures = 0;
            }
            let keep_until = r
                .window_start_ms
                .saturating_add(window_ms)
                .max(r.locked_until_ms);
            r.keep_for = Duration::from_millis(keep_until.saturating_sub(now_ms).max(1));
            Op::Put(r)
        });
        started
    }

    fn clear_failures_now(&self, key: &str) {
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                // A locked key's count is already zero (the lock-out reset it), and the
                // lock-out itself stays.
                Some(e) if e.value().locked_until_ms != 0 => Op::Nop,
                Some(_) => Op::Remove,
                None => Op::Nop,
            });
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

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
    async fn locked_until(&self, key: &str, now_ms: u64) -> Result<Option<u64>, BackendError> {
        Ok(self.locked_until_now(key, now_ms))
    }

    async fn record_failure(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<Option<u64>, BackendError> {
        Ok(self.record_failure_now(key, now_ms, policy))
    }

    async fn clear_failures(&self, key: &str) -> Result<(), BackendError> {
        self.clear_failures_now(key);
        Ok(())
    }
}

/// Settings of an [`AttemptTracker`].
///
/// The defaults: 5 failures per user or 20 per IP address within 15 minutes lock that user or
/// address out for 15 minutes.
#[derive(Debug, Clone)]
#[must_use]
pub struct AttemptConfig {
    max_per_user: u32,
    max_per_ip: u32,
    window: Duration,
    lockout: Duration,
    clock: Arc<dyn Clock>,
    max_keys: u64,
    ipv6_prefix_len: u8,
}

impl Default for AttemptConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl AttemptConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self {
            max_per_user: 5,
            max_per_ip: 20,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            clock: Arc::new(SystemClock),
            max_keys: MemoryAttemptBackend::DEFAULT_MAX_KEYS,
            ipv6_prefix_len: 64,
        }
    }

    /// Failures of one user id within the window that lock it out. The default is 5; 0 never
    /// locks a user.
    ///
    /// Anyone can lock a user out by failing on purpose; a short lock-out keeps that nuisance
    /// small while still stopping password guessing.
    pub fn max_failures_per_user(mut self, max: u32) -> Self {
        self.max_per_user = max;
        self
    }

    /// Failures from one IP address (an IPv6 /64) within the window that lock it out. The
    /// default is 20; 0 never locks an address. Clients behind one NAT share it.
    pub fn max_failures_per_ip(mut self, max: u32) -> Self {
        self.max_per_ip = max;
        self
    }

    /// The window failures are counted in, from a key's first failure. The default is 15
    /// minutes.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How long a lock-out lasts. The default is 15 minutes.
    pub fn lockout(mut self, lockout: Duration) -> Self {
        self.lockout = lockout;
        self
    }

    /// The clock. The default is the system clock; tests use
    /// [`ManualClock`](crate::clock::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many users and addresses the default in-memory backend tracks at most. The default
    /// is 100 000. Ignored with another backend.
    pub fn max_tracked_keys(mut self, max: u64) -> Self {
        self.max_keys = max;
        self
    }

    /// IPv6 addresses are counted per network of this prefix length. The default is 64;
    /// values over 128 count as 128.
    pub fn ipv6_prefix_len(mut self, prefix_len: u8) -> Self {
        self.ipv6_prefix_len = prefix_len.min(128);
        self
    }

    fn policy(&self, max_failures: u32) -> AttemptPolicy {
        AttemptPolicy {
            max_failures,
            window: self.window,
            lockout: self.lockout,
        }
    }
}

/// Further attempts are refused until the lock-out ends.
///
/// Renders as 429 `rate_limited` with `Retry-After` through [`LockedOut::to_response`] or,
/// under the `axum` feature, `IntoResponse`. It does not say whether the user or the address
/// is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed attempts; try again in {} seconds", self.retry_after_secs())]
pub struct LockedOut {
    /// Time until the lock-out ends.
    pub retry_after: Duration,
}

impl LockedOut {
    /// Whole seconds until the lock-out ends, rounded up, at least 1 (`Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }

    /// The answer: 429, `Retry-After`, and the JSON error body with code `rate_limited`.
    pub fn to_response(&self) -> Response<Bytes> {
        crate::telemetry::rate_limited("lockout");
        let mut response = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            &self.to_string(),
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs()),
        );
        response.extensions_mut().insert(*self);
        response
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum::response::IntoResponse for LockedOut {
    fn into_response(self) -> axum::response::Response {
        self.to_response().map(axum::body::Body::from)
    }
}

/// Counts failed logins and failed refreshes per user id and per client IP, and locks either
/// out for a cool-down once it has failed too often (see [`AttemptConfig`] for the numbers).
///
/// For handlers: call [`check`](Self::check) before verifying credentials, then
/// [`record_failure`](Self::record_failure) or [`record_success`](Self::record_success). Pass
/// the user name as the client typed it, also when no such user exists (so the answers do not
/// tell which users exist), normalised the way your user lookup normalises it (so `Alice` and
/// `alice` share one count). Lock-outs are logged at `warn` with the user id and address; no
/// password or token is ever seen by the tracker.
///
/// When the backend fails, attempts are let through and the error is logged (fail open).
/// Cheap to clone; clones share the counts.
///
/// ```
/// use std::net::IpAddr;
/// use std::sync::Arc;
/// use tower_jwt_session::clock::ManualClock;
/// use tower_jwt_session::{AttemptConfig, AttemptTracker};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let clock = ManualClock::new(1_800_000_000_000);
/// let tracker = AttemptTracker::new(AttemptConfig::new().clock(Arc::new(clock.clone())));
/// let ip: IpAddr = "203.0.113.7".parse().unwrap();
///
/// // In the login handler:
/// for _ in 0..5 {
///     tracker.check(Some("alice"), ip).await.expect("not locked yet");
///     // … the password was wrong:
///     tracker.record_failure(Some("alice"), ip).await;
/// }
/// let locked = tracker.check(Some("alice"), ip).await.unwrap_err();
/// assert_eq!(locked.retry_after_secs(), 900);
/// assert_eq!(locked.to_response().status(), 429);
///
/// clock.advance(std::time::Duration::from_secs(900));
/// assert!(tracker.check(Some("alice"), ip).await.is_ok());
/// # }
/// ```
#[derive(Clone)]
pub struct AttemptTracker {
    inner: Arc<Inner>,
}

struct Inner {
    config: AttemptConfig,
    backend: Arc<dyn AttemptBackend>,
}

impl fmt::Debug for AttemptTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptTracker")
            .field("config", &self.inner.config)
            .field("backend", &self.inner.backend)
            .finish()
    }
}

impl Default for AttemptTracker {
    /// A tracker with the default settings, in memory.
    fn default() -> Self {
        Self::new(AttemptConfig::new())
    }
}

impl AttemptTracker {
    /// A tracker counting in memory ([`MemoryAttemptBackend`]).
    pub fn new(config: AttemptConfig) -> Self {
        let backend = Arc::new(MemoryAttemptBackend::new(config.max_keys));
        Self::with_backend(config, backend)
    }

    /// A tracker counting in `backend`, e.g. one shared by several instances.
    pub fn with_backend(config: AttemptConfig, backend: Arc<dyn AttemptBackend>) -> Self {
        Self {
            inner: Arc::new(Inner { config, backend }),
        }
    }

    /// The backend the counts live in.
    pub fn backend(&self) -> &Arc<dyn AttemptBackend> {
        &self.inner.backend
    }

    /// Whether an attempt for `user` (if known) from `ip` may go ahead.
    ///
    /// # Errors
    /// [`LockedOut`] while the user or the address is locked out, with the time left (the
    /// longer of the two).
    pub async fn check(&self, user: Option<&str>, ip: IpAddr) -> Result<(), LockedOut> {
        let now = self.inner.config.clock.now_ms();
        let mut until = 0;
        for key in self.keys(user, ip).into_iter().flatten() {
            match self.inner.backend.locked_until(&key, now).await {
                Ok(Some(t)) => until = until.max(t),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "attempt backend failed; not checking lock-outs (fail open)");
                }
            }
        }
        if until > now {
            tracing::debug!(user = ?user.map(loggable), %ip, "attempt refused: locked out");
            Err(LockedOut {
                retry_after: Duration::from_millis(until - now),
            })
        } else {
            Ok(())
        }
    }

    /// Counts a failed login or refresh of `user` (if known) from `ip`. The failure that
    /// reaches a limit starts a lock-out, logged at `warn`; the attempts after it are refused
    /// by [`check`](Self::check).
    pub async fn record_failure(&self, user: Option<&str>, ip: IpAddr) {
        let config = &self.inner.config;
        let now = config.clock.now_ms();
        let [user_key, ip_key] = self.keys(user, ip);
        let policies = [
            (user_key, config.policy(config.max_per_user), "user"),
            (ip_key, config.policy(config.max_per_ip), "ip"),
        ];
        for (key, policy, scope) in policies {
            let Some(key) = key else { continue };
            if policy.max_failures == 0 {
                continue;
            }
            match self.inner.backend.record_failure(&key, now, policy).await {
                Ok(Some(until)) => tracing::warn!(
                    scope,
                    user = ?user.map(loggable),
                    %ip,
                    failures = policy.max_failures,
                    lockout_secs = ceil_secs(Duration::from_millis(until.saturating_sub(now))),
                    "too many failed attempts: locked out"
                ),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "attempt backend failed; failure not counted (fail open)");
                }
            }
        }
        tracing::debug!(user = ?user.map(loggable), %ip, "failed attempt counted");
    }

    /// A successful login or refresh of `user`: its failure count starts over. A running
    /// lock-out stays, and the address's count is kept (a client holding one valid account
    /// must not be able to reset its address's count between guesses at others).
    pub async fn record_success(&self, user: &str) {
        let key = user_key(user);
        if let Err(error) = self.inner.backend.clear_failures(&key).await {
            tracing::warn!(%error, "attempt backend failed; failure count not reset");
        }
    }

    fn keys(&self, user: Option<&str>, ip: IpAddr) -> [Option<String>; 2] {
        let ip_key = IpKey::new(ip, self.inner.config.ipv6_prefix_len);
        [user.map(user_key), Some(format!("ip:{}", ip_key.as_str()))]
    }
}

/// `user:<id>`, or `user#<sha256 hex>` for ids longer than [`MAX_USER_KEY_LEN`].
fn user_key(user: &str) -> String {
    if user.len() <= MAX_USER_KEY_LEN {
        return format!("user:{user}");
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(user.as_bytes());
    let mut key = String::with_capacity(5 + 64);
    key.push_str("user#");
    for b in digest {
        let _ = write!(key, "{b:02x}");
    }
    key
}

/// A user id cut to a loggable length (logged with `?`, so control characters are escaped).
fn loggable(user: &str) -> &str {
    if user.len() <= MAX_LOGGED_USER_LEN {
        return user;
    }
    let mut end = MAX_LOGGED_USER_LEN;
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    &user[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const T0: u64 = 1_800_000_000_000;

    fn tracker() -> (AttemptTracker, ManualClock) {
        let clock = ManualClock::new(T0);
        let config = AttemptConfig::new().clock(Arc::new(clock.clone()));
        (AttemptTracker::new(config), clock)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_user_is_locked_out_after_five_failures_until_the_cool_down_ends() {
        let (t, clock) = tracker();
        // Five attempts from five addresses: the per-user count is what locks.
        for i in 1..=5 {
            let from = ip(&format!("198.51.100.{i}"));
            assert!(t.check(Some("alice"), from).await.is_ok(), "attempt {i}");
            t.record_failure(Some("alice"), from).await;
            clock.advance(Duration::from_secs(10));
        }
        let other = ip("192.0.2.1");
        let locked = t.check(Some("alice"), other).await.unwrap_err();
        assert_eq!(locked.retry_after, Duration::from_secs(900 - 10));
        assert_eq!(locked.retry_after_secs(), 890);
        // Other users from the same addresses are not affected.
        assert!(t.check(Some("bob"), ip("198.51.100.1")).await.is_ok());
        // Failing again while locked does not extend the lock-out.
        t.record_failure(Some("alice"), other).await;
        clock.advance(Duration::from_secs(889));
        assert_eq!(
            t.check(Some("alice"), other).await.unwrap_err().retry_after,
            Duration::from_secs(1)
        );
        clock.advance(Duration::from_secs(1));
        assert!(t.check(Some("alice"), other).await.is_ok());
        // After the lock-out the count starts from zero.
        for _ in 0..4 {
            t.record_failure(Some("alice"), other).await;
        }
        assert!(t.check(Some("alice"), other).await.is_ok());
    }

    #[tokio::test]
    async fn failures_outside_the_window_do_not_add_up() {
        let (t, clock) = tracker();
        let from = ip("198.51.100.1");
        for _ in 0..4 {
            t.record_failure(Some("alice"), from).await;
        }
        clock.advance(Duration::from_secs(15 * 60));
        t.record_failure(Some("alice"), from).await;
        assert!(t.check(Some("alice"), from).await.is_ok());
    }

    #[tokio::test]
    async fn success_resets_the_users_count_but_not_the_addresses() {
        let (t, _) = tracker();
        let from = ip("198.51.100.1");
        for _ in 0..4 {
            t.record_failure(Some("alice"), from).await;
        }
        t.record_success("alice").await;
        for _ in 0..4 {
            t.record_failure(Some("alice"), from).await;
        }
        assert!(
            t.check(Some("alice"), from).await.is_ok(),
            "4 since success"
        );
        t.record_failure(Some("alice"), from).await;
        assert!(t.check(Some("alice"), from).await.is_err());
        // A success does not lift a running lock-out.
        t.record_success("alice").await;
        assert!(t.check(Some("alice"), from).await.is_err());
    }

    #[tokio::test]
    async fn an_address_is_locked_out_after_twenty_failures_across_users() {
        let (t, clock) = tracker();
        let from = ip("2001:db8:1:2::1");
        for i in 0..19 {
            t.record_failure(Some(&format!("user{i}")), from).await;
        }
        assert!(t.check(Some("fresh"), from).await.is_ok());
        // Failed refreshes with no known user count for the address too; the /64 is one key.
        t.record_failure(None, ip("2001:db8:1:2::ffff")).await;
        let locked = t.check(Some("fresh"), from).await.unwrap_err();
        assert_eq!(locked.retry_after_secs(), 900);
        assert!(t.check(None, ip("2001:db8:1:2::5")).await.is_err());
        assert!(t.check(None, ip("2001:db8:1:3::5")).await.is_ok());
        clock.advance(Duration::from_secs(900));
        assert!(t.check(None, from).await.is_ok());
    }

    #[tokio::test]
    async fn zero_disables_a_limit_and_long_user_ids_are_hashed() {
        let clock = ManualClock::new(T0);
        let t = AttemptTracker::new(
            AttemptConfig::new()
                .clock(Arc::new(clock))
                .max_failures_per_ip(0)
                .max_failures_per_user(2),
        );
        let from = ip("198.51.100.1");
        let long = "x".repeat(10_000);
        for i in 0..50 {
            t.record_failure(Some(&format!("u{i}")), from).await;
        }
        assert!(t.check(None, from).await.is_ok());
        t.record_failure(Some(&long), from).await;
        t.record_failure(Some(&long), from).await;
        assert!(t.check(Some(&long), from).await.is_err());
        assert_eq!(user_key(&long).len(), 5 + 64);
        assert_eq!(loggable(&long).len(), MAX_LOGGED_USER_LEN);
        assert_eq!(loggable(&"é".repeat(40)).len(), 64);
    }

    #[tokio::test]
    async fn the_lock_out_answer_is_a_429_with_retry_after() {
        let locked = LockedOut {
            retry_after: Duration::from_millis(61_500),
        };
        let res = locked.to_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "62");
        assert_eq!(res.extensions().get::<LockedOut>(), Some(&locked));
        let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(body["success"], false);
        assert_eq!(body["error"], "rate_limited");
        assert_eq!(
            body["message"],
            "too many failed attempts; try again in 62 seconds"
        );
    }

    #[test]
    fn entries_expire_when_their_window_ends_and_locked_ones_stay() {
        let b = MemoryAttemptBackend::new(1_000);
        let policy = AttemptPolicy {
            max_failures: 2,
            window: Duration::from_millis(100),
            lockout: Duration::from_secs(60),
        };
        for i in 0..100 {
            assert_eq!(b.record_failure_now(&format!("ip:{i}"), T0, policy), None);
        }
        assert!(b.record_failure_now("ip:0", T0, policy).is_some());
        b.run_pending_tasks();
        assert_eq!(b.entry_count(), 100);
        // moka's timer wheel works in ticks of about one second.
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.entry_count() != 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            b.run_pending_tasks();
        }
        assert_eq!(b.entry_count(), 1, "only the locked key is still needed");
        assert!(b.locked_until_now("ip:0", T0).is_some());
    }
}

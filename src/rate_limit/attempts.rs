//! [`AttemptTracker`]: failed logins per user+client and per client, a slowing delay per user,
//! and failed refreshes per client, with lock-outs.
//!
#![doc = include_str!("attempts.md")]

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
/// The first step of the per-user delay; each further failure doubles it, up to the cap.
const FIRST_USER_DELAY: Duration = Duration::from_millis(250);

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

/// Where [`AttemptTracker`] keeps its counts: [`MemoryAttemptBackend`] (the default, one
/// process) or a shared store, so a lock-out holds across instances.
///
/// Each key (see [`AttemptTracker`] for the keys) holds a count within a window and maybe
/// a lock-out. Every operation on one key must be atomic with respect to the others on the same
/// key: [`reserve`](Self::reserve) in particular is a check and an increment in one step, so
/// concurrent reservations never both take the last one. Times are milliseconds since the
/// epoch from the tracker's clock. Object-safe.
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
    pub const DEFAULT_MAX_KEYS: u64 = 100_000;

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

    fn reserve_now(&self, key: &str, now_ms: u64, policy: AttemptPolicy) -> Result<(), u64> {
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

    fn release_now(&self, key: &str, now_ms: u64) {
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

    fn record_failure_now(&self, key: &str, now_ms: u64, policy: AttemptPolicy) -> u32 {
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

    fn state_now(&self, key: &str, now_ms: u64) -> AttemptState {
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

/// Settings of an [`AttemptTracker`].
///
/// The defaults: 5 attempts at one user from one client, or 20 at any users from one client,
/// within 15 minutes, and that client is refused (for that user, or for all) for 15 minutes;
/// from the 10th failure for one user within 15 minutes, from any clients, every login of that
/// user waits 250 ms, doubling per further failure, up to 2 s; 20 forged or malformed refresh
/// tokens from one client within 15 minutes refuse its refreshes for 15 minutes.
#[derive(Debug, Clone)]
#[must_use]
pub struct AttemptConfig {
    max_per_user_client: u32,
    max_per_ip: u32,
    max_refresh_per_ip: u32,
    user_delay_after: u32,
    max_user_delay: Duration,
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
            max_per_user_client: 5,
            max_per_ip: 20,
            max_refresh_per_ip: 20,
            user_delay_after: 10,
            max_user_delay: Duration::from_secs(2),
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            clock: Arc::new(SystemClock),
            max_keys: MemoryAttemptBackend::DEFAULT_MAX_KEYS,
            ipv6_prefix_len: 64,
        }
    }

    /// Login attempts at one user from one client (one IP address, one IPv6 /64) within the
    /// window, not released by a success, after which that client is refused for that user.
    /// The default is 5; 0 never locks.
    pub fn max_failures_per_user_client(mut self, max: u32) -> Self {
        self.max_per_user_client = max;
        self
    }

    /// Login attempts from one client at any users within the window, not released by a
    /// success, after which that client is refused for every user. The default is 20; 0 never
    /// locks a client. Clients behind one NAT share it: a low value lets one of them lock the
    /// others out.
    pub fn max_failures_per_ip(mut self, max: u32) -> Self {
        self.max_per_ip = max;
        self
    }

    /// Forged or malformed refresh tokens from one client within the window after which its
    /// refreshes are refused (logins are not). The default is 20; 0 never locks.
    pub fn max_refresh_failures_per_ip(mut self, max: u32) -> Self {
        self.max_refresh_per_ip = max;
        self
    }

    /// Failed logins of one user, from any clients, within the window, from which every login
    /// of that user is slowed: the `n`th failure and later ones ask for a delay of 250 ms,
    /// doubling per further failure, up to [`max_user_delay`](Self::max_user_delay). The
    /// default is 10; 0 never slows.
    ///
    /// The delay never refuses anyone, so it cannot lock a user out; a low value lets anyone
    /// make the user's logins slow.
    pub fn user_delay_after(mut self, failures: u32) -> Self {
        self.user_delay_after = failures;
        self
    }

    /// The longest delay [`user_delay_after`](Self::user_delay_after) asks for. The default is
    /// 2 seconds; zero never slows. A long delay holds a connection per attempt and annoys the
    /// real user more than it costs a parallel attacker.
    pub fn max_user_delay(mut self, max: Duration) -> Self {
        self.max_user_delay = max;
        self
    }

    /// The window attempts are counted in, from a key's first attempt. The default is 15
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

    /// How many keys the default in-memory backend tracks at most. The default is 100 000.
    /// Ignored with another backend.
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

    /// The delay after `failures` failures of one user in the window.
    fn user_delay(&self, failures: u32) -> Duration {
        if self.user_delay_after == 0 || failures < self.user_delay_after {
            return Duration::ZERO;
        }
        let doublings = (failures - self.user_delay_after).min(16);
        FIRST_USER_DELAY
            .saturating_mul(1 << doublings)
            .min(self.max_user_delay)
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

/// One login attempt reserved by [`AttemptTracker::begin_login`]. Hand it back to
/// [`login_succeeded`](AttemptTracker::login_succeeded) or
/// [`login_failed`](AttemptTracker::login_failed) once the password is checked, or to
/// [`login_abandoned`](AttemptTracker::login_abandoned) when it could not be checked.
///
/// Dropped without any of them, it stays counted as if it had failed (a handler that panics or
/// is cancelled while checking a password must not give the guess back), but the user's delay
/// count does not grow.
#[must_use = "hand the attempt to login_succeeded, login_failed or login_abandoned"]
#[derive(Debug)]
pub struct LoginAttempt {
    keys: LoginKeys,
    /// Whether this attempt holds a reservation on the user+client key (given back when it is
    /// abandoned; on success that key is cleared whether or not it was reserved).
    reserved_user_client: bool,
    /// Whether this attempt holds a reservation on the client key.
    reserved_ip: bool,
    delay: Duration,
}

impl LoginAttempt {
    /// The slowing delay to wait before answering (zero most of the time).
    ///
    /// Wait it before checking the password, or at least before answering whatever the
    /// outcome: a delay on failures alone would tell the answer early (a guess not answered at
    /// once was wrong).
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// The keys of one login attempt, built once.
#[derive(Debug)]
struct LoginKeys {
    user_client: String,
    ip: String,
    user: String,
    /// The user id cut to a loggable length, and the address, for log lines.
    logged_user: String,
    addr: IpAddr,
}

impl LoginKeys {
    fn new(user: &str, ip: IpAddr, ipv6_prefix_len: u8) -> Self {
        let ip_key = IpKey::new(ip, ipv6_prefix_len);
        let ip_key = ip_key.as_str();
        let (sep, id) = user_part(user);
        Self {
            // The address is last and holds no `|`, so the key reads back one way only.
            user_client: format!("login:uc{sep}{id}|{ip_key}"),
            ip: format!("login:ip:{ip_key}"),
            user: format!("login:user{sep}{id}"),
            logged_user: loggable(user).to_owned(),
            addr: ip,
        }
    }
}

/// Counts login attempts per user+client and per client, failed logins per user (for a slowing
/// delay), and failed refreshes per client, and refuses a client that has failed too often
/// ([`AttemptConfig`] has the numbers).
///
/// For a login handler: [`begin_login`](Self::begin_login) before checking the password (it
/// reserves the attempt, or refuses it), wait [`LoginAttempt::delay`], check, then
/// [`login_succeeded`](Self::login_succeeded) or [`login_failed`](Self::login_failed), or
/// [`login_abandoned`](Self::login_abandoned) when the check itself failed. Pass the user name as
/// the client typed it, also when no such user exists (so the answers do not tell which users
/// exist), normalised the way your user lookup normalises it (so `Alice` and `alice` share one
/// count). For refresh tokens: [`check_refresh`](Self::check_refresh) before,
/// [`record_refresh_failure`](Self::record_refresh_failure) when the token was forged or malformed
/// ([`TokenRoutes`](crate::TokenRoutes) does both).
///
/// Lock-outs are logged at `warn` with the user id and address; no password or token is ever
/// seen by the tracker. When the backend fails, attempts are let through and the error is
/// logged (fail open). Cheap to clone; clones share the counts.
///
#[doc = include_str!("attempts.md")]
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

    /// Reserves one login attempt of `user` from `ip`, atomically, before the password is
    /// checked. The attempt's [`delay`](LoginAttempt::delay) is the slowing delay of `user`:
    /// failures from other clients slow this one down, but never refuse it.
    ///
    /// # Errors
    /// [`LockedOut`] when the user+client or the client is locked out, or this attempt is one
    /// too many and starts the lock-out; with the time left. Nothing is reserved then.
    pub async fn begin_login(&self, user: &str, ip: IpAddr) -> Result<LoginAttempt, LockedOut> {
        let config = &self.inner.config;
        let backend = &self.inner.backend;
        let now = config.clock.now_ms();
        let keys = LoginKeys::new(user, ip, config.ipv6_prefix_len);

        let reserved_user_client = match self
            .reserve(&keys.user_client, now, config.max_per_user_client)
            .await
        {
            Ok(reserved) => reserved,
            Err(until) => return Err(self.refused(&keys, "user+client", now, until)),
        };
        let reserved_ip = match self.reserve(&keys.ip, now, config.max_per_ip).await {
            Ok(reserved) => reserved,
            Err(until) => {
                if reserved_user_client {
                    self.release(&keys.user_client, now).await;
                }
                return Err(self.refused(&keys, "client", now, until));
            }
        };
        let failures = if config.user_delay_after == 0 || config.max_user_delay.is_zero() {
            0
        } else {
            match backend.state(&keys.user, now).await {
                Ok(state) => state.count,
                Err(error) => {
                    tracing::warn!(%error, "attempt backend failed; no delay (fail open)");
                    0
                }
            }
        };
        let delay = config.user_delay(failures);
        if !delay.is_zero() {
            tracing::debug!(user = ?keys.logged_user, ip = %keys.addr, failures, delay_ms = delay.as_millis() as u64, "login slowed: many failures for this user");
        }
        Ok(LoginAttempt {
            keys,
            reserved_user_client,
            reserved_ip,
            delay,
        })
    }

    /// The password was right: releases the reservation. The user+client count is cleared;
    /// the client's count keeps its earlier failures but not this attempt (so a client holding
    /// one valid account cannot reset its count between guesses at others). The user's delay
    /// count is kept: one client's success says nothing about guesses from the others.
    pub async fn login_succeeded(&self, attempt: LoginAttempt) {
        let now = self.inner.config.clock.now_ms();
        if self.inner.config.max_per_user_client != 0
            && let Err(error) = self.inner.backend.clear(&attempt.keys.user_client).await
        {
            tracing::warn!(%error, "attempt backend failed; user+client count not cleared");
        }
        if attempt.reserved_ip {
            self.release(&attempt.keys.ip, now).await;
        }
    }

    /// The password was wrong: the reservation stays counted, and the user's failure count
    /// (for the delay) grows.
    pub async fn login_failed(&self, attempt: LoginAttempt) {
        let config = &self.inner.config;
        let keys = &attempt.keys;
        if config.user_delay_after != 0 && !config.max_user_delay.is_zero() {
            let now = config.clock.now_ms();
            // A plain count: the user alone is never locked out.
            let policy = config.policy(0);
            if let Err(error) = self
                .inner
                .backend
                .record_failure(&keys.user, now, policy)
                .await
            {
                tracing::warn!(%error, "attempt backend failed; user failure not counted");
            }
        }
        tracing::debug!(user = ?keys.logged_user, ip = %keys.addr, "failed login counted");
    }

    /// The password could not be checked (the user database is down, the credential check
    /// returned an error): the attempt was neither right nor wrong, so it gives both its
    /// reservations back, on the user+client key and on the client key. Unlike
    /// [`login_succeeded`](Self::login_succeeded) it clears nothing: earlier failures of that
    /// user from that client stay counted. The user's delay count does not grow.
    ///
    /// Only for an outcome that tells the client nothing about the password: a check that
    /// answers an error *after* comparing the password, or only for wrong ones, would let an
    /// attacker guess without being counted. Where an error may be the attacker's doing, drop
    /// the attempt instead: it then stays counted.
    pub async fn login_abandoned(&self, attempt: LoginAttempt) {
        let now = self.inner.config.clock.now_ms();
        let keys = &attempt.keys;
        if attempt.reserved_user_client {
            self.release(&keys.user_client, now).await;
        }
        if attempt.reserved_ip {
            self.release(&keys.ip, now).await;
        }
        tracing::debug!(user = ?keys.logged_user, ip = %keys.addr, "login attempt abandoned: not counted");
    }

    /// Whether `ip` may present a refresh token now. The refresh bucket is separate from
    /// logins.
    ///
    /// # Errors
    /// [`LockedOut`] while `ip` is locked out of refreshing, with the time left.
    pub async fn check_refresh(&self, ip: IpAddr) -> Result<(), LockedOut> {
        let config = &self.inner.config;
        if config.max_refresh_per_ip == 0 {
            return Ok(());
        }
        let now = config.clock.now_ms();
        let key = self.refresh_key(ip);
        match self.inner.backend.state(&key, now).await {
            Ok(AttemptState {
                locked_until_ms: Some(until),
                ..
            }) if until > now => {
                tracing::debug!(%ip, "refresh refused: locked out");
                Err(LockedOut {
                    retry_after: Duration::from_millis(until - now),
                })
            }
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "attempt backend failed; not checking refresh lock-out (fail open)");
                Ok(())
            }
        }
    }

    /// A forged or malformed refresh token was presented from `ip`. The failure that reaches
    /// the limit starts the lock-out, logged at `warn`. Do not call it for a well-formed token
    /// of an ended session (logout, expiry, reuse): a stale tab is not an attacker.
    pub async fn record_refresh_failure(&self, ip: IpAddr) {
        let config = &self.inner.config;
        if config.max_refresh_per_ip == 0 {
            return;
        }
        let now = config.clock.now_ms();
        let policy = config.policy(config.max_refresh_per_ip);
        match self
            .inner
            .backend
            .record_failure(&self.refresh_key(ip), now, policy)
            .await
        {
            Ok(count) if count == policy.max_failures => tracing::warn!(
                %ip,
                failures = count,
                lockout_secs = ceil_secs(policy.lockout),
                "too many forged refresh tokens: client locked out of refreshing"
            ),
            Ok(_) => tracing::debug!(%ip, "failed refresh counted"),
            Err(error) => {
                tracing::warn!(%error, "attempt backend failed; refresh failure not counted (fail open)");
            }
        }
    }

    /// Reserves on `key`: `Ok(true)` reserved, `Ok(false)` not counted (no limit, or the
    /// backend failed: fail open), `Err(until)` refused.
    async fn reserve(&self, key: &str, now: u64, max: u32) -> Result<bool, u64> {
        if max == 0 {
            return Ok(false);
        }
        let policy = self.inner.config.policy(max);
        match self.inner.backend.reserve(key, now, policy).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(until)) => Err(until.max(now + 1)),
            Err(error) => {
                tracing::warn!(%error, "attempt backend failed; attempt not counted (fail open)");
                Ok(false)
            }
        }
    }

    async fn release(&self, key: &str, now: u64) {
        if let Err(error) = self.inner.backend.release(key, now).await {
            tracing::warn!(%error, "attempt backend failed; reservation not released");
        }
    }

    fn refused(&self, keys: &LoginKeys, scope: &'static str, now: u64, until: u64) -> LockedOut {
        let retry_after = Duration::from_millis(until.saturating_sub(now));
        if retry_after == self.inner.config.lockout {
            // This attempt was the one too many: the lock-out starts now.
            tracing::warn!(
                scope,
                user = ?keys.logged_user,
                ip = %keys.addr,
                lockout_secs = ceil_secs(retry_after),
                "too many failed logins: client locked out"
            );
        } else {
            tracing::debug!(scope, user = ?keys.logged_user, ip = %keys.addr, "login refused: locked out");
        }
        LockedOut { retry_after }
    }

    fn refresh_key(&self, ip: IpAddr) -> String {
        let ip_key = IpKey::new(ip, self.inner.config.ipv6_prefix_len);
        format!("refresh:ip:{}", ip_key.as_str())
    }
}

/// The user part of a key: `(":", id)`, or `("#", sha256 hex)` for ids longer than
/// [`MAX_USER_KEY_LEN`] (the separators differ, so no id can pose as a hash).
fn user_part(user: &str) -> (&'static str, std::borrow::Cow<'_, str>) {
    if user.len() <= MAX_USER_KEY_LEN {
        return (":", user.into());
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(user.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    ("#", hex.into())
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
    const MINUTE: Duration = Duration::from_secs(60);

    fn tracker_with(config: AttemptConfig) -> (AttemptTracker, ManualClock) {
        let clock = ManualClock::new(T0);
        let config = config.clock(Arc::new(clock.clone()));
        (AttemptTracker::new(config), clock)
    }

    fn tracker() -> (AttemptTracker, ManualClock) {
        tracker_with(AttemptConfig::new())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    async fn fail(t: &AttemptTracker, user: &str, from: IpAddr) {
        let attempt = t.begin_login(user, from).await.expect("not locked");
        t.login_failed(attempt).await;
    }

    async fn succeed(t: &AttemptTracker, user: &str, from: IpAddr) -> Duration {
        let attempt = t.begin_login(user, from).await.expect("not locked");
        let delay = attempt.delay();
        t.login_succeeded(attempt).await;
        delay
    }

    #[tokio::test]
    async fn a_lock_out_aimed_at_a_victim_does_not_refuse_her_other_client() {
        let (t, clock) = tracker();
        let attacker = ip("203.0.113.7");
        let laptop = ip("198.51.100.20");
        // The attacker fails as often as he is let, again and again.
        for round in 0..4 {
            for _ in 0..5 {
                fail(&t, "alice", attacker).await;
            }
            let locked = t.begin_login("alice", attacker).await.unwrap_err();
            assert_eq!(
                locked.retry_after,
                Duration::from_secs(900),
                "round {round}"
            );
            // Alice's right password from her own laptop is never refused.
            succeed(&t, "alice", laptop).await;
            clock.advance(Duration::from_secs(900));
        }
        // And the attacker's client is refused for alice only, while other users' logins
        // from it go on (until its own, per-client, limit).
        for _ in 0..5 {
            fail(&t, "alice", attacker).await;
        }
        assert!(t.begin_login("alice", attacker).await.is_err());
        succeed(&t, "bob", attacker).await;
    }

    #[tokio::test]
    async fn a_client_is_refused_for_everyone_after_twenty_failures_across_users() {
        let (t, clock) = tracker();
        let from = ip("2001:db8:1:2::1");
        for i in 0..20 {
            fail(&t, &format!("user{i}"), from).await;
        }
        // The /64 is one client; the next attempt is refused and starts the lock-out.
        let locked = t
            .begin_login("fresh", ip("2001:db8:1:2::ffff"))
            .await
            .unwrap_err();
        assert_eq!(locked.retry_after_secs(), 900);
        clock.advance(MINUTE);
        assert_eq!(
            t.begin_login("fresh", from).await.unwrap_err().retry_after,
            Duration::from_secs(840)
        );
        // Another /64 is another client.
        succeed(&t, "fresh", ip("2001:db8:1:3::5")).await;
        // A refusal by the client key reserves nothing on the user+client key.
        clock.advance(Duration::from_secs(840));
        for _ in 0..5 {
            fail(&t, "fresh", from).await;
        }
    }

    /// 50 concurrent attempts on a multi-threaded runtime: exactly the limit pass.
    async fn race(t: &AttemptTracker, users: impl Fn(usize) -> String) -> usize {
        let mut set = tokio::task::JoinSet::new();
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        for i in 0..50 {
            let (t, barrier, user) = (t.clone(), barrier.clone(), users(i));
            set.spawn(async move {
                barrier.wait().await;
                match t.begin_login(&user, ip("203.0.113.7")).await {
                    Ok(attempt) => {
                        t.login_failed(attempt).await;
                        1
                    }
                    Err(_) => 0,
                }
            });
        }
        set.join_all().await.into_iter().sum()
    }

    async fn parallel_reservations_let_exactly_the_limit_through(t: AttemptTracker) {
        assert_eq!(race(&t, |_| "alice".to_owned()).await, 5, "per user+client");
        assert_eq!(
            race(&t, |i| format!("user{i}")).await,
            20 - 5,
            "per client: 5 of its 20 already spent on alice"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_reservations_let_exactly_the_limit_through_in_memory() {
        parallel_reservations_let_exactly_the_limit_through(AttemptTracker::default()).await;
    }

    #[cfg(feature = "redis")]
    async fn redis_tracker() -> AttemptTracker {
        use crate::store::redis::{RedisStore, redis_server};
        let store = RedisStore::connect(
            &redis_server::single().urls,
            &redis_server::unique_prefix("attempts"),
            Duration::from_secs(2),
        )
        .await
        .expect("connect to the test Redis");
        AttemptTracker::with_backend(
            AttemptConfig::new(),
            Arc::new(super::super::RedisAttemptBackend::new(store.connection())),
        )
    }

    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_reservations_let_exactly_the_limit_through_on_redis() {
        parallel_reservations_let_exactly_the_limit_through(redis_tracker().await).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn the_redis_backend_follows_the_same_rules() {
        let t = redis_tracker().await;
        let (attacker, laptop) = (ip("203.0.113.7"), ip("198.51.100.20"));
        for _ in 0..5 {
            fail(&t, "alice", attacker).await;
        }
        let locked = t.begin_login("alice", attacker).await.unwrap_err();
        assert!((899..=900).contains(&locked.retry_after_secs()));
        // Success clears the user+client count and releases the client's reservation.
        for _ in 0..30 {
            succeed(&t, "alice", laptop).await;
        }
        for _ in 0..4 {
            fail(&t, "bob", laptop).await;
        }
        succeed(&t, "bob", laptop).await;
        for _ in 0..5 {
            fail(&t, "bob", laptop).await;
        }
        assert!(t.begin_login("bob", laptop).await.is_err());
        // The user-alone count slows, never refuses: 10 failures of alice so far would be
        // needed; 5 from the attacker and none since.
        assert_eq!(succeed(&t, "alice", laptop).await, Duration::ZERO);
        for i in 0..5 {
            fail(&t, "alice", ip(&format!("192.0.2.{i}"))).await;
        }
        assert_eq!(
            succeed(&t, "alice", laptop).await,
            Duration::from_millis(250)
        );
        // The refresh bucket.
        for _ in 0..19 {
            t.record_refresh_failure(laptop).await;
        }
        assert!(t.check_refresh(laptop).await.is_ok());
        t.record_refresh_failure(laptop).await;
        assert!(t.check_refresh(laptop).await.is_err());
        assert!(t.check_refresh(attacker).await.is_ok());
    }

    /// An abandoned attempt (the check could not be made) gives both reservations back and
    /// keeps the earlier failures; the user's delay count does not grow.
    async fn an_abandoned_attempt_is_given_back_and_clears_nothing(t: AttemptTracker) {
        let from = ip("198.51.100.20");
        let abandon = async |user: &str| {
            let attempt = t.begin_login(user, from).await.expect("not locked");
            t.login_abandoned(attempt).await;
        };
        for _ in 0..50 {
            abandon("alice").await;
        }
        for i in 0..50 {
            abandon(&format!("user{i}")).await;
        }
        // Four wrong guesses, abandoned attempts between them: the fifth is still the last.
        for _ in 0..4 {
            fail(&t, "alice", from).await;
            abandon("alice").await;
        }
        fail(&t, "alice", from).await;
        assert!(t.begin_login("alice", from).await.is_err());
        // The client key holds those five: fifteen more failures at others exhaust it.
        for i in 0..15 {
            abandon(&format!("other{i}")).await;
            fail(&t, &format!("other{i}"), from).await;
        }
        assert!(t.begin_login("fresh", from).await.is_err());
        // The delay count of a user only grows with failures.
        let elsewhere = ip("192.0.2.1");
        for _ in 0..20 {
            let attempt = t.begin_login("carol", elsewhere).await.unwrap();
            assert_eq!(attempt.delay(), Duration::ZERO);
            t.login_abandoned(attempt).await;
        }
    }

    #[tokio::test]
    async fn an_abandoned_attempt_is_given_back_in_memory() {
        an_abandoned_attempt_is_given_back_and_clears_nothing(tracker().0).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn an_abandoned_attempt_is_given_back_on_redis() {
        an_abandoned_attempt_is_given_back_and_clears_nothing(redis_tracker().await).await;
    }

    #[tokio::test]
    async fn success_releases_the_reservation() {
        let (t, _) = tracker_with(AttemptConfig::new().max_failures_per_ip(3));
        let from = ip("198.51.100.1");
        // Four failures and a success: the user+client count starts over.
        let (t5, _) = tracker();
        for _ in 0..4 {
            fail(&t5, "alice", from).await;
        }
        succeed(&t5, "alice", from).await;
        for _ in 0..5 {
            fail(&t5, "alice", from).await;
        }
        assert!(t5.begin_login("alice", from).await.is_err());

        // The client's count keeps its failures but not the successes.
        fail(&t, "x", from).await;
        fail(&t, "y", from).await;
        for _ in 0..50 {
            succeed(&t, "alice", from).await;
        }
        fail(&t, "z", from).await;
        assert!(t.begin_login("alice", from).await.is_err());
        // A reservation held while others race counts against them until it is released.
        let (t, _) = tracker_with(AttemptConfig::new().max_failures_per_ip(2));
        let first = t.begin_login("alice", from).await.unwrap();
        let second = t.begin_login("bob", from).await.unwrap();
        t.login_succeeded(first).await;
        t.login_succeeded(second).await;
        succeed(&t, "carol", from).await;
        succeed(&t, "carol", from).await;
    }

    #[tokio::test]
    async fn the_delay_grows_on_the_user_alone_and_never_refuses() {
        let (t, clock) = tracker();
        let laptop = ip("198.51.100.20");
        let ms = Duration::from_millis;
        // One failure from each of many clients: none of them is locked out, but alice's
        // logins, from anywhere, are slowed.
        for k in 1..=14 {
            fail(&t, "alice", ip(&format!("192.0.2.{k}"))).await;
            let want = match k {
                ..=9 => 0,
                10 => 250,
                11 => 500,
                12 => 1000,
                _ => 2000,
            };
            assert_eq!(succeed(&t, "alice", laptop).await, ms(want), "after {k}");
        }
        // Other users are not slowed.
        assert_eq!(succeed(&t, "bob", laptop).await, Duration::ZERO);
        // A hundred more failures from a hundred clients: still only a delay, capped.
        for i in 0..100 {
            fail(&t, "alice", ip(&format!("10.1.0.{i}"))).await;
        }
        assert_eq!(succeed(&t, "alice", laptop).await, ms(2000));
        // The window ends: no delay.
        clock.advance(Duration::from_secs(15 * 60));
        assert_eq!(succeed(&t, "alice", laptop).await, Duration::ZERO);
    }

    #[test]
    fn the_delay_schedule() {
        let c = AttemptConfig::new();
        let ms = |n| c.user_delay(n).as_millis();
        assert_eq!(
            [0, 9, 10, 11, 12, 13, 14, 1000, u32::MAX].map(ms),
            [0, 0, 250, 500, 1000, 2000, 2000, 2000, 2000]
        );
        assert_eq!(
            AttemptConfig::new().user_delay_after(0).user_delay(1000),
            Duration::ZERO
        );
        let c = AttemptConfig::new().max_user_delay(Duration::from_millis(300));
        assert_eq!(c.user_delay(12), Duration::from_millis(300));
    }

    #[tokio::test]
    async fn windows_and_lock_outs_expire_on_the_clock() {
        let (t, clock) = tracker();
        let from = ip("198.51.100.1");
        // Four failures, then the window ends: they do not add up with the next ones.
        for _ in 0..4 {
            fail(&t, "alice", from).await;
            clock.advance(MINUTE);
        }
        clock.advance(Duration::from_secs(11 * 60));
        for _ in 0..5 {
            fail(&t, "alice", from).await;
        }
        // The sixth starts a lock-out of 15 minutes, which further attempts do not extend.
        assert_eq!(
            t.begin_login("alice", from).await.unwrap_err().retry_after,
            Duration::from_secs(900)
        );
        clock.advance(Duration::from_secs(899));
        assert_eq!(
            t.begin_login("alice", from).await.unwrap_err().retry_after,
            Duration::from_secs(1)
        );
        clock.advance(Duration::from_secs(1));
        // After the lock-out the count starts from zero.
        for _ in 0..5 {
            fail(&t, "alice", from).await;
        }
        assert!(t.begin_login("alice", from).await.is_err());
    }

    #[tokio::test]
    async fn refresh_failures_have_their_own_bucket() {
        let (t, clock) = tracker();
        let from = ip("198.51.100.1");
        for _ in 0..19 {
            t.record_refresh_failure(from).await;
        }
        assert!(t.check_refresh(from).await.is_ok());
        t.record_refresh_failure(from).await;
        let locked = t.check_refresh(from).await.unwrap_err();
        assert_eq!(locked.retry_after_secs(), 900);
        // Logins from that client are not refused, and failed logins do not touch refreshes.
        succeed(&t, "alice", from).await;
        let other = ip("198.51.100.2");
        for i in 0..20 {
            fail(&t, &format!("user{i}"), other).await;
        }
        assert!(t.check_refresh(other).await.is_ok());
        clock.advance(Duration::from_secs(900));
        assert!(t.check_refresh(from).await.is_ok());
    }

    #[tokio::test]
    async fn zero_disables_a_limit_and_long_user_ids_are_hashed() {
        let (t, _) = tracker_with(
            AttemptConfig::new()
                .max_failures_per_ip(0)
                .max_failures_per_user_client(2)
                .max_refresh_failures_per_ip(0),
        );
        let from = ip("198.51.100.1");
        let long = "x".repeat(10_000);
        for i in 0..50 {
            fail(&t, &format!("u{i}"), from).await;
            t.record_refresh_failure(from).await;
        }
        assert!(t.check_refresh(from).await.is_ok());
        fail(&t, &long, from).await;
        fail(&t, &long, from).await;
        assert!(t.begin_login(&long, from).await.is_err());
        let keys = LoginKeys::new(&long, from, 64);
        assert_eq!(
            keys.user_client,
            format!("login:uc#{}|198.51.100.1", &user_part(&long).1)
        );
        assert_eq!(keys.user.len(), "login:user#".len() + 64);
        assert_eq!(
            LoginKeys::new("a|b", ip("2001:db8::1"), 64).user_client,
            "login:uc:a|b|2001:db8::/64"
        );
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
            assert_eq!(b.reserve_now(&format!("login:ip:{i}"), T0, policy), Ok(()));
        }
        assert_eq!(b.reserve_now("login:ip:0", T0, policy), Ok(()));
        assert!(b.reserve_now("login:ip:0", T0, policy).is_err());
        b.run_pending_tasks();
        assert_eq!(b.entry_count(), 100);
        // moka's timer wheel works in ticks of about one second.
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.entry_count() != 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            b.run_pending_tasks();
        }
        assert_eq!(b.entry_count(), 1, "only the locked key is still needed");
        assert!(b.state_now("login:ip:0", T0).locked_until_ms.is_some());
    }

    #[tokio::test]
    async fn a_flood_of_distinct_clients_keeps_memory_bounded() {
        let backend = Arc::new(MemoryAttemptBackend::new(1_000));
        let t = AttemptTracker::with_backend(AttemptConfig::new(), backend.clone());
        for i in 0..20_000u32 {
            let [_, a, b, c] = i.to_be_bytes();
            let from = IpAddr::from([10, a, b, c]);
            fail(&t, &format!("user{i}"), from).await;
            t.record_refresh_failure(from).await;
        }
        backend.run_pending_tasks();
        assert!(backend.entry_count() <= 1_000, "{}", backend.entry_count());
    }
}

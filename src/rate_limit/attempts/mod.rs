//! [`AttemptTracker`]: failed logins per user+client and per client, a slowing delay per user,
//! and failed refreshes per client, with lock-outs.
//!
#![doc = include_str!("attempts.md")]

mod backend;
mod memory;
mod refusal;
/// A backend call, until the deadline of the request it serves (the login and token routes
/// give each request one, for all its store I/O): past it, the call fails as the backend
/// failing would.
async fn io<T>(
    call: impl std::future::Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    crate::deadline::bound(call)
        .await
        .unwrap_or_else(|_| Err(BackendError::new("the request's deadline passed")))
}

/// The first step of the per-user delay; each further failure doubles it, up to the cap.
const FIRST_USER_DELAY: Duration = Duration::from_millis(250);

/// One key's rule under `config`, with `max_failures` attempts.
fn policy(config: &AttemptConfig, max_failures: u32) -> AttemptPolicy {
    AttemptPolicy {
        max_failures,
        window: config.window,
        lockout: config.lockout,
    }
}

/// The delay after `failures` failures of one user in the window.
fn user_delay(config: &AttemptConfig, failures: u32) -> Duration {
    if config.user_delay_after == 0 || failures < config.user_delay_after {
        return Duration::ZERO;
    }
    let doublings = (failures - config.user_delay_after).min(16);
    FIRST_USER_DELAY
        .saturating_mul(1 << doublings)
        .min(config.max_user_delay)
}

#[cfg(test)]
mod tests;

use crate::config::AttemptConfig;
pub use backend::{AttemptBackend, AttemptPolicy, AttemptState};
pub use memory::MemoryAttemptBackend;
pub use refusal::{LockedOut, LoginRefused};

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::backend::{BackendError, ceil_secs};
use super::client_ip::IpKey;
// The tests (tests.rs) name response headers through `use super::*`.
/// User ids longer than this are keyed by their SHA-256, so a client cannot make the tracker
/// hold megabytes per entry.
const MAX_USER_KEY_LEN: usize = 128;
/// How much of a user id goes into a log line.
const MAX_LOGGED_USER_LEN: usize = 64;

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
/// ([`TokenRoutes`](crate::routes::TokenRoutes) does both).
///
/// Lock-outs are logged at `warn` with the user id and address; no password or token is ever
/// seen by the tracker. When the backend fails, a login is refused before its password is
/// checked ([`LoginRefused::Unavailable`], fail closed), while the refresh tracking lets
/// requests through (fail open); the error is logged. Cheap to clone; clones share the counts.
///
#[doc = include_str!("attempts.md")]
#[derive(Clone)]
pub struct AttemptTracker {
    inner: Arc<Inner>,
}

/// Why a reservation was not made.
enum Reservation {
    /// Locked out until this instant (ms).
    Locked(u64),
    /// The backend did not answer.
    Unavailable,
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
    /// [`LoginRefused::LockedOut`] when the user+client or the client is locked out, or this
    /// attempt is one too many and starts the lock-out; with the time left.
    /// [`LoginRefused::Unavailable`] when the backend cannot answer: login fails closed (the
    /// other limits, and the refresh tracking, fail open). Nothing is reserved then.
    pub async fn begin_login(&self, user: &str, ip: IpAddr) -> Result<LoginAttempt, LoginRefused> {
        let config = &self.inner.config;
        let backend = &self.inner.backend;
        let now = config.clock.now_ms();
        let keys = LoginKeys::new(user, ip, config.ipv6_prefix_len);

        let reserved_user_client = match self
            .reserve(&keys.user_client, now, config.max_per_user_client)
            .await
        {
            Ok(reserved) => reserved,
            Err(Reservation::Locked(until)) => {
                return Err(self.refused(&keys, "user+client", now, until).into());
            }
            Err(Reservation::Unavailable) => return Err(LoginRefused::Unavailable),
        };
        let reserved_ip = match self.reserve(&keys.ip, now, config.max_per_ip).await {
            Ok(reserved) => reserved,
            Err(refusal) => {
                if reserved_user_client {
                    self.release(&keys.user_client, now).await;
                }
                return Err(match refusal {
                    Reservation::Locked(until) => self.refused(&keys, "client", now, until).into(),
                    Reservation::Unavailable => LoginRefused::Unavailable,
                });
            }
        };
        let failures = if config.user_delay_after == 0 || config.max_user_delay.is_zero() {
            0
        } else {
            match io(backend.state(&keys.user, now)).await {
                Ok(state) => state.count,
                Err(error) => {
                    tracing::warn!(%error, "attempt backend failed; login refused (fail closed)");
                    for (reserved, key) in [
                        (reserved_user_client, &keys.user_client),
                        (reserved_ip, &keys.ip),
                    ] {
                        if reserved {
                            self.release(key, now).await;
                        }
                    }
                    return Err(LoginRefused::Unavailable);
                }
            }
        };
        let delay = user_delay(config, failures);
        if !delay.is_zero() {
            tracing::debug!(user = ?keys.logged_user, ip = %keys.addr, failures, delay_ms = crate::clock::duration_ms(delay), "login slowed: many failures for this user");
        }
        Ok(LoginAttempt {
            keys,
            reserved_user_client,
            reserved_ip,
            delay,
        })
    }

    /// Whether `locked` was answered to the attempt that started the lock-out (its time left
    /// is the whole lock-out), rather than to one made while it lasts.
    pub(crate) fn started(&self, locked: &LockedOut) -> bool {
        locked.retry_after == self.inner.config.lockout
    }

    /// The password was right: releases the reservation. The user+client count is cleared;
    /// the client's count keeps its earlier failures but not this attempt (so a client holding
    /// one valid account cannot reset its count between guesses at others). The user's delay
    /// count is kept: one client's success says nothing about guesses from the others.
    pub async fn login_succeeded(&self, attempt: LoginAttempt) {
        let now = self.inner.config.clock.now_ms();
        if self.inner.config.max_per_user_client != 0
            && let Err(error) = io(self.inner.backend.clear(&attempt.keys.user_client)).await
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
            let policy = policy(config, 0);
            if let Err(error) = io(self.inner.backend.record_failure(&keys.user, now, policy)).await
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
        match io(self.inner.backend.state(&key, now)).await {
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
        let policy = policy(config, config.max_refresh_per_ip);
        match io(self
            .inner
            .backend
            .record_failure(&self.refresh_key(ip), now, policy))
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
    async fn reserve(&self, key: &str, now: u64, max: u32) -> Result<bool, Reservation> {
        if max == 0 {
            return Ok(false);
        }
        let policy = policy(&self.inner.config, max);
        match io(self.inner.backend.reserve(key, now, policy)).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(until)) => Err(Reservation::Locked(until.max(now + 1))),
            Err(error) => {
                tracing::warn!(%error, "attempt backend failed; login refused (fail closed)");
                Err(Reservation::Unavailable)
            }
        }
    }

    async fn release(&self, key: &str, now: u64) {
        if let Err(error) = io(self.inner.backend.release(key, now)).await {
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
/// [`MAX_USER_KEY_LEN`] or holding a NUL, which a PostgreSQL `text` key cannot hold (the
/// separators differ, so no id can pose as a hash).
fn user_part(user: &str) -> (&'static str, std::borrow::Cow<'_, str>) {
    if user.len() <= MAX_USER_KEY_LEN && !user.contains('\0') {
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

//! [`SessionManager`]: the one place holding the session rules of SPEC §4.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderMap;

use crate::cache::RevocationCache;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{ConfigError, SessionConfig};
use crate::error::{AuthError, ErrorCode};
use crate::layer::SessionLayer;
use crate::revocation::SessionStatus;
use crate::session::{Session, SessionId};
use crate::store::{
    CreateOutcome, Lifetimes, MemoryStore, ReuseKind, RotateOutcome, RotateRequest, SessionLimit,
    SessionRecord, SessionStore, StoreError, purge_at,
};
use crate::telemetry::{self, Escaped};
use crate::token::TokenCodec;
use crate::token::refresh::{RefreshClaims, RefreshKeys};

/// Longest accepted user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;
/// Most roles a session may carry.
pub const MAX_ROLES: usize = 32;

/// Why a session operation failed. Each maps to one status and error code of SPEC §5.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The refresh token is malformed or forged: it does not parse, or its MAC does not
    /// verify under any configured secret. (A genuine token of a session that has ended is
    /// [`Revoked`](Self::Revoked) or [`TokenExpired`](Self::TokenExpired).)
    #[error("the refresh token is invalid")]
    InvalidToken,
    /// The refresh token has passed its own expiry.
    #[error("the refresh token has expired; log in again")]
    TokenExpired,
    /// A retired refresh token was presented: the session has been revoked as stolen.
    #[error(
        "this refresh token was already used; the session has been ended for safety, log in again"
    )]
    TokenReused(ReuseKind),
    /// The session has been revoked (logout, eviction, reuse detection).
    #[error("the session has ended; log in again")]
    Revoked,
    /// The session has passed its absolute lifetime.
    #[error("the session has reached its maximum lifetime; log in again")]
    SessionExpired,
    /// The user has the maximum number of sessions and the policy is `deny`.
    #[error("too many active sessions for this user; log out elsewhere first")]
    LimitReached,
    /// The input is not acceptable (e.g. an empty or oversized user id).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// The session store could not be reached; nothing was changed.
    #[error("the session store is unavailable; try again shortly")]
    Unavailable(#[from] StoreError),
}

impl SessionError {
    /// The HTTP status for this error.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            SessionError::LimitReached => StatusCode::FORBIDDEN,
            SessionError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            SessionError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The JSON error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            SessionError::InvalidToken => ErrorCode::InvalidToken,
            SessionError::TokenExpired => ErrorCode::TokenExpired,
            SessionError::TokenReused(_) => ErrorCode::RefreshTokenReused,
            SessionError::Revoked => ErrorCode::TokenRevoked,
            SessionError::SessionExpired => ErrorCode::SessionExpired,
            SessionError::LimitReached => ErrorCode::Forbidden,
            SessionError::InvalidInput(_) => ErrorCode::InvalidRequest,
            SessionError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

/// An access token and a refresh token for one session, as login and refresh hand them out.
/// `Debug` shows neither token.
#[derive(Clone)]
pub struct TokenPair {
    /// The access token (a JWT).
    pub access_token: String,
    /// The refresh token (opaque).
    pub refresh_token: String,
    /// Time until the access token expires.
    pub expires_in: Duration,
    /// When the access token expires, in seconds since the epoch.
    pub access_expires_at: u64,
    /// When the refresh token expires, in milliseconds since the epoch.
    pub refresh_expires_at: u64,
    /// The session.
    pub session_id: SessionId,
    /// The user.
    pub user_id: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish()
    }
}

/// Counters of session events since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionCounters {
    /// Sessions created.
    pub created: u64,
    /// Successful refreshes (rotations and grace answers).
    pub refreshed: u64,
    /// Refreshes refused.
    pub refresh_failed: u64,
    /// Sessions revoked by logout or logout-all.
    pub revoked: u64,
    /// Sessions evicted by the per-user limit.
    pub evicted: u64,
    /// Refresh-token reuse detected: the immediate parent after the grace interval.
    pub reuse_retired: u64,
    /// Refresh-token reuse detected: an older ancestor.
    pub reuse_ancestor: u64,
    /// Logins refused by the `deny` policy.
    pub denied: u64,
}

#[derive(Default)]
struct Counters {
    created: AtomicU64,
    refreshed: AtomicU64,
    refresh_failed: AtomicU64,
    revoked: AtomicU64,
    evicted: AtomicU64,
    reuse_retired: AtomicU64,
    reuse_ancestor: AtomicU64,
    denied: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

struct Inner {
    config: SessionConfig,
    codec: TokenCodec,
    store: Arc<dyn SessionStore>,
    refresh_keys: RefreshKeys,
    cache: RevocationCache,
    clock: SharedClock,
    lifetimes: Lifetimes,
    counters: Counters,
}

/// Creates, refreshes, revokes and lists sessions; hands out the [`SessionLayer`] and
/// [`TokenRoutes`](crate::TokenRoutes) that serve them. Cheap to clone.
///
/// ```
/// use tower_jwt_session::{SessionConfig, SessionError, SessionManager};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let login = manager.create_session("alice", &["user".to_owned()]).await?;
///
/// // The client refreshes: the old refresh token is retired, a successor issued.
/// let refreshed = manager.refresh(&login.refresh_token).await?;
/// assert_ne!(refreshed.refresh_token, login.refresh_token);
///
/// // Logout ends the session at once.
/// manager.revoke(login.session_id).await?;
/// assert!(matches!(manager.refresh(&refreshed.refresh_token).await, Err(SessionError::Revoked)));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.inner.config)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SessionManager`] with another store or clock.
#[derive(Debug)]
#[must_use]
pub struct SessionManagerBuilder {
    config: SessionConfig,
    store: Option<Arc<dyn SessionStore>>,
    clock: Option<SharedClock>,
}

impl SessionManagerBuilder {
    /// The session store. The default is a new [`MemoryStore`].
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A shared session store.
    pub fn shared_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock. The default is [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the manager.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration does not validate.
    pub fn build(self) -> Result<SessionManager, ConfigError> {
        let config = self.config;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let codec = TokenCodec::with_clock(&config, clock.clone())?;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let refresh_keys = RefreshKeys::from_config(&config);
        let access_retention = (config.access_token_ttl + config.leeway).as_millis() as u64;
        let cache = RevocationCache::new(
            store.clone(),
            clock.clone(),
            config.revocation_cache_capacity,
            config.revocation_cache_ttl,
            config.access_token_ttl + config.leeway,
            config.fail_open,
        );
        store.watch_revocations(cache.sink());
        let lifetimes = Lifetimes {
            refresh_ttl: config.refresh_token_ttl.as_millis() as u64,
            reuse_interval: config.reuse_interval.as_millis() as u64,
            access_retention,
        };
        Ok(SessionManager {
            inner: Arc::new(Inner {
                config,
                codec,
                store,
                refresh_keys,
                cache,
                clock,
                lifetimes,
                counters: Counters::default(),
            }),
        })
    }
}

impl SessionManager {
    /// A manager over a new [`MemoryStore`] on the system clock.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration does not validate.
    pub fn new(config: SessionConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A builder, to choose the store or the clock.
    pub fn builder(config: SessionConfig) -> SessionManagerBuilder {
        SessionManagerBuilder {
            config,
            store: None,
            clock: None,
        }
    }

    /// The layer that protects routes with this manager's tokens and revocation state.
    pub fn layer(&self) -> SessionLayer<RevocationCache> {
        SessionLayer::with_revocation(self.inner.codec.clone(), self.inner.cache.clone())
    }

    /// The service of the token routes (SPEC §5), under the default prefix `/api/token`.
    pub fn refresh_service(&self) -> crate::TokenRoutes {
        crate::TokenRoutes::new(self)
    }

    /// The token codec.
    pub fn codec(&self) -> &TokenCodec {
        &self.inner.codec
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The revocation cache used by [`layer`](Self::layer).
    pub fn revocation_cache(&self) -> &RevocationCache {
        &self.inner.cache
    }

    /// The store's short name (`memory`, `redis`).
    pub fn store_kind(&self) -> &'static str {
        self.inner.store.kind()
    }

    /// Counters of session events since start.
    pub fn counters(&self) -> SessionCounters {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SessionCounters {
            created: get(&c.created),
            refreshed: get(&c.refreshed),
            refresh_failed: get(&c.refresh_failed),
            revoked: get(&c.revoked),
            evicted: get(&c.evicted),
            reuse_retired: get(&c.reuse_retired),
            reuse_ancestor: get(&c.reuse_ancestor),
            denied: get(&c.denied),
        }
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Runs a store operation, recording its latency.
    async fn timed<T>(
        &self,
        op: &'static str,
        operation: impl std::future::Future<Output = T>,
    ) -> T {
        let start = std::time::Instant::now();
        let out = operation.await;
        telemetry::store_latency(self.inner.store.kind(), op, start.elapsed());
        out
    }

    /// Starts a session for an authenticated user (call it from your login handler) and returns
    /// its first token pair. Applies the per-user limit and its policy.
    ///
    /// # Errors
    /// [`SessionError::InvalidInput`] for an empty or oversized user id or role list,
    /// [`SessionError::LimitReached`] under the `deny` policy, [`SessionError::Unavailable`]
    /// when the store cannot be reached.
    pub async fn create_session(
        &self,
        user_id: &str,
        roles: &[String],
    ) -> Result<TokenPair, SessionError> {
        if user_id.is_empty() || user_id.len() > MAX_USER_ID_LEN || user_id.contains('\0') {
            return Err(SessionError::InvalidInput(
                "the user id must be 1 to 256 bytes without NUL",
            ));
        }
        if roles.len() > MAX_ROLES || roles.iter().any(|r| r.len() > 64 || r.contains('\0')) {
            return Err(SessionError::InvalidInput(
                "at most 32 roles of at most 64 bytes each, without NUL",
            ));
        }
        let inner = &*self.inner;
        let now = self.now_ms();
        let expires_at = now.saturating_add(inner.config.session_ttl.as_millis() as u64);
        let refresh_expires_at = now
            .saturating_add(inner.lifetimes.refresh_ttl)
            .min(expires_at);
        let record = SessionRecord {
            session_id: inner.store.new_session_id(user_id),
            user_id: user_id.to_owned(),
            roles: roles.to_vec(),
            created_at: now,
            last_active_at: now,
            expires_at,
            generation: 0,
            rotated_at: now,
            refresh_expires_at,
            revoked_at: None,
            purge_at: purge_at(expires_at, refresh_expires_at, now, &inner.lifetimes),
        };
        let limit = SessionLimit {
            max: inner.config.max_sessions,
            policy: inner.config.limit_policy,
        };
        match inner
            .store
            .create(record.clone(), limit, &inner.lifetimes, now)
            .await?
        {
            CreateOutcome::Created { evicted } => {
                for sid in &evicted {
                    inner.cache.mark_revoked(*sid);
                    tracing::info!(session_id = %sid, user_id = %Escaped::new(user_id), "session evicted by the per-user limit");
                }
                bump(&inner.counters.evicted, evicted.len() as u64);
                bump(&inner.counters.created, 1);
                telemetry::revoked("evicted", evicted.len() as u64);
                telemetry::created();
                inner.cache.mark_active(record.session_id);
                tracing::debug!(session_id = %record.session_id, user_id = %Escaped::new(user_id), "session created");
                Ok(self.token_pair(&record))
            }
            CreateOutcome::LimitReached => {
                bump(&inner.counters.denied, 1);
                telemetry::denied();
                tracing::info!(user_id = %Escaped::new(user_id), "login refused: session limit reached");
                Err(SessionError::LimitReached)
            }
        }
    }

    /// Rotates a refresh token: retires it and returns a successor with a new access token.
    ///
    /// Presenting the immediate parent of the current token within the reuse interval returns
    /// the current token again (racing tabs, lost responses); anything older, or the parent
    /// after the interval, revokes the whole session.
    ///
    /// # Errors
    /// [`SessionError::InvalidToken`], [`TokenExpired`](SessionError::TokenExpired),
    /// [`TokenReused`](SessionError::TokenReused), [`Revoked`](SessionError::Revoked),
    /// [`SessionExpired`](SessionError::SessionExpired), [`Unavailable`](SessionError::Unavailable).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, SessionError> {
        let result = self.refresh_inner(refresh_token).await;
        match &result {
            Ok(_) => {
                bump(&self.inner.counters.refreshed, 1);
                telemetry::refresh("success");
            }
            Err(error) => {
                bump(&self.inner.counters.refresh_failed, 1);
                telemetry::refresh(error.code().as_str());
                tracing::debug!(%error, "refresh refused");
            }
        }
        result
    }

    async fn refresh_inner(&self, refresh_token: &str) -> Result<TokenPair, SessionError> {
        let inner = &*self.inner;
        let claims = self
            .parse_refresh_token(refresh_token)
            .ok_or(SessionError::InvalidToken)?;
        let now = self.now_ms();
        let request = RotateRequest {
            session_id: claims.session_id,
            generation: claims.generation,
            now,
            lifetimes: inner.lifetimes,
        };
        match self.timed("rotate", inner.store.rotate(request)).await? {
            RotateOutcome::Rotated(record) | RotateOutcome::Grace(record) => {
                inner.cache.mark_active(record.session_id);
                Ok(self.token_pair(&record))
            }
            RotateOutcome::Reused(record, kind) => {
                inner.cache.mark_revoked(record.session_id);
                match kind {
                    ReuseKind::RetiredAfterInterval => bump(&inner.counters.reuse_retired, 1),
                    _ => bump(&inner.counters.reuse_ancestor, 1),
                }
                telemetry::reuse(kind.as_str());
                telemetry::revoked("reuse", 1);
                tracing::warn!(
                    session_id = %record.session_id,
                    user_id = %record.user_id,
                    kind = kind.as_str(),
                    presented_generation = claims.generation,
                    current_generation = record.generation,
                    "refresh token reuse detected: session revoked"
                );
                Err(SessionError::TokenReused(kind))
            }
            RotateOutcome::SessionExpired => Err(SessionError::SessionExpired),
            RotateOutcome::TokenExpired => Err(SessionError::TokenExpired),
            // The token's MAC verified, so this server issued it and its session existed. The
            // store deletes a session as soon as it ends (and forgets it once no token of it
            // can be used), so "no such session" means ended, or expired.
            _ if now >= claims.expires_at_ms => Err(SessionError::TokenExpired),
            _ => Err(SessionError::Revoked),
        }
    }

    /// Ends one session now: its access and refresh tokens stop working. Returns whether it was
    /// live.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn revoke(&self, session_id: SessionId) -> Result<bool, SessionError> {
        let live = self
            .timed("revoke", self.inner.store.revoke(session_id, self.now_ms()))
            .await?;
        self.inner.cache.mark_revoked(session_id);
        if live {
            bump(&self.inner.counters.revoked, 1);
            telemetry::revoked("logout", 1);
            tracing::debug!(%session_id, "session revoked");
        }
        Ok(live)
    }

    /// Ends every session of a user now. Returns how many were live.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn revoke_all(&self, user_id: &str) -> Result<usize, SessionError> {
        let revoked = self
            .timed(
                "revoke_all",
                self.inner.store.revoke_all(user_id, self.now_ms()),
            )
            .await?;
        telemetry::revoked("logout", revoked.len() as u64);
        for sid in &revoked {
            self.inner.cache.mark_revoked(*sid);
        }
        bump(&self.inner.counters.revoked, revoked.len() as u64);
        tracing::debug!(user_id = %Escaped::new(user_id), count = revoked.len(), "all sessions revoked");
        Ok(revoked.len())
    }

    /// A user's live sessions, oldest first.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, SessionError> {
        Ok(self
            .timed("list", self.inner.store.list(user_id, self.now_ms()))
            .await?)
    }

    /// Checks that the store answers.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when it does not.
    pub async fn health(&self) -> Result<(), SessionError> {
        Ok(self.timed("ping", self.inner.store.ping()).await?)
    }

    /// Verifies the bearer token of `headers` as [`SessionLayer`] does, revocation included.
    ///
    /// # Errors
    /// The [`AuthError`] the layer would refuse the request with.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Session, AuthError> {
        let token = crate::layer::bearer_token(headers)?;
        self.check_revocation(self.inner.codec.verify_bytes(token)?)
            .await
    }

    /// Verifies an access token completely, revocation included.
    ///
    /// # Errors
    /// The [`AuthError`] the layer would refuse it with.
    pub async fn verify_access_token(&self, token: &str) -> Result<Session, AuthError> {
        self.check_revocation(self.inner.codec.verify(token)?).await
    }

    async fn check_revocation(&self, session: Session) -> Result<Session, AuthError> {
        match self.inner.cache.status(session.session_id()).await {
            SessionStatus::Active => Ok(session),
            status => Err(crate::layer::refusal(status)),
        }
    }

    fn token_pair(&self, record: &SessionRecord) -> TokenPair {
        let inner = &*self.inner;
        let access = inner.codec.issue_until(
            &record.user_id,
            record.session_id,
            &record.roles,
            record.expires_at / 1000,
        );
        let claims = RefreshClaims {
            session_id: record.session_id,
            generation: record.generation,
            expires_at_ms: record.refresh_expires_at,
        };
        let now_ms = self.now_ms();
        TokenPair {
            access_token: access.token,
            refresh_token: self.inner.refresh_keys.mint(&claims),
            expires_in: Duration::from_millis((access.expires_at * 1000).saturating_sub(now_ms)),
            access_expires_at: access.expires_at,
            refresh_expires_at: record.refresh_expires_at,
            session_id: record.session_id,
            user_id: record.user_id.clone(),
        }
    }

    /// The session a refresh token was issued for, if its MAC verifies (no store lookup).
    pub(crate) fn refresh_token_session(&self, token: &str) -> Option<SessionId> {
        self.parse_refresh_token(token).map(|c| c.session_id)
    }

    fn parse_refresh_token(&self, token: &str) -> Option<RefreshClaims> {
        self.inner.refresh_keys.parse(token)
    }
}

#[cfg(test)]
mod tests;

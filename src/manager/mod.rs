//! [`SessionManager`]: the one place holding the session rules of [the session rules](crate::routes#sessions-and-tokens).

use std::fmt;
use std::sync::Arc;

mod activity;
mod builder;
pub(crate) mod cache;
mod claims;
mod create;
mod error;
mod pair;
mod refresh;
mod revoke;

pub use activity::SecurityEventHook;
pub use builder::SessionManagerBuilder;
pub use claims::{HookError, HookFailure, NewSession, RefreshContext, RefreshHook, Refreshed};
pub use error::{SessionError, StartupError};
pub use pair::TokenPair;
pub use refresh::RefreshRequest;
pub use revoke::Revoke;

use crate::clock::{SharedClock, duration_ms, system_time};
use crate::config::SessionConfig;
use crate::deadline;
use crate::error::AuthError;
use crate::error::DpopError;
use crate::rate_limit::Limits;
use crate::revocation::SessionStatus;
use crate::session::{AuthContext, ClaimsError, CustomClaims, Session, SessionId};
use crate::store::{
    ActivityBounds, CreateOutcome, DeviceInfo, EndReason, EventKind, Lifetimes, RotateOutcome,
    RotateRequest, SecurityEvent, SessionLimit, SessionRecord, SessionStore, SessionUpdate,
    StoreError, StoreWarning, purge_at,
};
use crate::telemetry::{self, Escaped};
use crate::token::TokenCodec;
use crate::token::dpop::DpopProof;
use crate::token::refresh::{RefreshClaims, RefreshKeys, Thumbprint};
pub use cache::RevocationCache;

/// Longest accepted user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;
/// Most roles a session may carry.
pub const MAX_ROLES: usize = 32;
/// Longest accepted role name, in bytes.
pub(crate) const MAX_ROLE_LEN: usize = 64;

struct Inner {
    config: SessionConfig,
    codec: TokenCodec,
    store: Arc<dyn SessionStore>,
    refresh_keys: RefreshKeys,
    cache: RevocationCache,
    clock: SharedClock,
    lifetimes: Lifetimes,
    hook: Option<builder::Hook>,
    reported: Reported,
    /// How long one request may wait for the store, across all its calls.
    budget: std::time::Duration,
    /// The rate limit, the login lock-out and the failed-refresh tracking, on the store.
    limits: Limits,
    /// The security events' queue to the store and the app's hook.
    activity: activity::Recorder,
    /// How much of each user's activity is kept.
    activity_bounds: ActivityBounds,
    /// The check of DPoP proofs, when a public origin is configured.
    dpop: Option<Dpop>,
}

/// What checking a request's DPoP proof needs: the verifier (its replay cache on the
/// manager's store) and the origin proofs name.
#[derive(Debug, Clone)]
pub(crate) struct Dpop {
    pub(crate) verifier: crate::token::dpop::DpopVerifier,
    pub(crate) origin: crate::token::dpop::PublicOrigin,
}

/// The warning codes last logged, so each is logged when it appears, not on every health call.
#[derive(Default)]
struct Reported(std::sync::Mutex<Vec<&'static str>>);

impl Reported {
    fn report(&self, warnings: &[StoreWarning]) {
        let codes: Vec<&'static str> = warnings.iter().map(StoreWarning::code).collect();
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for warning in warnings.iter().filter(|w| !last.contains(&w.code())) {
            tracing::warn!(code = warning.code(), "{}", warning.message());
        }
        *last = codes;
    }
}

/// Refuses a user id or role list the session rules do not take.
fn check_input(user_id: &str, roles: &[impl AsRef<str>]) -> Result<(), SessionError> {
    if user_id.is_empty() || user_id.len() > MAX_USER_ID_LEN || user_id.contains('\0') {
        return Err(SessionError::InvalidInput(
            "the user id must be 1 to 256 bytes without NUL",
        ));
    }
    let bad_role = |r: &str| r.len() > MAX_ROLE_LEN || r.contains('\0');
    if roles.len() > MAX_ROLES || roles.iter().any(|r| bad_role(r.as_ref())) {
        return Err(SessionError::InvalidInput(
            "at most 32 roles of at most 64 bytes each, without NUL",
        ));
    }
    Ok(())
}

/// Logs claims the app gave that the rules refuse: the app's bug, answered 500.
fn claims_refused(user_id: &str, error: &ClaimsError) {
    tracing::error!(user_id = %Escaped::new(user_id), %error, "the app's custom claims or roles for a session were refused: no token issued");
}

/// Creates, refreshes, revokes and lists sessions: the session rules, with no HTTP in them.
/// Cheap to clone.
///
/// The HTTP side builds on it: [`SessionLayer::from_manager`](crate::SessionLayer::from_manager)
/// protects routes, [`TokenRoutes::new`](crate::routes::TokenRoutes::new) serves the token routes.
///
/// ```
/// use tower_jwt_session::manager::NewSession;
/// use tower_jwt_session::{SessionConfig, SessionError, SessionManager};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let login = manager.create_session(NewSession::new("alice").roles(&["user".to_owned()])).await?;
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

impl SessionManager {
    /// The token codec.
    pub fn codec(&self) -> &TokenCodec {
        &self.inner.codec
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The revocation cache, which
    /// [`SessionLayer::from_manager`](crate::SessionLayer::from_manager) consults.
    pub fn revocation_cache(&self) -> &RevocationCache {
        &self.inner.cache
    }

    /// The protections of the login and token routes: the per-client rate limit, the login
    /// lock-out and the failed-refresh tracking, counted where the sessions are.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The store's short name (`memory`, `redis`).
    pub fn store_kind(&self) -> &'static str {
        self.inner.store.kind()
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// How long one request may wait for the store, across all its store calls (see
    /// [`SessionManagerBuilder::store_timeout`]).
    pub(crate) fn budget(&self) -> std::time::Duration {
        self.inner.budget
    }

    /// Runs a store operation, recording its latency, until the deadline of the request it
    /// serves (the token and login routes set one for the whole request), or for one store
    /// timeout when it serves none.
    async fn timed<T>(
        &self,
        op: &'static str,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = tokio::time::Instant::now();
        let at = deadline::current().unwrap_or_else(|| start + self.budget());
        let out = deadline::within(at, deadline::bound(operation))
            .await
            .unwrap_or(Err(StoreError::Timeout));
        telemetry::store_latency(self.inner.store.kind(), op, start.elapsed());
        out
    }

    /// Records a security event: to the queue, never waiting, never failing.
    fn event(
        &self,
        kind: EventKind,
        user_id: &str,
        session_id: Option<SessionId>,
        device: Option<&DeviceInfo>,
    ) {
        let mut event = SecurityEvent::new(kind, user_id, system_time(self.now_ms()));
        event.session_id = session_id;
        if let Some(device) = device {
            event = event.with_device(device);
        }
        self.inner.activity.record(event);
    }

    /// Records a lock-out of the account `user` (the name a login named), for the login
    /// service.
    pub(crate) fn lockout(&self, user: &str, ip: Option<&str>) {
        // One event per account and lock-out: the user+client and the client keys lock apart,
        // and a lock-out met again restarts; this instance says it once per lock-out period.
        if !self.inner.activity.first_lockout(user) {
            return;
        }
        let mut event = SecurityEvent::new(EventKind::Lockout, user, system_time(self.now_ms()));
        event.ip = ip.map(str::to_owned);
        self.inner.activity.record(event);
    }

    /// A user's security activity, newest first: at most `SESSION_ACTIVITY_MAX` events, none
    /// older than `SESSION_ACTIVITY_RETENTION` (see
    /// [`SessionRules::with_activity_max`](crate::config::SessionRules::with_activity_max)).
    /// Events are written by a background task: one that happened a moment ago may not be
    /// there yet ([`flush_activity`](Self::flush_activity) waits for them). Empty when the
    /// store does not keep the trail.
    ///
    /// ```
    /// use tower_jwt_session::manager::NewSession;
    /// use tower_jwt_session::store::EventKind;
    /// use tower_jwt_session::{SessionConfig, SessionManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// let login = manager.create_session(NewSession::new("alice").roles(&["user"])).await?;
    /// manager.revoke(login.session_id).await?;
    /// manager.flush_activity().await;
    /// let trail = manager.activity("alice").await?;
    /// assert_eq!(trail[0].kind.as_str(), "session_ended");
    /// assert_eq!(trail[1].kind, EventKind::Login);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn activity(&self, user_id: &str) -> Result<Vec<SecurityEvent>, SessionError> {
        if !self.inner.store.keeps_activity() {
            return Ok(Vec::new());
        }
        let bounds = self.inner.activity_bounds;
        Ok(self
            .timed(
                "activity",
                self.inner.store.activity(user_id, bounds, self.now_ms()),
            )
            .await?)
    }

    /// Waits until every security event recorded before the call has been written to the
    /// store (the hook's calls are not waited for): for tests, and before a graceful shutdown.
    pub async fn flush_activity(&self) {
        self.inner.activity.flush().await;
    }

    /// How many security events this manager dropped because its queue was full.
    pub fn dropped_security_events(&self) -> u64 {
        self.inner.activity.dropped()
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

    /// Checks that the store answers, and returns what in its setup can lose sessions or
    /// logouts without an error (a Redis that evicts keys when full); empty when nothing can.
    /// Each warning's message is logged at `warn` when it first appears (not on every call:
    /// load balancers ask often).
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store does not answer.
    pub async fn health(&self) -> Result<Vec<StoreWarning>, SessionError> {
        self.ping().await?;
        let mut warnings = self.timed("warnings", self.inner.store.warnings()).await?;
        warnings.extend(self.inner.limits.warnings());
        if !self.inner.store.keeps_activity() {
            warnings.push(StoreWarning::new(
                "activity_not_kept",
                "the session store does not keep the security activity trail (a store written \
                 before it existed): GET /api/token/activity answers an empty list",
            ));
        }
        self.inner.reported.report(&warnings);
        Ok(warnings)
    }

    /// Checks that the store answers, in one round trip.
    pub(crate) async fn ping(&self) -> Result<(), SessionError> {
        Ok(self.timed("ping", self.inner.store.ping()).await?)
    }

    /// Verifies an access token completely, revocation included.
    ///
    /// # Errors
    /// The [`AuthError`] the layer would refuse it with.
    pub async fn verify_access_token(&self, token: &str) -> Result<Session, AuthError> {
        let codec = &self.inner.codec;
        let session = codec.verify_cached(token.as_bytes(), codec.now_ms())?;
        self.check_revocation(session).await
    }

    async fn check_revocation(&self, session: Session) -> Result<Session, AuthError> {
        match self.inner.cache.status_of(&session).await {
            SessionStatus::Active => Ok(session),
            status => Err(status.refusal()),
        }
    }

    fn token_pair(&self, record: &SessionRecord) -> TokenPair {
        let inner = &*self.inner;
        let access = inner.codec.issue_capped(
            &record.user_id,
            record.session_id,
            &record.roles,
            &record.claims,
            &record.auth,
            record.expires_at,
        );
        let claims = RefreshClaims {
            session_id: record.session_id,
            generation: record.generation,
            expires_at_ms: record.refresh_expires_at,
            jkt: record.auth.jkt.as_deref().and_then(Thumbprint::new),
        };
        let now_ms = self.now_ms();
        TokenPair {
            access_token: access.token,
            refresh_token: self.inner.refresh_keys.mint(&claims),
            expires_in: access
                .expires_at
                .duration_since(system_time(now_ms))
                .unwrap_or_default(),
            access_expires_at: access.expires_at,
            refresh_expires_at: system_time(record.refresh_expires_at),
            session_id: record.session_id,
            user_id: record.user_id.clone(),
        }
    }

    /// The DPoP proof checker of this manager: its settings, replay cache (on the manager's
    /// store, shared by every instance on it) and clock. `None` when no public origin is
    /// configured (`SESSION_PUBLIC_ORIGIN`), which every DPoP mode but `off` requires.
    pub fn dpop_verifier(&self) -> Option<&crate::token::dpop::DpopVerifier> {
        self.inner.dpop.as_ref().map(|d| &d.verifier)
    }

    pub(crate) fn dpop(&self) -> Option<&Dpop> {
        self.inner.dpop.as_ref()
    }

    /// The session a refresh token was issued for, if its MAC verifies (no store lookup).
    pub(crate) fn refresh_token_session(&self, token: &str) -> Option<SessionId> {
        self.parse_refresh_token(token).map(|c| c.session_id)
    }

    fn parse_refresh_token(&self, token: &str) -> Option<RefreshClaims> {
        self.inner.refresh_keys.parse(token)
    }
}

/// Whether every session must be bound to a DPoP key.
fn inner_requires_dpop(config: &SessionConfig) -> bool {
    config.dpop().mode() == crate::config::DpopMode::Required
}

#[cfg(test)]
mod tests;

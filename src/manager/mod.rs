//! [`SessionManager`]: the one place holding the session rules of [the session rules](crate::routes#sessions-and-tokens).

use std::fmt;
use std::sync::Arc;

mod activity;
mod builder;
pub(crate) mod cache;
mod claims;
mod error;
mod pair;
mod revoke;

pub use activity::SecurityEventHook;
pub use builder::SessionManagerBuilder;
pub use claims::{HookError, HookFailure, NewSession, RefreshContext, RefreshHook, Refreshed};
pub use error::{SessionError, StartupError};
pub use pair::TokenPair;
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

    /// Starts a session for an authenticated user (call it from your login handler) and returns
    /// its first token pair. Applies the per-user limit and its policy.
    ///
    /// `session` is a user id (`"alice"`: no roles, no claims) or a [`NewSession`] with all a
    /// session holds: roles, the device it starts from (for the devices list), the app's own
    /// claims (in every access token, read back with [`Session::claims`], until a
    /// [`RefreshHook`] changes them), how the user proved who they are (`amr`, `acr`), and a
    /// DPoP key binding.
    ///
    /// ```
    /// use tower_jwt_session::config::DeviceIp;
    /// use tower_jwt_session::manager::NewSession;
    /// use tower_jwt_session::store::DeviceInfo;
    /// use tower_jwt_session::{SessionConfig, SessionError, SessionManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// manager.create_session("dave").await?;
    /// manager.create_session(NewSession::new("alice").roles(&["user", "admin"])).await?;
    /// let roles: Vec<String> = vec!["user".to_owned()];
    /// manager.create_session(NewSession::new("bob").roles(&roles)).await?;
    ///
    /// let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    /// let device = DeviceInfo::capture(Some(ua), Some("198.51.100.23".parse()?), DeviceIp::Truncated);
    /// let pair = manager
    ///     .create_session(
    ///         NewSession::new("carol")
    ///             .device(device)
    ///             .claims(&serde_json::json!({ "tenant": "acme" })),
    ///     )
    ///     .await?;
    /// let session = manager.verify_access_token(&pair.access_token).await?;
    /// assert_eq!(session.custom_claims().as_json(), r#"{"tenant":"acme"}"#);
    /// assert_eq!(manager.sessions("carol").await?[0].device.label(), "Firefox on Linux");
    ///
    /// // A reserved name is the app's bug: refused, nothing started.
    /// let refused = manager
    ///     .create_session(NewSession::new("eve").claims(&serde_json::json!({ "sub": "root" })))
    ///     .await;
    /// assert!(matches!(refused, Err(SessionError::InvalidClaims(_))));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::InvalidInput`] for an empty or oversized user id or role list,
    /// [`SessionError::LimitReached`] under the `deny` policy, [`SessionError::InvalidClaims`]
    /// for claims that are not an object, use a reserved name, or make the access token longer
    /// than [`MAX_TOKEN_LEN`](crate::token::MAX_TOKEN_LEN), [`SessionError::Dpop`] for a session
    /// without a DPoP binding when DPoP is required, [`SessionError::Unavailable`] when the
    /// store cannot be reached.
    pub async fn create_session(
        &self,
        session: impl Into<NewSession>,
    ) -> Result<TokenPair, SessionError> {
        let now = self.now_ms();
        let (user_id, roles, device, claims, auth) = self.checked(session.into(), now)?;
        self.create(&user_id, roles, device, claims, auth, now)
            .await
    }

    /// The parts of `session`, checked as a token will carry them, with an authentication at
    /// `now`.
    fn checked(
        &self,
        session: NewSession,
        now: u64,
    ) -> Result<(String, Vec<String>, DeviceInfo, CustomClaims, AuthContext), SessionError> {
        let NewSession {
            user_id,
            roles,
            device,
            claims,
            amr,
            acr,
            jkt,
        } = session;
        check_input(&user_id, &roles)?;
        let claims = claims.inspect_err(|e| claims_refused(&user_id, e))?;
        if jkt.is_none() && inner_requires_dpop(&self.inner.config) {
            return Err(SessionError::Dpop(crate::error::DpopError::Missing));
        }
        let auth = AuthContext {
            auth_time: now,
            amr,
            acr,
            jkt,
        };
        self.inner
            .codec
            .check_fits_with(&user_id, &roles, &claims, &auth)
            .inspect_err(|e| claims_refused(&user_id, e))?;
        Ok((user_id, roles, device, claims, auth))
    }

    async fn create(
        &self,
        user_id: &str,
        roles: Vec<String>,
        device: DeviceInfo,
        claims: CustomClaims,
        auth: AuthContext,
        now: u64,
    ) -> Result<TokenPair, SessionError> {
        let inner = &*self.inner;
        let expires_at = now.saturating_add(duration_ms(inner.config.rules().session_ttl()));
        let refresh_expires_at = now
            .saturating_add(inner.lifetimes.refresh_ttl)
            .min(expires_at);
        let record = SessionRecord {
            session_id: inner.store.new_session_id(user_id),
            user_id: user_id.to_owned(),
            roles,
            created_at: now,
            last_active_at: now,
            expires_at,
            generation: 0,
            rotated_at: now,
            refresh_expires_at,
            revoked_at: None,
            purge_at: purge_at(expires_at, refresh_expires_at, now, &inner.lifetimes),
            device,
            claims,
            auth,
        };
        let limit = SessionLimit {
            max: inner.config.rules().max_sessions(),
            policy: inner.config.rules().limit_policy(),
        };
        let since = inner.cache.begin(record.session_id);
        match self
            .timed(
                "create",
                inner
                    .store
                    .create(record.clone(), limit, &inner.lifetimes, now),
            )
            .await?
        {
            CreateOutcome::Created { evicted } => {
                for sid in &evicted {
                    self.event(
                        EventKind::SessionEnded(EndReason::Evicted),
                        user_id,
                        Some(*sid),
                        None,
                    );
                    inner.cache.mark_revoked(*sid);
                    tracing::info!(session_id = %sid, user_id = %Escaped::new(user_id), "session evicted by the per-user limit");
                }
                telemetry::revoked("evicted", evicted.len() as u64);
                telemetry::created();
                inner.cache.mark_active_since(record.session_id, since);
                self.event(
                    EventKind::Login,
                    user_id,
                    Some(record.session_id),
                    Some(&record.device),
                );
                tracing::debug!(session_id = %record.session_id, user_id = %Escaped::new(user_id), "session created");
                Ok(self.token_pair(&record))
            }
            CreateOutcome::LimitReached => {
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
    /// `refresh` is the refresh token (`&str` or `&String`), or a [`RefreshRequest`] that also
    /// carries the request's verified DPoP proof (see [`dpop_verifier`](Self::dpop_verifier)):
    /// a session bound to a key is refreshed only with a proof by that key, checked before the
    /// store is asked, so a stolen refresh token alone neither refreshes nor rotates anything.
    ///
    /// ```
    /// use tower_jwt_session::{SessionConfig, SessionManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// let login = manager.create_session("alice").await?;
    /// let next = manager.refresh(&login.refresh_token).await?;
    /// assert_eq!(next.session_id, login.session_id);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::InvalidToken`], [`TokenExpired`](SessionError::TokenExpired),
    /// [`TokenReused`](SessionError::TokenReused), [`Revoked`](SessionError::Revoked),
    /// [`SessionExpired`](SessionError::SessionExpired), [`Unavailable`](SessionError::Unavailable);
    /// [`SessionError::Dpop`] when the session is bound and the proof is missing or by another
    /// key, and [`SessionError::NotDpopBound`] when DPoP is required and the session is not
    /// bound.
    pub async fn refresh<'a>(
        &self,
        refresh: impl Into<RefreshRequest<'a>>,
    ) -> Result<TokenPair, SessionError> {
        let RefreshRequest { token, proof } = refresh.into();
        let refresh_token = token;
        // The hook's read and the rotation share one deadline (the request's, under the token
        // routes), which the rotation carries to the store.
        let at = tokio::time::Instant::now() + self.budget();
        let result = deadline::within(at, self.refresh_inner(refresh_token, proof)).await;
        match &result {
            Ok(_) => {
                telemetry::refresh("success");
            }
            Err(error) => {
                telemetry::refresh(error.code().as_str());
                tracing::debug!(%error, "refresh refused");
            }
        }
        result
    }

    async fn refresh_inner(
        &self,
        refresh_token: &str,
        proof: Option<&DpopProof>,
    ) -> Result<TokenPair, SessionError> {
        let inner = &*self.inner;
        let claims = self
            .parse_refresh_token(refresh_token)
            .ok_or(SessionError::InvalidToken)?;
        match (&claims.jkt, proof) {
            (Some(_), None) => return Err(SessionError::Dpop(DpopError::Missing)),
            (Some(jkt), Some(proof)) if !proof.is_bound_to(jkt.as_str()) => {
                return Err(SessionError::Dpop(DpopError::KeyMismatch));
            }
            (None, _) if inner_requires_dpop(&inner.config) => {
                return Err(SessionError::NotDpopBound);
            }
            _ => {}
        }
        let now = self.now_ms();
        let mut request = RotateRequest {
            session_id: claims.session_id,
            generation: claims.generation,
            now,
            lifetimes: inner.lifetimes,
            update: None,
            deadline: None,
        };
        if let Some(hook) = &inner.hook {
            request.update = self.ask_hook(hook, &request).await?;
        }
        // Read after the hook, whose time is given back to the request's deadline.
        request.deadline = deadline::wall_ms();
        // Taken before the store is asked: a revocation delivered while it answers wins.
        let since = inner.cache.begin(claims.session_id);
        match self.timed("rotate", inner.store.rotate(request)).await? {
            RotateOutcome::Rotated(record) | RotateOutcome::Grace(record) => {
                inner.cache.mark_active_since(record.session_id, since);
                Ok(self.token_pair(&record))
            }
            RotateOutcome::Reused(record, kind) => {
                inner.cache.mark_revoked(record.session_id);
                self.event(
                    EventKind::RefreshReuseDetected,
                    &record.user_id,
                    Some(record.session_id),
                    Some(&record.device),
                );
                telemetry::reuse(kind.as_str());
                telemetry::revoked("reuse", 1);
                tracing::warn!(
                    session_id = %record.session_id,
                    user_id = %Escaped::new(&record.user_id),
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
            RotateOutcome::NotFound => {
                self.unknown_session(claims.session_id, claims.generation)
                    .await;
                Err(SessionError::Revoked)
            }
            _ => Err(SessionError::Revoked),
        }
    }

    /// Re-authenticates the user of `session` (step-up, "confirm your password"): call it once
    /// the app's credential check has accepted credentials again. The **same** session (same
    /// id, same devices row) gets a rotation, in the store's one atomic step, that moves its
    /// authentication context to now with `proof`'s `amr` and `acr`, and takes `proof`'s roles
    /// and claims (the check's current answer); the answer is a new token pair, as a login's.
    /// `proof`'s device is not used: the session keeps its own.
    ///
    /// The rotation is a compare-and-set on the generation the store held when it was read: a
    /// refresh of the same session that lands in between wins, and this call answers
    /// [`SessionError::Changed`] with nothing of it written, never a grace answer and never
    /// reuse detection. A refresh that comes after it is answered as any refresh of a retired
    /// token (the grace interval, then reuse detection).
    ///
    /// ```
    /// use tower_jwt_session::manager::NewSession;
    /// use tower_jwt_session::{SessionConfig, SessionManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// let login = manager.create_session(NewSession::new("alice").amr(["pwd"])).await?;
    /// let session = manager.verify_access_token(&login.access_token).await?;
    ///
    /// // The app's check accepted a password and a one-time code.
    /// let stepped_up = manager
    ///     .reauthenticate(&session, NewSession::new("alice").amr(["pwd", "otp"]))
    ///     .await?;
    /// assert_eq!(stepped_up.session_id, login.session_id);
    /// let session = manager.verify_access_token(&stepped_up.access_token).await?;
    /// assert_eq!(session.amr(), ["pwd", "otp"]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::UserMismatch`] when `proof` is for another user;
    /// [`Revoked`](SessionError::Revoked), [`SessionExpired`](SessionError::SessionExpired) or
    /// [`TokenExpired`](SessionError::TokenExpired) for a session that can no longer be
    /// refreshed; [`Changed`](SessionError::Changed) for a lost race; as
    /// [`create_session`](Self::create_session) for `proof` itself. Nothing is
    /// changed on any error.
    pub async fn reauthenticate(
        &self,
        session: &Session,
        proof: NewSession,
    ) -> Result<TokenPair, SessionError> {
        if proof.user_id != session.user_id() {
            return Err(SessionError::UserMismatch);
        }
        let mut proof = proof;
        if let Some(jkt) = session.dpop_jkt() {
            // The layer let this session's request through with a proof by its key.
            proof.jkt = Some(jkt.to_owned());
        }
        let at = tokio::time::Instant::now() + self.budget();
        deadline::within(at, self.reauthenticate_inner(session.session_id(), proof)).await
    }

    async fn reauthenticate_inner(
        &self,
        sid: SessionId,
        proof: NewSession,
    ) -> Result<TokenPair, SessionError> {
        let inner = &*self.inner;
        let now = self.now_ms();
        let (user_id, roles, _, claims, mut auth) = self.checked(proof, now)?;
        let Some(record) = self.timed("get", inner.store.get(sid)).await? else {
            inner.cache.mark_revoked(sid);
            return Err(SessionError::Revoked);
        };
        if record.user_id != user_id {
            return Err(SessionError::UserMismatch);
        }
        // A session's binding is set at login and never changes: a bound one is
        // re-authenticated only with a proof by its key, an unbound one stays unbound.
        match (&record.auth.jkt, &auth.jkt) {
            (Some(bound), Some(jkt)) if bound != jkt => {
                return Err(SessionError::Dpop(DpopError::KeyMismatch));
            }
            (Some(_), None) => return Err(SessionError::Dpop(DpopError::Missing)),
            _ => auth.jkt.clone_from(&record.auth.jkt),
        }
        if !record.is_live(now) {
            return Err(match record.revoked_at {
                None if now >= record.expires_at => SessionError::SessionExpired,
                _ => SessionError::Revoked,
            });
        }
        let generation = record.generation;
        let request = RotateRequest {
            session_id: sid,
            generation,
            now,
            lifetimes: inner.lifetimes,
            update: Some(SessionUpdate {
                roles,
                claims,
                auth: Some(auth),
            }),
            deadline: deadline::wall_ms(),
        };
        let since = inner.cache.begin(sid);
        match self.timed("rotate", inner.store.rotate(request)).await? {
            RotateOutcome::Rotated(record) => {
                inner.cache.mark_active_since(sid, since);
                tracing::info!(session_id = %sid, user_id = %Escaped::new(&user_id), "session re-authenticated");
                self.event(
                    EventKind::Reauthenticate,
                    &user_id,
                    Some(sid),
                    Some(&record.device),
                );
                Ok(self.token_pair(&record))
            }
            RotateOutcome::SessionExpired => Err(SessionError::SessionExpired),
            RotateOutcome::TokenExpired => Err(SessionError::TokenExpired),
            RotateOutcome::NotFound => match self.timed("get", inner.store.get(sid)).await? {
                Some(now_stored)
                    if now_stored.is_live(now) && now_stored.generation > generation =>
                {
                    tracing::info!(session_id = %sid, "re-authentication lost a race with a refresh: nothing written");
                    Err(SessionError::Changed)
                }
                _ => Err(SessionError::Revoked),
            },
            _ => Err(SessionError::Revoked),
        }
    }

    /// Says what a refresh the store answered "no such session" for is, since the answer is
    /// the same `token_revoked` either way: the store has the session at an older generation
    /// than this server issued (it lost a rotation: a failover that lost acknowledged writes),
    /// or no record of it (it ended, or the store lost it). Logged and counted
    /// (`tjs_sessions_unknown_total`), never a logout or a theft.
    async fn unknown_session(&self, sid: SessionId, generation: u64) {
        match self.inner.store.get(sid).await {
            Ok(Some(record)) if record.generation < generation && record.revoked_at.is_none() => {
                telemetry::session_unknown("refresh", "rotation_lost");
                tracing::warn!(
                    session_id = %sid,
                    presented_generation = generation,
                    stored_generation = record.generation,
                    "the session store has this session at an older generation than this server issued: \
                     it lost a rotation (a failover that lost acknowledged writes; see REDIS_WAIT_REPLICAS); \
                     refused as token_revoked"
                );
            }
            Ok(None) => {
                telemetry::session_unknown("refresh", "no_record");
                tracing::info!(
                    session_id = %sid,
                    "refresh of a session the store has no record of: it ended, or the store lost it \
                     (a failover, an eviction); refused as token_revoked"
                );
            }
            _ => {}
        }
    }

    /// What the refresh hook says the session holds from now on, when the presented token is
    /// the session's current one (a rotation will follow); `None` when the store will answer
    /// without rotating (grace, reuse, an ended session), which the hook need not be asked
    /// about. Nothing is written here: the update rides on the rotation, atomically.
    async fn ask_hook(
        &self,
        hook: &builder::Hook,
        request: &RotateRequest,
    ) -> Result<Option<crate::store::SessionUpdate>, SessionError> {
        let Some(record) = self
            .timed("get", self.inner.store.get(request.session_id))
            .await?
        else {
            return Ok(None);
        };
        let now = request.now;
        if record.generation != request.generation
            || !record.is_live(now)
            || now >= record.refresh_expires_at
        {
            return Ok(None);
        }
        let context = RefreshContext {
            session_id: record.session_id,
            roles: record.roles,
            claims: record.claims,
            user_id: record.user_id,
        };
        let user_id = context.user_id.clone();
        // The app's own I/O: its own timeout, and its time does not count against the
        // request's store deadline.
        let answer = match deadline::excluding(tokio::time::timeout(
            hook.timeout,
            hook.hook.refresh(context),
        ))
        .await
        {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                tracing::warn!(session_id = %request.session_id, user_id = %Escaped::new(&user_id), %error, "refresh refused: the refresh hook failed");
                return Err(SessionError::Hook(HookFailure::Failed(error)));
            }
            Err(_) => {
                tracing::warn!(session_id = %request.session_id, user_id = %Escaped::new(&user_id), timeout = ?hook.timeout, "refresh refused: the refresh hook did not answer in time");
                return Err(SessionError::Hook(HookFailure::TimedOut(hook.timeout)));
            }
        };
        if answer.user_gone {
            let ended = self.revoke_all_ids(&user_id).await?;
            tracing::info!(user_id = %Escaped::new(&user_id), sessions = ended.len(), "the refresh hook says the user is gone: every session of the user ended");
            return Err(SessionError::Revoked);
        }
        let update = answer
            .into_update()
            .inspect_err(|e| claims_refused(&user_id, e))?;
        if let Err(SessionError::InvalidInput(why)) = check_input(&user_id, &update.roles) {
            let error = ClaimsError::InvalidRoles(why);
            claims_refused(&user_id, &error);
            return Err(error.into());
        }
        self.inner
            .codec
            .check_fits(&user_id, &update.roles, &update.claims)
            .inspect_err(|e| claims_refused(&user_id, e))?;
        Ok(Some(update))
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

/// What a refresh presents: the refresh token, and the request's verified DPoP proof when
/// there is one. A refresh token alone (`&str`, `&String`) converts into one without a proof.
///
/// ```
/// # async fn refresh(
/// #     manager: &tower_jwt_session::SessionManager,
/// #     token: &str,
/// #     proof: &tower_jwt_session::token::dpop::DpopProof,
/// # ) -> Result<(), tower_jwt_session::SessionError> {
/// use tower_jwt_session::manager::RefreshRequest;
///
/// manager.refresh(RefreshRequest::new(token).dpop_proof(proof)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RefreshRequest<'a> {
    token: &'a str,
    proof: Option<&'a DpopProof>,
}

impl<'a> RefreshRequest<'a> {
    /// A refresh with this refresh token, without a proof.
    pub fn new(refresh_token: &'a str) -> Self {
        Self {
            token: refresh_token,
            proof: None,
        }
    }

    /// With the request's DPoP proof, checked by the manager's
    /// [`dpop_verifier`](SessionManager::dpop_verifier).
    pub fn dpop_proof(mut self, proof: &'a DpopProof) -> Self {
        self.proof = Some(proof);
        self
    }
}

impl<'a> From<&'a str> for RefreshRequest<'a> {
    fn from(refresh_token: &'a str) -> Self {
        Self::new(refresh_token)
    }
}

impl<'a> From<&'a String> for RefreshRequest<'a> {
    fn from(refresh_token: &'a String) -> Self {
        Self::new(refresh_token)
    }
}

/// Whether every session must be bound to a DPoP key.
fn inner_requires_dpop(config: &SessionConfig) -> bool {
    config.dpop().mode() == crate::config::DpopMode::Required
}

#[cfg(test)]
mod tests;

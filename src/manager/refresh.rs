//! Refreshing and re-authenticating a session: rotation, reuse detection, the refresh hook and
//! the DPoP binding of the refresh token; and [`RefreshRequest`], what a refresh presents.

use super::*;
use crate::store::ReuseKind;

impl SessionManager {
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
        self.check_binding(&claims, proof)?;
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
                self.reuse_detected(&record, kind, claims.generation);
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

    /// Whether `proof` fits the refresh token's binding, checked before the store is asked: a
    /// bound token needs a proof by its key, and under `required` an unbound one is refused.
    fn check_binding(
        &self,
        claims: &RefreshClaims,
        proof: Option<&DpopProof>,
    ) -> Result<(), SessionError> {
        match (&claims.jkt, proof) {
            (Some(_), None) => Err(SessionError::Dpop(DpopError::Missing)),
            (Some(jkt), Some(proof)) if !proof.is_bound_to(jkt.as_str()) => {
                Err(SessionError::Dpop(DpopError::KeyMismatch))
            }
            (None, _) if inner_requires_dpop(&self.inner.config) => Err(SessionError::NotDpopBound),
            _ => Ok(()),
        }
    }

    /// The store revoked `record`'s session for a reused refresh token (of generation
    /// `presented`): refused here at once, told to the trail, counted and logged.
    fn reuse_detected(&self, record: &SessionRecord, kind: ReuseKind, presented: u64) {
        self.inner.cache.mark_revoked(record.session_id);
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
            presented_generation = presented,
            current_generation = record.generation,
            "refresh token reuse detected: session revoked"
        );
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
        let create::Checked {
            user_id,
            roles,
            claims,
            mut auth,
            ..
        } = self.checked(proof, now)?;
        let Some(record) = self.timed("get", inner.store.get(sid)).await? else {
            inner.cache.mark_revoked(sid);
            return Err(SessionError::Revoked);
        };
        may_reauthenticate(&record, &user_id, &mut auth, now)?;
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
    // Size: the hook's call and each answer it can give (failed, too slow, user gone, an update
    // that breaks the rules), each refused and logged where it is decided.
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

/// Whether the session of `record` may be re-authenticated by `user_id` at `now`, with the
/// authentication `auth`; `auth` takes the session's DPoP binding. A session's binding is set at
/// login and never changes: a bound one is re-authenticated only with a proof by its key, an
/// unbound one stays unbound.
fn may_reauthenticate(
    record: &SessionRecord,
    user_id: &str,
    auth: &mut AuthContext,
    now: u64,
) -> Result<(), SessionError> {
    if record.user_id != user_id {
        return Err(SessionError::UserMismatch);
    }
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
    Ok(())
}

//! Starting a session: [`SessionManager::create_session`] and what it checks.

use super::*;

/// What a session starts with, checked as its tokens will carry it.
pub(super) struct Checked {
    pub(super) user_id: String,
    pub(super) roles: Vec<String>,
    pub(super) device: DeviceInfo,
    pub(super) claims: CustomClaims,
    pub(super) auth: AuthContext,
}

impl SessionManager {
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
        let checked = self.checked(session.into(), now)?;
        self.create(checked, now).await
    }

    /// The parts of `session`, checked as a token will carry them, with an authentication at
    /// `now`.
    pub(super) fn checked(&self, session: NewSession, now: u64) -> Result<Checked, SessionError> {
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
        Ok(Checked {
            user_id,
            roles,
            device,
            claims,
            auth,
        })
    }

    async fn create(&self, checked: Checked, now: u64) -> Result<TokenPair, SessionError> {
        let inner = &*self.inner;
        let record = self.new_record(checked, now);
        let user_id = record.user_id.as_str();
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
                self.evicted(user_id, &evicted);
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

    /// The record of a session starting at `now`: generation 0, its lifetimes from the rules.
    fn new_record(&self, checked: Checked, now: u64) -> SessionRecord {
        let Checked {
            user_id,
            roles,
            device,
            claims,
            auth,
        } = checked;
        let inner = &*self.inner;
        let expires_at = now.saturating_add(duration_ms(inner.config.rules().session_ttl()));
        let refresh_expires_at = now
            .saturating_add(inner.lifetimes.refresh_ttl)
            .min(expires_at);
        SessionRecord {
            session_id: inner.store.new_session_id(&user_id),
            user_id,
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
        }
    }

    /// Sessions the per-user limit ended to make room for a login: refused at once here, told
    /// to the activity trail and counted.
    fn evicted(&self, user_id: &str, evicted: &[SessionId]) {
        for sid in evicted {
            self.event(
                EventKind::SessionEnded(EndReason::Evicted),
                user_id,
                Some(*sid),
                None,
            );
            self.inner.cache.mark_revoked(*sid);
            tracing::info!(session_id = %sid, user_id = %Escaped::new(user_id), "session evicted by the per-user limit");
        }
        telemetry::revoked("evicted", evicted.len() as u64);
    }
}

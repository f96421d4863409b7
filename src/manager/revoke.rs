//! Ending sessions: [`Revoke`], what [`SessionManager::revoke`] ends.

use super::*;

/// Which sessions [`SessionManager::revoke`] ends, and on whose behalf (which decides what
/// the users' activity trails say, and who may end what).
///
/// A [`SessionId`] alone converts into [`Revoke::Session`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Revoke<'a> {
    /// One session, by the app (an administrator, a background job): filed in its owner's
    /// activity as ended by an administrator. Answers 1 if it was live, else 0.
    Session(SessionId),
    /// One session of this user, by that user ("sign out this device"): filed as ended from
    /// another device. A session that is not live, or is another user's, is left alone and
    /// answered [`SessionError::NotFound`], the same answer for both, so a caller cannot learn
    /// which ids exist.
    OwnSession(&'a str, SessionId),
    /// Every session of the caller's user but the caller's own ("sign out all other devices").
    Others(&'a Session),
    /// Every session of the caller's user, the caller's own included ("log out everywhere"),
    /// checking that the store missed none: the caller's session was live when it was
    /// verified, so a store whose index of the user's sessions lacks it has lost entries (an
    /// evicting or restored Redis), and other sessions may be live too. The caller's session
    /// is then ended by its id and the call fails with [`SessionError::Inconsistent`] instead
    /// of answering a count that looks complete.
    Everywhere(&'a Session),
    /// Every session of a user, by the app: the call for a user deleted or disabled, or a role
    /// taken away that must not wait for the next refresh (a refresh hook moves roles at the
    /// next refresh; this ends the access tokens that carry the old ones too).
    User(&'a str),
}

impl From<SessionId> for Revoke<'_> {
    fn from(session_id: SessionId) -> Self {
        Revoke::Session(session_id)
    }
}

impl SessionManager {
    /// Ends sessions now, on every instance (within the revocation cache's second elsewhere):
    /// their access and refresh tokens stop working. Returns how many were live.
    ///
    /// ```
    /// use tower_jwt_session::manager::{NewSession, Revoke};
    /// use tower_jwt_session::{SessionConfig, SessionError, SessionManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// let laptop = manager.create_session(NewSession::new("alice").roles(&["user"])).await?;
    /// let phone = manager.create_session(NewSession::new("alice").roles(&["user"])).await?;
    /// let theirs = manager.create_session(NewSession::new("bob").roles(&["user"])).await?;
    ///
    /// // Alice ends her phone's session from her laptop; Bob's is not hers to end.
    /// assert!(matches!(
    ///     manager.revoke(Revoke::OwnSession("alice", theirs.session_id)).await,
    ///     Err(SessionError::NotFound)
    /// ));
    /// assert_eq!(manager.revoke(Revoke::OwnSession("alice", phone.session_id)).await?, 1);
    ///
    /// // An administrator ends one session by its id, or every session of a user.
    /// assert_eq!(manager.revoke(laptop.session_id).await?, 1);
    /// assert_eq!(manager.revoke(Revoke::User("bob")).await?, 1);
    /// assert!(manager.verify_access_token(&theirs.access_token).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::NotFound`] and [`SessionError::Inconsistent`] as [`Revoke`] says,
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    pub async fn revoke(&self, which: impl Into<Revoke<'_>>) -> Result<usize, SessionError> {
        match which.into() {
            Revoke::Session(session_id) => Ok(usize::from(self.revoke_session(session_id).await?)),
            Revoke::OwnSession(user_id, session_id) => {
                self.revoke_own(user_id, session_id).await.map(|()| 1)
            }
            Revoke::Others(caller) => self.revoke_others(caller).await,
            Revoke::Everywhere(caller) => self.revoke_everywhere(caller).await,
            Revoke::User(user_id) => self.revoke_user(user_id).await,
        }
    }
    /// Ends one session now: its access and refresh tokens stop working. Returns whether it was
    /// live.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    async fn revoke_session(&self, session_id: SessionId) -> Result<bool, SessionError> {
        self.end_session(session_id, EndReason::Admin).await
    }

    /// Ends one session, as [`Revoke::Session`], recording it in its owner's activity as
    /// ended for `reason`.
    pub(crate) async fn end_session(
        &self,
        session_id: SessionId,
        reason: EndReason,
    ) -> Result<bool, SessionError> {
        // Read first (the record is gone once ended) for whose trail and which device; a
        // failed read does not stop the logout, only its entry in the trail.
        let record = self
            .timed("get", self.inner.store.get(session_id))
            .await
            .ok()
            .flatten();
        let live = self.revoke_quiet(session_id).await?;
        if let Some(record) = record.filter(|_| live) {
            self.event(
                EventKind::SessionEnded(reason),
                &record.user_id,
                Some(session_id),
                Some(&record.device),
            );
        }
        Ok(live)
    }

    async fn revoke_quiet(&self, session_id: SessionId) -> Result<bool, SessionError> {
        let live = self
            .timed("revoke", self.inner.store.revoke(session_id, self.now_ms()))
            .await?;
        self.inner.cache.mark_revoked(session_id);
        if live {
            telemetry::revoked("logout", 1);
            tracing::debug!(%session_id, "session revoked");
        }
        Ok(live)
    }

    /// Ends one session of `user_id` now ("sign out this device"), on every instance at once
    /// as [`Revoke::Session`] does. A session that is not live, or is another user's, is
    /// left alone and answered [`SessionError::NotFound`], the same answer for both, so a
    /// caller cannot learn which ids exist. (An administrator ending anyone's session calls
    /// [`Revoke::Session`].)
    ///
    ///
    /// # Errors
    /// [`SessionError::NotFound`] as above, [`SessionError::Unavailable`] when the store cannot
    /// be reached.
    async fn revoke_own(&self, user_id: &str, session_id: SessionId) -> Result<(), SessionError> {
        let now = self.now_ms();
        let record = self.timed("get", self.inner.store.get(session_id)).await?;
        if !record
            .as_ref()
            .is_some_and(|r| r.user_id == user_id && r.is_live(now))
        {
            return Err(SessionError::NotFound);
        }
        // Ended by someone else since it was read: ended all the same.
        if self.revoke_quiet(session_id).await? {
            self.event(
                EventKind::SessionEnded(EndReason::OtherDevice),
                user_id,
                Some(session_id),
                record.as_ref().map(|r| &r.device),
            );
        }
        Ok(())
    }

    /// Ends every session of the caller's user but the caller's own ("sign out all other
    /// devices"), on every instance at once. Returns how many were live.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    async fn revoke_others(&self, caller: &Session) -> Result<usize, SessionError> {
        let user_id = caller.user_id();
        let revoked = self
            .timed(
                "revoke_all_except",
                self.inner
                    .store
                    .revoke_all_except(user_id, caller.session_id(), self.now_ms()),
            )
            .await?;
        telemetry::revoked("logout", revoked.len() as u64);
        for sid in &revoked {
            self.inner.cache.mark_revoked(*sid);
            self.event(
                EventKind::SessionEnded(EndReason::OtherDevice),
                user_id,
                Some(*sid),
                None,
            );
        }
        tracing::debug!(user_id = %Escaped::new(user_id), count = revoked.len(), "other sessions revoked");
        Ok(revoked.len())
    }

    /// Ends every session of a user now, on every instance (within the revocation cache's
    /// second elsewhere): the call for a user deleted or disabled, or a role taken away that
    /// must not wait for the next refresh (a refresh hook moves roles at the next refresh; this
    /// ends the access tokens that carry the old ones too). Returns how many were live.
    ///
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store cannot be reached.
    async fn revoke_user(&self, user_id: &str) -> Result<usize, SessionError> {
        let revoked = self.revoke_all_ids(user_id).await?;
        for sid in &revoked {
            let reason = EventKind::SessionEnded(EndReason::Admin);
            self.event(reason, user_id, Some(*sid), None);
        }
        Ok(revoked.len())
    }

    pub(super) async fn revoke_all_ids(
        &self,
        user_id: &str,
    ) -> Result<Vec<SessionId>, SessionError> {
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
        tracing::debug!(user_id = %Escaped::new(user_id), count = revoked.len(), "all sessions revoked");
        Ok(revoked)
    }

    /// Ends every session of the caller's user (logout everywhere), checking that the store
    /// missed none: the caller's own session was live when it was verified, so a store whose
    /// list of the user's sessions lacks it has lost entries (an evicting or restored Redis),
    /// and other sessions may be missing too. Then the caller's session is ended by its id and
    /// the call fails loudly instead of answering a count that looks complete. Returns how many
    /// sessions were live.
    ///
    /// # Errors
    /// [`SessionError::Inconsistent`] as above, [`SessionError::Unavailable`] when the store
    /// cannot be reached.
    async fn revoke_everywhere(&self, caller: &Session) -> Result<usize, SessionError> {
        let revoked = self.revoke_all_ids(caller.user_id()).await?;
        let sid = caller.session_id();
        self.event(EventKind::LogoutAll, caller.user_id(), Some(sid), None);
        if revoked.contains(&sid) || !self.revoke_quiet(sid).await? {
            // Listed, or ended meanwhile by someone else (a logout racing this one).
            return Ok(revoked.len());
        }
        telemetry::store_inconsistent();
        tracing::error!(
            session_id = %sid,
            "logout-all: the store's index of the user's sessions missed a live session; other sessions may still be live (is Redis evicting keys? see docs/deployment.md)"
        );
        Err(SessionError::Inconsistent)
    }
}

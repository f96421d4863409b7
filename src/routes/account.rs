//! The routes of an access token and its session: `validate`, `session-stats`, `health`,
//! `logout`, `logout-all`, `logout-others`, `DELETE sessions/{sessionId}`.

use super::*;
use crate::store::EndReason;
use http::request::Parts;

impl TokenRoutes {
    pub(super) async fn validate(&self, body: ValidateBody) -> Answer {
        let Some(token) = body.access_token.filter(|t| !t.is_empty()) else {
            return bad_request("accessToken is required");
        };
        let codec = self.manager.codec();
        let now_ms = codec.clock().now_ms();
        let decoded = match codec.decode(token.as_bytes()) {
            Ok(decoded) => decoded,
            Err(_) => {
                return success("Token is invalid", TokenStatus::undecodable());
            }
        };
        let session = &decoded.session;
        let time = codec.check_time(&decoded, now_ms);
        let status = if time.is_ok() {
            self.manager
                .revocation_cache()
                .status(session.session_id())
                .await
        } else {
            SessionStatus::Active
        };
        if status == SessionStatus::Unavailable {
            return json_error(ErrorCode::Unavailable, &AuthError::Unavailable.to_string());
        }
        let is_expired = time == Err(AuthError::Expired);
        let is_valid = time.is_ok() && status == SessionStatus::Active;
        let left = codec.time_left(session, now_ms);
        let left_ms = left.millis();
        let needs_refresh = is_expired || (is_valid && left.refresh_advised());
        success(
            if is_valid {
                "Token is valid"
            } else {
                "Token is invalid"
            },
            TokenStatus {
                is_valid,
                is_expired,
                needs_refresh,
                expires_at: Some(rfc3339(session.expires_at_ms())),
                time_until_expiry: left_ms,
                user_id: Some(session.user_id().to_owned()),
            },
        )
    }

    pub(super) async fn authenticate(&self, parts: &Parts) -> Result<crate::Session, Answer> {
        self.layer
            .authenticate_parts(
                &parts.method,
                (&parts.uri, &parts.extensions),
                &parts.headers,
            )
            .await
            .map_err(|error| self.layer.refusal(error))
    }

    /// `GET sessions`: the caller's own sessions, as `session-stats/{userId}` lists them.
    pub(super) async fn own_sessions(&self, parts: &Parts) -> Answer {
        let caller = match self.authenticate(parts).await {
            Ok(session) => session,
            Err(res) => return res,
        };
        let user = caller.user_id().to_owned();
        self.list_sessions(&caller, user).await
    }

    pub(super) async fn session_stats(&self, parts: &Parts, raw_user: &str) -> Answer {
        let caller = match self.authenticate(parts).await {
            Ok(session) => session,
            Err(res) => return res,
        };
        let Some(user) = percent_decode(raw_user) else {
            return bad_request("the user id in the path is not valid percent-encoded UTF-8");
        };
        if user.contains('\0') {
            // No session is ever made for such an id (the manager refuses it).
            return bad_request("the user id in the path must not contain a NUL character");
        }
        if caller.user_id() != user && !caller.has_role("admin") {
            return json_error(
                ErrorCode::Forbidden,
                "you may only see your own sessions unless you have the admin role",
            );
        }
        self.list_sessions(&caller, user).await
    }

    /// `GET activity`: the caller's own security activity, newest first. Only the caller's:
    /// the user comes from the verified token, never from the request.
    pub(super) async fn activity(&self, parts: &Parts) -> Answer {
        let caller = match self.authenticate(parts).await {
            Ok(session) => session,
            Err(res) => return res,
        };
        let events = match self.manager.activity(caller.user_id()).await {
            Ok(events) => events,
            Err(error) => return session_error(&error),
        };
        let events = events
            .into_iter()
            .map(|e| ActivityEntry {
                kind: e.kind.as_str(),
                reason: e.kind.reason().map(EndReason::as_str),
                at: rfc3339(e.at_ms()),
                session_id: e.session_id,
                device: e.device,
                ip: e.ip,
            })
            .collect();
        success("Security activity", Activity { events })
    }

    /// The live sessions of `user`, for `caller` (who is allowed to see them).
    async fn list_sessions(&self, caller: &crate::Session, user: String) -> Answer {
        let sessions = match self.manager.sessions(&user).await {
            Ok(sessions) => sessions,
            Err(error) => return session_error(&error),
        };
        let list: Vec<SessionInfo> = sessions
            .iter()
            .map(|r| SessionInfo {
                session_id: r.session_id,
                created_at: rfc3339(r.created_at),
                last_refreshed_at: rfc3339(r.last_active_at),
                last_active_at: rfc3339(r.last_active_at),
                device: r.device.label().to_owned(),
                ip: r.device.ip().map(str::to_owned),
                expires_at: rfc3339(r.expires_at),
                current: r.session_id == caller.session_id(),
            })
            .collect();
        success(
            "Session statistics",
            SessionStats {
                user_id: user,
                active_sessions: list.len(),
                max_sessions: self.manager.config().rules().max_sessions(),
                sessions: list,
            },
        )
    }

    pub(super) async fn health(&self) -> Answer {
        match self.manager.health().await {
            Ok(warnings) => success(
                "ok",
                Health {
                    status: if warnings.is_empty() {
                        "ok"
                    } else {
                        "degraded"
                    },
                    store: self.manager.store_kind(),
                    warnings: warnings.iter().map(|w| w.code()).collect(),
                },
            ),
            Err(error) => session_error(&error),
        }
    }

    pub(super) async fn logout(
        &self,
        parts: &Parts,
        everywhere: bool,
        tracked: Tracked<'_>,
    ) -> Answer {
        let caller = match self.authenticate(parts).await {
            Ok(session) => session,
            // Without a bearer token the layer accepts, `/logout` still ends the session the
            // refresh cookie names: a browser in cookie mode whose access token has expired
            // must not be left logged out on the page while the cookie keeps refreshing.
            Err(refused) if !everywhere && refused.status() == StatusCode::UNAUTHORIZED => {
                return self
                    .logout_with_cookie(&parts.headers, refused, tracked)
                    .await;
            }
            Err(res) => return res,
        };
        let result = if everywhere {
            self.manager
                .revoke(crate::manager::Revoke::Everywhere(&caller))
                .await
                .map(|revoked| success("Logged out of all sessions", Revoked { revoked }))
        } else {
            self.manager
                .end_session(caller.session_id(), EndReason::Logout)
                .await
                .map(|_| success("Logged out", Empty {}))
        };
        match result {
            Ok(mut res) => {
                res.headers_mut().insert(
                    SET_COOKIE,
                    crate::cookie::clear_refresh_cookie(&self.manager),
                );
                res
            }
            Err(error) => session_error(&error),
        }
    }

    /// `DELETE /sessions/{sessionId}`: ends one session of the caller's user, or anyone's for
    /// the `admin` role. 404 alike for an id that is malformed, unknown, ended or another
    /// user's, so ids cannot be probed.
    pub(super) async fn end_session(&self, parts: &Parts, raw_id: &str) -> Answer {
        let caller = match self.authenticate(parts).await {
            Ok(session) => session,
            Err(res) => return res,
        };
        let not_found = || session_error(&SessionError::NotFound);
        let Ok(session_id) = raw_id.parse::<crate::session::SessionId>() else {
            return not_found();
        };
        let result = if caller.has_role("admin") {
            match self.manager.revoke(session_id).await {
                Ok(0) => Err(SessionError::NotFound),
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            }
        } else if session_id == caller.session_id() {
            // The caller's own session, from its own devices list: a logout.
            match self
                .manager
                .end_session(session_id, EndReason::Logout)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(SessionError::NotFound),
                Err(error) => Err(error),
            }
        } else {
            self.manager
                .revoke(crate::manager::Revoke::OwnSession(
                    caller.user_id(),
                    session_id,
                ))
                .await
                .map(|_| ())
        };
        match result {
            Ok(()) => {
                let mut res = success("Session ended", Empty {});
                if session_id == caller.session_id() {
                    res.headers_mut().insert(
                        SET_COOKIE,
                        crate::cookie::clear_refresh_cookie(&self.manager),
                    );
                }
                res
            }
            Err(error) => session_error(&error),
        }
    }

    /// `POST /logout-others`: ends every session of the caller's user but the caller's own.
    pub(super) async fn logout_others(&self, parts: &Parts) -> Answer {
        let caller = match self.authenticate(parts).await {
            Ok(session) => session,
            Err(res) => return res,
        };
        match self
            .manager
            .revoke(crate::manager::Revoke::Others(&caller))
            .await
        {
            Ok(revoked) => success("Logged out of all other sessions", Revoked { revoked }),
            Err(error) => session_error(&error),
        }
    }

    /// `/logout` without a usable bearer token: the session of the refresh cookie, taken under
    /// the same CSRF rule as a cookie refresh (else 403). With no cookie, the bearer refusal
    /// stands (401). A forged or malformed cookie is counted like a failed refresh and
    /// answered with the bearer refusal; a cookie of a session that has already ended is
    /// answered 200, as there is nothing left to end. Both clear the cookie.
    async fn logout_with_cookie(
        &self,
        headers: &HeaderMap,
        refused: Answer,
        tracked: Tracked<'_>,
    ) -> Answer {
        let token = match self.refresh_cookie(headers) {
            Ok(Some(token)) => token,
            Ok(None) => return refused,
            Err(forbidden) => return forbidden,
        };
        if let Err(locked) = refresh_allowed(tracked).await {
            return locked;
        }
        let mut res = match self.manager.refresh_token_session(token) {
            None => {
                count_refresh_error(tracked, &SessionError::InvalidToken).await;
                refused
            }
            Some(session_id) => match self
                .manager
                .end_session(session_id, EndReason::Logout)
                .await
            {
                Ok(true) => success("Logged out", Empty {}),
                Ok(false) => success("Already logged out", Empty {}),
                Err(error) => return session_error(&error),
            },
        };
        res.headers_mut().insert(
            SET_COOKIE,
            crate::cookie::clear_refresh_cookie(&self.manager),
        );
        res
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ValidateBody {
    #[serde(default)]
    pub(super) access_token: Option<String>,
}

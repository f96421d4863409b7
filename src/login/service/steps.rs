//! The steps of a login after its body is read: reserving the attempt in the lock-out, checking
//! the credentials, and issuing the session and its tokens.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderValue, Response};

use super::LoginService;
use crate::cookie::Delivery;
use crate::deadline::excluding;
use crate::error::{ErrorCode, json_error};
use crate::layer::renew_nonce;
use crate::login::{Authenticated, CredentialCheck, LoginCredentials};
use crate::manager::{NewSession, SessionError};
use crate::rate_limit::{LoginAttempt, LoginRefused};
use crate::store::DeviceInfo;
use crate::telemetry::Escaped;
use crate::token::dpop::DpopProof;

impl<K: CredentialCheck<C>, C: LoginCredentials> LoginService<K, C> {
    /// Reserves the attempt in the lock-out (429 when locked out) and waits out its slowing
    /// delay. No client address: nothing is counted.
    pub(super) async fn reserve(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        user: &str,
    ) -> Result<Option<LoginAttempt>, Response<Bytes>> {
        // Said at warn once, and in health, by the admission.
        let Some(ip) = ip else {
            return Ok(None);
        };
        let attempt = match self.attempts.begin_login(username, ip).await {
            Ok(attempt) => attempt,
            Err(refused @ LoginRefused::LockedOut(_)) => {
                tracing::info!(user = %user, %ip, "login refused: locked out");
                if refused
                    .locked_out()
                    .is_some_and(|locked| self.attempts.started(locked))
                {
                    // The lock-out starts with this attempt: one event, in the named
                    // account's trail.
                    self.manager.lockout(username, None);
                }
                return Err(refused.to_response());
            }
            Err(refused) => {
                tracing::warn!(user = %user, %ip, "login refused: attempts cannot be counted (fail closed)");
                return Err(refused.to_response());
            }
        };
        let delay = attempt.delay();
        if !delay.is_zero() {
            excluding(tokio::time::sleep(delay)).await;
        }
        Ok(Some(attempt))
    }

    /// Runs the app's check: 401 for wrong credentials, 503 when the check could not be made
    /// or the session store is down. A right password's attempt is settled once its session
    /// is (or is not) created.
    pub(super) async fn verify(
        &self,
        credentials: C,
        attempt: Option<LoginAttempt>,
        user: &str,
        ip: Option<IpAddr>,
    ) -> Result<(Authenticated, Option<LoginAttempt>), Response<Bytes>> {
        // The app's own I/O (its users table, its password hash): not the store's budget.
        let found = match excluding(self.check.check(credentials)).await {
            Ok(found) => found,
            Err(error) => {
                // Neither right nor wrong: the reservation is given back, or an outage of the
                // user database would lock every client out. The check answers `Err` only when
                // it could not decide (the trait's contract), so no guess goes uncounted.
                if let Some(attempt) = attempt {
                    self.attempts.login_abandoned(attempt).await;
                }
                let error: Box<dyn std::error::Error + Send + Sync> = error.into();
                tracing::warn!(
                    user = %user,
                    error = %Escaped::with_max_len(&error.to_string(), 512),
                    "login failed: the credential check could not be made"
                );
                let mut res = json_error(
                    ErrorCode::Unavailable,
                    "the credentials cannot be checked right now; try again shortly",
                );
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return Err(res);
            }
        };
        let Some(authenticated) = found else {
            // While the store is down a right password gets 503 (no session can be made); a
            // wrong one must get the same answer, after the same wait, or an outage turns login
            // into a password oracle. Only failed logins pay for the probe.
            let store = self.manager.ping().await;
            if let Some(attempt) = attempt {
                self.attempts.login_failed(attempt).await;
            }
            if let Err(error) = store {
                tracing::info!(user = %user, %error, "login refused: no session store");
                return Err(session_error(&error));
            }
            let ip = ip.map(tracing::field::display);
            // The name of a failed login may be a password typed into the wrong field: logged
            // as a fingerprint only.
            let user_fingerprint = crate::telemetry::typed_name(user);
            tracing::info!(%user_fingerprint, ip, "login failed: wrong user name or password");
            return Err(json_error(
                ErrorCode::InvalidCredentials,
                "wrong user name or password",
            ));
        };
        Ok((authenticated, attempt))
    }

    /// Creates the session and answers the login body with the refresh cookie.
    pub(super) async fn issue(
        &self,
        authenticated: &Authenticated,
        attempt: Option<LoginAttempt>,
        delivery: Delivery,
        ip: Option<IpAddr>,
        device: DeviceInfo,
        proof: Option<DpopProof>,
    ) -> Response<Bytes> {
        let ip = ip.map(tracing::field::display);
        let mut session = NewSession::new(authenticated.user_id.clone())
            .roles(&authenticated.roles)
            .device(device)
            .custom_claims_result(authenticated.claims.clone())
            .methods(&authenticated.amr, authenticated.acr.as_deref());
        if let Some(proof) = &proof {
            session = session.dpop_bound(proof);
        }
        let created = self.manager.create_session(session).await;
        if let Some(attempt) = attempt {
            match &created {
                // Settled as a wrong password is while the store is down: the lock-out must
                // not tell the two apart either.
                Err(SessionError::Unavailable(_)) => self.attempts.login_failed(attempt).await,
                _ => self.attempts.login_succeeded(attempt).await,
            }
        }
        let pair = match created {
            Ok(pair) => pair,
            Err(error) => {
                tracing::info!(
                    user_id = %Escaped::new(&authenticated.user_id),
                    ip,
                    %error,
                    "login refused: no session"
                );
                return session_error(&error);
            }
        };
        tracing::info!(
            user_id = %Escaped::new(&pair.user_id),
            session_id = %pair.session_id,
            ip,
            "login succeeded"
        );
        let mut res = self.answer("Login successful", &pair, delivery);
        renew_nonce(&mut res, self.manager.dpop(), proof.as_ref());
        res
    }
}

/// The answer to a session error: its status, code and message.
pub(super) fn session_error(error: &SessionError) -> Response<Bytes> {
    json_error(error.code(), &error.client_message())
}

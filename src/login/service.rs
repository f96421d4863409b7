//! [`LoginService`] itself.

// Early answers travel as `Err(Response)`: login does a password check and store I/O, so the
// size of that variant is of no consequence.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ALLOW, RETRY_AFTER, SET_COOKIE};
use http::{Extensions, HeaderValue, Method, Request, Response};
use http_body::Body;
use http_body_util::Full;
use serde::Deserialize;
use tower_service::Service;

use super::{Authenticated, CredentialCheck, Credentials, LoginCredentials, origin};
use crate::config::DpopMode;
use crate::cookie::Delivery;
use crate::deadline::{RequestStart, excluding};
use crate::error::{DpopError, ErrorCode, json_error};
use crate::json_body::{bad_request, declares_json, read_json_object, unsupported_media_type};
use crate::layer::{SessionLayer, renew_nonce, token_route_proof, token_route_refusal};
use crate::manager::{NewSession, RevocationCache, SessionError, SessionManager, TokenPair};
use crate::rate_limit::{AttemptTracker, ClientIp, LoginAttempt, LoginRefused};
use crate::response::{Success, TokenPairBody};
use crate::session::Session;
use crate::store::DeviceInfo;
use crate::telemetry::Escaped;
use crate::token::dpop::DpopProof;
use http::request::Parts;

/// Which of the service's two routes a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Login,
    Reauthenticate,
}

/// The login route of [the protocol](crate::routes#routes) around the app's [`CredentialCheck`]: see the
/// [module docs](super).
///
/// A `tower::Service` for any request body; cheap to clone (clones share the check and the
/// tracker). Under axum, mount it with `Router::route_service(path, service)`; nested with
/// `nest_service`, where axum strips the path, it answers at `/` as well.
#[must_use]
pub struct LoginService<K, C = Credentials> {
    manager: SessionManager,
    check: Arc<K>,
    path: Arc<str>,
    reauthenticate_path: Arc<str>,
    /// Verifies the bearer token of a re-authentication as the session layer would.
    layer: SessionLayer<RevocationCache>,
    attempts: AttemptTracker,
    rate_limited: bool,
    credentials: PhantomData<fn(C)>,
}

impl<K, C> Clone for LoginService<K, C> {
    fn clone(&self) -> Self {
        Self {
            manager: self.manager.clone(),
            check: self.check.clone(),
            path: self.path.clone(),
            reauthenticate_path: self.reauthenticate_path.clone(),
            layer: self.layer.clone(),
            attempts: self.attempts.clone(),
            rate_limited: self.rate_limited,
            credentials: PhantomData,
        }
    }
}

impl<K, C> fmt::Debug for LoginService<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginService")
            .field("path", &self.path)
            .field("reauthenticate_path", &self.reauthenticate_path)
            .field("attempts", &self.attempts)
            .field("rate_limited", &self.rate_limited)
            .finish_non_exhaustive()
    }
}

/// The response future of [`LoginService`]. Boxed: a login verifies a password and writes to
/// the session store, which costs far more than the allocation.
pub type LoginFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl<K: CredentialCheck<C>, C: LoginCredentials> LoginService<K, C> {
    /// The login route of `manager` at `/api/auth/login`, checking credentials with `check`,
    /// protected as the [module docs](super) say: every request counts against the per-client
    /// rate limit, and every attempt against the lock-out, both kept where the manager keeps
    /// its sessions ([`SessionManager::limits`]).
    pub fn new(manager: &SessionManager, check: K) -> Self {
        Self {
            manager: manager.clone(),
            check: Arc::new(check),
            path: "/api/auth/login".into(),
            reauthenticate_path: "/api/auth/reauthenticate".into(),
            layer: SessionLayer::from_manager(manager),
            attempts: manager.limits().attempts().clone(),
            rate_limited: true,
            credentials: PhantomData,
        }
    }

    /// Does not count requests against the per-client rate limit: for an app that limits
    /// them another way (a proxy, a gateway). Requests behind a
    /// [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) are not counted twice
    /// anyway. The lock-out stays on.
    pub fn without_rate_limit(mut self) -> Self {
        self.rate_limited = false;
        self
    }

    /// Serves at `path`. The default is `/api/auth/login`.
    pub fn path(mut self, path: &str) -> Self {
        self.path = trimmed(path);
        self
    }

    /// Serves the re-authentication (step-up, see the [module docs](super#re-authentication-step-up))
    /// at `path`. The default is `/api/auth/reauthenticate`. Under axum, mount the same service
    /// at both paths:
    ///
    /// ```
    /// use axum::Router;
    /// use tower_jwt_session::login::{Authenticated, CheckError, Credentials, LoginService};
    /// use tower_jwt_session::{SessionConfig, SessionManager};
    ///
    /// async fn check(c: Credentials) -> Result<Option<Authenticated>, CheckError> {
    ///     let ok = c.username == "alice" && c.password == "alice-password";
    ///     Ok(ok.then(|| Authenticated::new("alice", ["user"]).amr(["pwd"])))
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// let login = LoginService::new(&manager, check).reauthenticate_path("/auth/confirm");
    /// let app: Router = Router::new()
    ///     .route_service("/api/auth/login", login.clone())
    ///     .route_service("/auth/confirm", login);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reauthenticate_path(mut self, path: &str) -> Self {
        self.reauthenticate_path = trimmed(path);
        self
    }

    /// Counts failed logins in `tracker` instead of the manager's. The default is the
    /// manager's tracker ([`SessionManager::limits`]), shared with its
    /// [`TokenRoutes`](crate::routes::TokenRoutes) and kept where its sessions are.
    pub fn attempt_tracker(mut self, tracker: AttemptTracker) -> Self {
        self.attempts = tracker;
        self
    }
}

impl<K, C, B> Service<Request<B>> for LoginService<K, C>
where
    K: CredentialCheck<C>,
    C: LoginCredentials,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = LoginFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        // One deadline for all the store I/O of this login (attempts, the store probe, the
        // session), from when the request reached the crate: an outage answers 503 within one
        // store timeout, not the sum of each backend's.
        let at = RequestStart::of(req.extensions()) + self.manager.budget();
        Box::pin(async move {
            let res = crate::deadline::within(at, this.handle(req)).await;
            Ok(res.map(Full::new))
        })
    }
}

/// A path without its trailing slashes (`/` for the root).
fn trimmed(path: &str) -> Arc<str> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }.into()
}

/// What the login body says beside the credentials.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Delivered {
    #[serde(default)]
    refresh_token_delivery: Option<Delivery>,
}

/// 400 for a login body that does not hold the credentials: which field is missing or named
/// twice, or that one has the wrong type. Never a value the client sent (serde's messages can
/// quote one).
fn body_refused(error: &serde_json::Error) -> Response<Bytes> {
    let text = error.to_string();
    let what = ["missing field `", "duplicate field `", "unknown field `"]
        .iter()
        .find_map(|start| {
            let rest = text.strip_prefix(start)?;
            let name = rest.split('`').next()?;
            Some(format!("{}{}`", start, Escaped::with_max_len(name, 64)))
        })
        .unwrap_or_else(|| match error.classify() {
            serde_json::error::Category::Data => "a field has the wrong type".to_owned(),
            _ => "not valid JSON".to_owned(),
        });
    bad_request(&format!(
        "the login body does not hold the credentials this route takes ({what}); by default send a JSON object with string fields `username` and `password`"
    ))
}

/// The client's address, as the admission resolved it (the peer, or behind trusted proxies
/// the `X-Forwarded-For` entry): one resolution for the rate limit, the lock-out and the
/// devices list.
fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ClientIp>().map(|ClientIp(ip)| *ip)
}

impl<K: CredentialCheck<C>, C: LoginCredentials> LoginService<K, C> {
    async fn handle<B>(&self, req: Request<B>) -> Response<Bytes>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (mut parts, body) = req.into_parts();
        let decision = match self
            .manager
            .limits()
            .admit(
                self.rate_limited,
                parts.uri.path(),
                &parts.headers,
                &mut parts.extensions,
            )
            .await
        {
            Ok(decision) => decision,
            Err(refused) => return refused,
        };
        let mut res = self.login(Request::from_parts(parts, body)).await;
        if let Some(decision) = decision {
            crate::rate_limit::set_headers(res.headers_mut(), &decision);
        }
        res
    }

    async fn login<B>(&self, req: Request<B>) -> Response<Bytes>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let route = match self.precheck(&req) {
            Ok(route) => route,
            Err(res) => return res,
        };
        // A re-authentication's token is checked before its body is read or anything counted.
        let caller = match route {
            Route::Login => None,
            Route::Reauthenticate => match self
                .layer
                .authenticate_parts(req.method(), (req.uri(), req.extensions()), req.headers())
                .await
            {
                Ok(session) => Some(session),
                Err(error) => {
                    tracing::info!(%error, "re-authentication refused: no usable access token");
                    return self.layer.refusal(error);
                }
            },
        };
        let ip = client_ip(req.extensions());
        let user_agent = req
            .headers()
            .get(http::header::USER_AGENT)
            .map(|ua| String::from_utf8_lossy(ua.as_bytes()));
        let device = DeviceInfo::capture(
            user_agent.as_deref(),
            ip,
            self.manager.config().device().ip(),
        );
        let (parts, body) = req.into_parts();
        // A login's DPoP proof (a re-authentication's was checked with its token).
        let proof = match caller {
            Some(_) => None,
            None => match self.login_proof(&parts).await {
                Ok(proof) => proof,
                Err(res) => return res,
            },
        };
        // The client's upload is the client's time, not the store's budget.
        let body = match excluding(read_json_object(&parts.headers, body)).await {
            Ok(body) => body,
            Err(res) => return res,
        };
        // Read twice from the same bytes, each refusing a member named twice.
        let delivery = match serde_json::from_slice::<Delivered>(&body) {
            Ok(delivered) => delivered.refresh_token_delivery.unwrap_or_default(),
            Err(error) => return body_refused(&error),
        };
        let credentials: C = match serde_json::from_slice(&body) {
            Ok(credentials) => credentials,
            Err(error) => return body_refused(&error),
        };
        let username = credentials.login_name();
        // No store keeps a NUL in a name (a PostgreSQL `text` column refuses it): bad input,
        // refused before the attempt tracker or the credential check sees it.
        if username.contains('\0') {
            return bad_request("the user name must not contain a NUL character");
        }
        let user = Escaped::new(username).to_string();
        let attempt = match self.reserve(username, ip, &user).await {
            Ok(attempt) => attempt,
            Err(res) => return res,
        };
        match self.verify(credentials, attempt, &user, ip).await {
            Ok((authenticated, attempt)) => match caller {
                None => {
                    self.issue(&authenticated, attempt, delivery, ip, device, proof)
                        .await
                }
                Some(caller) => {
                    self.reissue(&caller, &authenticated, attempt, delivery, ip)
                        .await
                }
            },
            Err(res) => res,
        }
    }

    /// The login's DPoP proof, checked before anything is counted: the key the session is bound
    /// to, when DPoP is on. Without DPoP required, a login without a proof gets Bearer tokens.
    async fn login_proof(&self, parts: &Parts) -> Result<Option<DpopProof>, Response<Bytes>> {
        let dpop = self.manager.dpop();
        let refused = |error: SessionError| {
            tracing::info!(%error, "login refused: DPoP proof");
            token_route_refusal(dpop, &error).unwrap_or_else(|| session_error(&error))
        };
        let uri = crate::layer::original_uri(&parts.uri, &parts.extensions);
        let proof = token_route_proof(dpop, &parts.method, uri, &parts.headers)
            .await
            .map_err(refused)?;
        match self.manager.config().dpop().mode() {
            DpopMode::Off => Ok(None),
            DpopMode::Required if proof.is_none() => {
                Err(refused(SessionError::Dpop(DpopError::Missing)))
            }
            _ => Ok(proof),
        }
    }

    /// Re-authenticates the caller's session with what the check found, and answers as a
    /// login does. Credentials of another user are a failed attempt, and change nothing.
    async fn reissue(
        &self,
        caller: &Session,
        authenticated: &Authenticated,
        attempt: Option<LoginAttempt>,
        delivery: Delivery,
        ip: Option<IpAddr>,
    ) -> Response<Bytes> {
        let ip = ip.map(tracing::field::display);
        if authenticated.user_id != caller.user_id() {
            if let Some(attempt) = attempt {
                self.attempts.login_failed(attempt).await;
            }
            tracing::info!(
                user_id = %Escaped::new(caller.user_id()),
                session_id = %caller.session_id(),
                ip,
                "re-authentication refused: the credentials are another user's"
            );
            return session_error(&SessionError::UserMismatch);
        }
        let result = self
            .manager
            .reauthenticate(
                caller,
                NewSession::new(authenticated.user_id.clone())
                    .roles(&authenticated.roles)
                    .custom_claims_result(authenticated.claims.clone())
                    .methods(&authenticated.amr, authenticated.acr.as_deref()),
            )
            .await;
        if let Some(attempt) = attempt {
            match &result {
                Err(SessionError::Unavailable(_)) => self.attempts.login_failed(attempt).await,
                _ => self.attempts.login_succeeded(attempt).await,
            }
        }
        match result {
            Ok(pair) => {
                tracing::info!(
                    user_id = %Escaped::new(&pair.user_id),
                    session_id = %pair.session_id,
                    ip,
                    "re-authentication succeeded"
                );
                self.answer("Re-authentication successful", &pair, delivery)
            }
            Err(error) => {
                tracing::info!(
                    user_id = %Escaped::new(caller.user_id()),
                    session_id = %caller.session_id(),
                    ip,
                    %error,
                    "re-authentication refused"
                );
                session_error(&error)
            }
        }
    }

    /// The answer of a login or a re-authentication: the token pair and the refresh cookie.
    fn answer(
        &self,
        message: &'static str,
        pair: &TokenPair,
        delivery: Delivery,
    ) -> Response<Bytes> {
        let data = TokenPairBody::from_pair(pair).hide_refresh_token(delivery == Delivery::Cookie);
        // `into_http` sets `Cache-Control: no-store`: tokens are never cached (RFC 6749 §5.1).
        let mut res = Success::new(message, data).into_http();
        res.headers_mut().insert(
            SET_COOKIE,
            crate::cookie::refresh_cookie(&self.manager, pair),
        );
        res
    }

    /// Path, method, Origin rule and content type: the answers given before the body is read.
    fn precheck<B>(&self, req: &Request<B>) -> Result<Route, Response<Bytes>> {
        let path = req.uri().path();
        let route = if path == &*self.reauthenticate_path {
            Route::Reauthenticate
        } else if path == &*self.path || path == "/" {
            Route::Login
        } else {
            return Err(json_error(ErrorCode::NotFound, "no such route"));
        };
        if req.method() != Method::POST {
            let mut res = json_error(ErrorCode::MethodNotAllowed, "use POST on this route");
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return Err(res);
        }
        let allowed = self.manager.config().cookies().allowed_origins();
        if let Err(reason) = origin::check(req.headers(), req.uri(), allowed) {
            let origin = req
                .headers()
                .get(http::header::ORIGIN)
                .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
            let origin = origin.as_deref().map(Escaped::new);
            tracing::info!(
                origin = origin.map(tracing::field::display),
                "login refused: {reason}"
            );
            return Err(json_error(ErrorCode::Forbidden, reason));
        }
        if !declares_json(req.headers()) {
            return Err(unsupported_media_type());
        }
        Ok(route)
    }

    /// Reserves the attempt in the lock-out (429 when locked out) and waits out its slowing
    /// delay. No client address: nothing is counted.
    async fn reserve(
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
    async fn verify(
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
    async fn issue(
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
fn session_error(error: &SessionError) -> Response<Bytes> {
    json_error(error.code(), &error.client_message())
}

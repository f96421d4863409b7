//! [`LoginService`]: the login route of [the protocol](crate::routes#routes), around the app's own credential check.
//!
//! The app says who a user is ([`CredentialCheck`]: user name and password in, user id and
//! roles out); the service does everything else, the same way for every app:
//!
//! 1. `POST` only (405 otherwise), at [`LoginService::path`] (`/api/auth/login` by default).
//! 2. **The Origin rule** (login CSRF, below): 403 `forbidden`.
//! 3. **JSON only**: a `Content-Type` other than `application/json` (parameters such as
//!    `; charset=utf-8` allowed) is refused with 415 `unsupported_media_type`, before the body is
//!    read. A cross-site `<form enctype="text/plain">` cannot send `application/json`.
//! 4. The body, `{"username": "…", "password": "…"}`, at most 16 KiB (413
//!    `payload_too_large`); malformed JSON, a missing field or a field of the wrong type is 400
//!    `invalid_request`.
//! 5. **The lock-out**: the attempt is reserved in the [`AttemptTracker`] before the password
//!    is checked (so parallel guesses cannot all slip past one check), the tracker's slowing
//!    delay is waited out, and the outcome is recorded. A client locked out gets 429
//!    `rate_limited` with `Retry-After`. See the tracker for what it counts and what it
//!    protects against.
//! 6. The app's check. `Ok(None)` is 401 `invalid_credentials`, the same answer whether the
//!    user exists or not; `Err` is 503 `unavailable` (the app's user database is down: the
//!    client may retry). An `Err` is no guess, right or wrong, so the attempt is given back
//!    ([`login_abandoned`](crate::rate_limit::AttemptTracker::login_abandoned)): an outage does not lock
//!    the app's users out. A check must therefore answer `Err` only when it could not decide,
//!    never for a wrong password.
//! 7. A session through [`SessionManager::create_session`]: 403 `forbidden` when the user
//!    has the maximum number of sessions under the `deny` policy, 503 `unavailable` when the
//!    session store cannot be reached.
//! 8. The answer: 200 `{"success": true, "message": "Login successful", "data": {accessToken,
//!    refreshToken, expiresIn, sessionId, userId}}` (`expiresIn` in milliseconds), the refresh
//!    cookie ([`cookie::refresh_cookie`]), and `Cache-Control: no-store` on every
//!    answer.
//!
//! **Re-authentication (step-up).** The service has a second route,
//! [`LoginService::reauthenticate_path`] (`/api/auth/reauthenticate` by default): a signed-in
//! user confirms who they are again before a sensitive action, without a logout. See
//! [below](#re-authentication-step-up).
//!
//! **Cookie-only delivery.** A client that keeps the refresh token only in the HttpOnly cookie
//! (the browser `TokenManager` of `client/token-manager.js` in cookie mode) adds `"refreshTokenDelivery": "cookie"` to the login body: the answer then has
//! no `refreshToken` field, so no script on the page ever sees the token. `"body"` (the default)
//! puts it in the body as well as in the cookie. The token routes of
//! [`TokenRoutes`](crate::routes::TokenRoutes) take the same field, and leave the token out of the
//! body anyway when it came from the cookie.
//!
//! # The Origin rule
//!
//! A login that sets a cookie is a target of login CSRF: a page on another site posts the
//! attacker's credentials, the victim's browser is logged into the attacker's account and keeps
//! its refresh cookie, and what the victim then types lands in the attacker's account. The
//! service refuses (403 `forbidden`):
//!
//! - a request whose `Sec-Fetch-Site` is `cross-site` or `same-site`, unless its `Origin` is one
//!   of the configured [`allowed_origins`](crate::config::CookieSettings::with_allowed_origins);
//! - a request with an `Origin` that is neither one of the allowed origins nor the server's own:
//!   same host and port as the `Host` header (or the request target's authority under
//!   HTTP/2), the port defaulting by the origin's scheme. `Origin: null` (sandboxed frames,
//!   some redirects) is never the server's own;
//! - a request with more than one `Origin` header.
//!
//! A request with neither header passes: browsers send `Origin` on every cross-origin `POST`,
//! and `curl` or a server-to-server call sends none. Behind a reverse proxy, pass the public
//! `Host` through (nginx: `proxy_set_header Host $host;`) or list the public origin in the
//! allowed origins, or browser logins from the app's own pages are refused.
//!
//! # Re-authentication (step-up)
//!
//! `POST /api/auth/reauthenticate` takes the caller's access token (`Authorization: Bearer`)
//! and the same credentials body as the login, and goes through the same steps 1 to 6: the
//! Origin rule, JSON only, the body, the **lock-out** (the same attempt tracker, counted as
//! login attempts: guesses here and at the login add up), and the app's check. Then:
//!
//! - the token is verified as [`SessionLayer`](crate::SessionLayer) verifies it, before the
//!   body is read: none, or one the layer refuses, is 401 with the layer's challenge;
//! - credentials the check refuses are 401 `invalid_credentials`, and the session is left
//!   exactly as it was (same generation, its tokens still valid);
//! - credentials of another user than the token's are 403 `forbidden`, counted as a failed
//!   attempt, and the session is left as it was;
//! - otherwise [`SessionManager::reauthenticate`](crate::SessionManager::reauthenticate) moves
//!   the **same** session (same `sessionId`, same devices row) to a new refresh token and
//!   access token with `auth_time` now and the check's `amr`/`acr` (and its current roles and
//!   claims), and the answer is the login's: 200 with `{accessToken, refreshToken, expiresIn,
//!   sessionId, userId}` and the refresh cookie. A session that has ended is 401
//!   `token_revoked`; a refresh of the same session that landed in between wins, and the
//!   re-authentication is answered 503 `unavailable` (send it again), never half-applied.
//!
//! A route that needs a recent or stronger authentication says so with
//! [`require_recent_auth`](crate::layer::require_recent_auth), whose refusal (401
//! `insufficient_user_authentication`, RFC 9470) tells the client to come here.
//!
//! # Which client
//!
//! The rate limit and the lock-out count per client address: the peer address of the
//! connection (axum's `ConnectInfo<SocketAddr>`: serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`; hyper: a
//! [`PeerAddr`](crate::rate_limit::PeerAddr) extension), or, when the peer is one of
//! `TRUSTED_PROXIES`, the right-most `X-Forwarded-For` entry that is not. A request that reaches
//! the service without an address cannot be counted: the service logs that once at `warn`
//! with the fix, and `GET /api/token/health` reports `degraded` with the reason code
//! `client_address_missing` from then on.
//!
//! # Unknown users and timing
//!
//! The answer for an unknown user must take as long as for a wrong password, or response times
//! tell an attacker which user names exist. That is the check's job, since only it knows what
//! its work costs: when the user is not found, verify the password against a dummy hash of the
//! same kind and throw the result away (examples/server.rs does it with argon2). Run a slow hash
//! on `tokio::task::spawn_blocking`, not on the async workers.
//!
//! # Logging
//!
//! A failed login is logged at `info` with the user name as sent and the client IP, a
//! successful one at `info` with the user id and the session; user-supplied strings go through
//! escaping (at most 64 bytes), so a name holding a
//! newline or terminal escapes cannot forge a log line. Passwords are never logged, and
//! [`Credentials`]' `Debug` hides them.
//!
//! # Example
//!
//! ```
//! use axum::Router;
//! use http::Request;
//! use tower::ServiceExt;
//! use tower_jwt_session::login::{Authenticated, CheckError, Credentials};
//! use tower_jwt_session::{SessionConfig, SessionManager, login::LoginService, routes::TokenRoutes};
//!
//! /// The app's check. A real one looks the user up and verifies a password hash, with the same
//! /// work for unknown users: see examples/app.rs.
//! async fn check(credentials: Credentials) -> Result<Option<Authenticated>, CheckError> {
//!     let ok = credentials.username == "alice" && credentials.password == "alice-password";
//!     Ok(ok.then(|| Authenticated::new("alice", ["user"])))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
//! let login = LoginService::new(&manager, check);
//! let app: Router = Router::new()
//!     .route_service("/api/auth/login", login)
//!     .nest_service("/api/token", TokenRoutes::new(&manager));
//!
//! let mut request = Request::post("/api/auth/login")
//!     .header("content-type", "application/json")
//!     .body(axum::body::Body::from(
//!         r#"{"username":"alice","password":"alice-password","refreshTokenDelivery":"cookie"}"#,
//!     ))?;
//! // What axum's `into_make_service_with_connect_info::<SocketAddr>()` adds to each request.
//! let peer: std::net::SocketAddr = "192.0.2.1:40000".parse()?;
//! request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert!(response.headers()["set-cookie"].to_str()?.starts_with("tjs_refresh="));
//! assert_eq!(response.headers()["cache-control"], "no-store");
//! # Ok(())
//! # }
//! ```
//!
//! [`AttemptTracker`]: crate::rate_limit::AttemptTracker
//! [`ClientIp`]: crate::rate_limit::ClientIp
//! [`SessionManager::create_session`]: crate::SessionManager::create_session
//! [`cookie::refresh_cookie`]: crate::routes::refresh_cookie

mod origin;
mod service;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

pub use service::{LoginFuture, LoginService};

use crate::session::{ClaimsError, CustomClaims};
use crate::telemetry::Escaped;

/// What the client sent to log in, in the default shape `{"username": …, "password": …}`.
/// `Debug` shows the user name (escaped) and hides the password. An app that logs in with an
/// e-mail address, or a password and a one-time code, uses a type of its own
/// ([`LoginCredentials`]).
#[derive(Clone, serde::Deserialize)]
#[non_exhaustive]
pub struct Credentials {
    /// The user name, exactly as sent. Normalise it (case, Unicode) the way your user lookup
    /// does; the [`AttemptTracker`](crate::rate_limit::AttemptTracker) counts it as sent.
    pub username: String,
    /// The password, exactly as sent.
    pub password: String,
}

impl Credentials {
    /// Credentials, for calling a check in tests.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &Escaped::new(&self.username))
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Who a [`CredentialCheck`] found: the user id the session is for (the access token's `sub`)
/// and the roles it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Authenticated {
    /// The user id: 1 to 256 bytes without NUL
    /// ([`MAX_USER_ID_LEN`](crate::manager::MAX_USER_ID_LEN)).
    pub user_id: String,
    /// The roles: at most [`MAX_ROLES`](crate::manager::MAX_ROLES) of at most 64 bytes each.
    pub roles: Vec<String>,
    /// The app's own claims for the session's access tokens (see
    /// [`with_claims`](Self::with_claims)); refused ones are kept as their error, which the
    /// login answers with 500 `internal_error` (and logs), starting no session.
    pub(crate) claims: Result<CustomClaims, ClaimsError>,
    /// How the user proved who they are (`amr`), from [`amr`](Self::amr).
    pub(crate) amr: Vec<String>,
    /// The class reached (`acr`), from [`acr`](Self::acr).
    pub(crate) acr: Option<String>,
}

impl Authenticated {
    /// `user_id` with `roles`.
    pub fn new(
        user_id: impl Into<String>,
        roles: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            roles: roles.into_iter().map(Into::into).collect(),
            claims: Ok(CustomClaims::default()),
            amr: Vec::new(),
            acr: None,
        }
    }

    /// How the user proved who they are, for the `amr` claim of the session's access tokens
    /// (RFC 8176 values: `pwd` for a password, `otp` for a one-time code, `hwk` for a security
    /// key, …). The default is none: the tokens carry no `amr`. A login sets it for the new
    /// session; a [re-authentication](super::login#re-authentication-step-up) replaces it.
    /// Values the rules refuse (more than [`MAX_AMR`](crate::session::MAX_AMR), empty, longer
    /// than 64 bytes, a control character) are the app's bug: answered 500 `internal_error`
    /// and logged, with no session started or changed.
    ///
    /// ```
    /// use tower_jwt_session::login::Authenticated;
    ///
    /// let found = Authenticated::new("alice", ["user"]).amr(["pwd", "otp"]).acr("urn:example:aal2");
    /// assert_eq!(found.amr_values(), ["pwd", "otp"]);
    /// assert_eq!(found.acr_value(), Some("urn:example:aal2"));
    /// ```
    pub fn amr(mut self, amr: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.amr = amr.into_iter().map(Into::into).collect();
        self
    }

    /// The authentication context class the user reached, for the `acr` claim (a value of the
    /// app's own, such as `urn:example:aal2`, which a
    /// [`RequireRecentAuthLayer::acr_values`](crate::layer::RequireRecentAuthLayer::acr_values)
    /// can ask for). The default is none. Refused values are answered as for
    /// [`amr`](Self::amr).
    pub fn acr(mut self, acr: impl Into<String>) -> Self {
        self.acr = Some(acr.into());
        self
    }

    /// The methods given with [`amr`](Self::amr).
    pub fn amr_values(&self) -> &[String] {
        &self.amr
    }

    /// The class given with [`acr`](Self::acr).
    pub fn acr_value(&self) -> Option<&str> {
        self.acr.as_deref()
    }

    /// With the app's own claims: any value that serializes to a JSON object without
    /// [reserved names](crate::session::RESERVED_CLAIMS), put into every access token of the
    /// session (see [`NewSession::claims`](crate::manager::NewSession::claims)). Claims the rules
    /// refuse are the app's bug: the login answers 500 `internal_error`, logs why, and starts
    /// no session.
    ///
    /// ```
    /// use tower_jwt_session::login::Authenticated;
    ///
    /// let found = Authenticated::new("alice", ["user"])
    ///     .with_claims(&serde_json::json!({ "tenant": "acme" }));
    /// assert_eq!(found.claims().unwrap().as_json(), r#"{"tenant":"acme"}"#);
    /// ```
    pub fn with_claims<T: serde::Serialize + ?Sized>(mut self, claims: &T) -> Self {
        self.claims = CustomClaims::new(claims);
        self
    }

    /// The claims given with [`with_claims`](Self::with_claims), or why they were refused.
    ///
    /// # Errors
    /// The [`ClaimsError`] they were refused with.
    pub fn claims(&self) -> Result<&CustomClaims, &ClaimsError> {
        self.claims.as_ref()
    }
}

/// What a login request carries, read from its JSON body: [`Credentials`] by default, or a
/// type of the app's own (an e-mail address, a one-time code). The lock-out counts failures
/// against its [`login_name`](Self::login_name).
///
/// ```
/// use tower_jwt_session::login::LoginCredentials;
///
/// #[derive(serde::Deserialize)]
/// struct EmailLogin {
///     email: String,
///     password: String,
///     otp: Option<String>,
/// }
///
/// impl LoginCredentials for EmailLogin {
///     fn login_name(&self) -> &str {
///         &self.email
///     }
/// }
/// ```
pub trait LoginCredentials: serde::de::DeserializeOwned + Send + 'static {
    /// Who the login is for, as sent (the user name, the e-mail address): what the lock-out
    /// counts failures against. A NUL in it is refused (400) before anything counts it.
    fn login_name(&self) -> &str;
}

impl LoginCredentials for Credentials {
    fn login_name(&self) -> &str {
        &self.username
    }
}

/// Why a credential check written as a closure or an async function could not be made: any
/// error converts into it with `?` (as into `anyhow::Error`), or make one from a message with
/// [`CheckError::msg`]. Its text is logged at `warn`, never sent to the client.
pub struct CheckError(Box<dyn StdError + Send + Sync>);

impl CheckError {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self(message.to_string().into())
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for CheckError {
    fn from(error: E) -> Self {
        Self(Box::new(error))
    }
}

impl From<CheckError> for Box<dyn StdError + Send + Sync> {
    fn from(error: CheckError) -> Self {
        error.0
    }
}

impl fmt::Debug for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The app's credential check, in the way of axum-login's `AuthnBackend`: the credentials in
/// (`C`, [`Credentials`] unless the app logs in with a shape of its own); `Ok(Some(…))` with
/// the user id and roles when they are right, `Ok(None)` when they are wrong (unknown user or
/// wrong password: the client is told the same), `Err` when the check could not be made (the
/// user database is down; the client gets 503 `unavailable`, and the attempt is not counted
/// against the client, so never answer `Err` for a wrong password).
///
/// Do the same work for an unknown user as for a known one (verify against a dummy hash), and
/// run a slow password hash on `tokio::task::spawn_blocking`: see the [module docs](self).
///
/// Implemented for async functions and closures returning
/// `Result<Option<Authenticated>, CheckError>` (so `?` works inside them, with no type
/// annotation); implement it on a struct for an error type of your own. Object-safe
/// (`Box<dyn CredentialCheck<Credentials, Error = E>>`).
///
/// ```
/// use tower_jwt_session::login::{Authenticated, CheckError, CredentialCheck, Credentials};
///
/// #[derive(Clone)]
/// struct Pool; // the app's database pool
/// impl Pool {
///     async fn roles_of(&self, user: &str) -> Result<Option<Vec<String>>, std::io::Error> {
///         Ok((user == "alice").then(|| vec!["user".to_owned()]))
///     }
/// }
///
/// fn needs_a_check<C: CredentialCheck>(_: C) {}
///
/// let pool = Pool;
/// // A closure capturing the pool: `?` converts the pool's error, nothing is annotated.
/// needs_a_check(move |c: Credentials| {
///     let pool = pool.clone();
///     async move {
///         let Some(roles) = pool.roles_of(&c.username).await? else { return Ok(None) };
///         Ok(Some(Authenticated::new(c.username, roles)))
///     }
/// });
/// ```
#[async_trait::async_trait]
pub trait CredentialCheck<C: LoginCredentials = Credentials>: Send + Sync + 'static {
    /// Why the check could not be made. Anything that converts into a boxed error: your error
    /// type, [`CheckError`], a `String`, or [`Infallible`](std::convert::Infallible).
    type Error: Into<Box<dyn StdError + Send + Sync>> + Send + 'static;

    /// Checks `credentials`.
    ///
    /// # Errors
    /// When the check could not be made, and only then; the login is answered 503
    /// `unavailable` and the attempt is not counted as a failure.
    async fn check(&self, credentials: C) -> Result<Option<Authenticated>, Self::Error>;
}

#[async_trait::async_trait]
impl<F, Fut, C> CredentialCheck<C> for F
where
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Authenticated>, CheckError>> + Send,
    C: LoginCredentials,
{
    type Error = CheckError;

    async fn check(&self, credentials: C) -> Result<Option<Authenticated>, CheckError> {
        self(credentials).await
    }
}

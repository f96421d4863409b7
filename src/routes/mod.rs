//! [`TokenRoutes`]: the token routes of [the protocol](crate::routes#routes) as one tower service.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST {prefix}/refresh` `{refreshToken}` or the refresh cookie | — | a new token pair |
//! | `POST {prefix}/validate` `{accessToken}` | — | what the layer would think of the token |
//! | `POST {prefix}/auto-refresh` `{accessToken, refreshToken}` | — | refreshes only when due |
//! | `GET {prefix}/session-stats/{userId}` | Bearer | the user's live sessions (self or `admin`) |
//! | `GET {prefix}/sessions` | Bearer | the caller's own live sessions, the same rows |
//! | `GET {prefix}/activity` | Bearer | the caller's own security activity, newest first |
//! | `GET {prefix}/health` | — | `{status, store}`, 503 when the store is down |
//! | `POST {prefix}/logout` | Bearer, or the refresh cookie | ends the caller's session |
//! | `POST {prefix}/logout-all` | Bearer | ends all the caller's sessions |
//! | `GET /.well-known/jwks.json` | — | the public keys (JWKS); 404 with HMAC signing alone |
//! | `POST {prefix}/logout-others` | Bearer | ends all the caller's sessions but this one |
//! | `DELETE {prefix}/sessions/{sessionId}` | Bearer | ends one session of the caller (any, for `admin`); 404 for any other id |
//!
//! The service accepts paths with or without the prefix, so it works both nested in axum
//! (`Router::nest_service("/api/token", …)`, which strips the prefix) and as the whole service of
//! a bare hyper server. Bodies are capped at 16 KiB (413 beyond).
//!
//! The JWKS lives at the root by convention: mount the same service there too
//! (`Router::route_service("/.well-known/jwks.json", routes.clone())`), as in the example
//! below. Its answer is built once at startup and carries `Cache-Control: public, max-age=300`
//! ([`jwks_max_age`](TokenRoutes::jwks_max_age)) and a strong `ETag`; `If-None-Match` gets
//! 304. With HMAC signing alone there is no public key to publish, and it answers 404
//! `not_found`: an empty key set would tell a verifier that it can check our tokens, and each
//! token would then fail there with an unknown `kid`, which is harder to diagnose than a 404.
//!
//! The routes that take a body (`refresh`, `validate`, `auto-refresh`) take JSON only: a
//! `Content-Type` other than `application/json` (parameters such as `; charset=utf-8`
//! allowed) is 415 `unsupported_media_type`, before the body is read, and so is a body sent
//! without any `Content-Type`. A request with no `Content-Type` and no body at all is read as
//! an empty JSON object: that is how a cookie-only refresh looks from curl or a bare `fetch`,
//! and it still has to pass the CSRF rule below. So a cross-site `<form>`, which always sends
//! a form or `text/plain` content type, never gets its body read.
//!
//! Refreshing through the cookie alone is accepted only with an `X-Requested-With` header or an
//! `Origin` in the configured [`allowed_origins`](crate::config::CookieSettings::with_allowed_origins)
//! (CSRF), else 403; and then the response body leaves `refreshToken` out, so an HttpOnly cookie
//! stays out of reach of scripts.
//! A client can also ask for that with `"refreshTokenDelivery": "cookie"` in the body of
//! `refresh` and `auto-refresh`, as at [login](crate::login).
//!
//! `logout` ends the session of the bearer token; without one the layer accepts (an expired
//! access token, say), it ends the session the refresh cookie names, under the same CSRF rule
//! (403 without the proof). A cookie of a session already ended is answered 200; a forged one
//! gets the bearer refusal (401) and is counted as a failed refresh. Both clear the cookie.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager, routes::TokenRoutes};
//!
//! let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
//! let routes = TokenRoutes::new(&manager);
//! let app: Router = Router::new()
//!     .route("/api/me", get(|| async { "protected" }))
//!     .route_layer(SessionLayer::from_manager(&manager))
//!     .route_service(tower_jwt_session::routes::JWKS_PATH, routes.clone())
//!     .nest_service("/api/token", routes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![doc = ""]
#![doc = include_str!("../../docs/protocol.md")]
// Early answers travel as `Err(Response)`: these routes do store I/O, so the size of that
// variant is of no consequence.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, ORIGIN, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use serde::Deserialize;
use tower_service::Service;
use tracing::Instrument;

use crate::clock::rfc3339;
use crate::cookie::Delivery;
use crate::deadline::{RequestStart, excluding};
use crate::error::{AuthError, ErrorCode, json_error};
use crate::json_body::read_optional_json;
use crate::layer::SessionLayer;
use crate::manager::RevocationCache;
use crate::manager::{SessionError, SessionManager, TokenPair};
use crate::rate_limit::{AttemptTracker, ClientIp};
use account::ValidateBody;
use refresh::{AutoRefreshBody, RefreshBody, Tracked, count_refresh_error, refresh_allowed};

use crate::response::{
    Activity, ActivityEntry, Empty, Health, Revoked, SessionInfo, SessionStats, Success,
    TokenPairBody, TokenStatus,
};
use crate::revocation::SessionStatus;

pub use crate::cookie::{clear_refresh_cookie, refresh_cookie};
#[doc(inline)]
pub use crate::json_body::MAX_BODY_BYTES;
pub use jwks::{DEFAULT_JWKS_MAX_AGE, JWKS_PATH};

/// The login and the token routes as one axum router, at the paths of
/// [the protocol](crate::routes#routes): `POST /api/auth/login` and `POST /api/auth/reauthenticate`
/// ([`LoginService`](crate::login::LoginService) around `check`), `/api/token/…` ([`TokenRoutes`]) and `/.well-known/jwks.json`, every protection
/// on. Merge it into your app; for other paths, mount the two services yourself.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_jwt_session::login::{Authenticated, CheckError, Credentials};
/// use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager, routes};
///
/// async fn check(c: Credentials) -> Result<Option<Authenticated>, CheckError> {
///     Ok((c.password == "alice-password").then(|| Authenticated::new("alice", ["user"])))
/// }
///
/// let sessions = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let app: Router = Router::new()
///     .route("/api/me", get(|| async { "protected" }))
///     .route_layer(SessionLayer::from_manager(&sessions))
///     .merge(routes::router(&sessions, check));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub fn router<K, C>(manager: &SessionManager, check: K) -> axum::Router
where
    K: crate::login::CredentialCheck<C>,
    C: crate::login::LoginCredentials,
{
    let routes = TokenRoutes::new(manager);
    let login = crate::login::LoginService::new(manager, check);
    axum::Router::new()
        .route_service("/api/auth/login", login.clone())
        .route_service("/api/auth/reauthenticate", login)
        .nest_service("/api/token", routes.clone())
        .route_service(JWKS_PATH, routes)
}

/// The token routes of [the protocol](crate::routes#routes): see the [module docs](crate::routes).
#[derive(Clone)]
pub struct TokenRoutes {
    manager: SessionManager,
    layer: SessionLayer<RevocationCache>,
    prefix: Arc<str>,
    attempts: AttemptTracker,
    rate_limited: bool,
    jwks_max_age: Duration,
}

impl fmt::Debug for TokenRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRoutes")
            .field("prefix", &self.prefix)
            .field("attempts", &self.attempts)
            .field("rate_limited", &self.rate_limited)
            .finish_non_exhaustive()
    }
}

/// The response future of [`TokenRoutes`]. Boxed: token routes do store I/O, which costs far
/// more than the allocation.
pub type TokenRoutesFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl TokenRoutes {
    /// The token routes of `manager` under `/api/token`, protected as the
    /// [module docs](crate::routes) say: every request but health and the JWKS counts against
    /// the per-client rate limit, and forged refresh tokens against the client's refresh
    /// bucket of the lock-out, both kept where the manager keeps its sessions
    /// ([`SessionManager::limits`]).
    pub fn new(manager: &SessionManager) -> Self {
        Self {
            manager: manager.clone(),
            layer: SessionLayer::from_manager(manager),
            prefix: "/api/token".into(),
            attempts: manager.limits().attempts().clone(),
            rate_limited: true,
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
        }
    }

    /// Does not count requests against the per-client rate limit: for an app that limits
    /// them another way (a proxy, a gateway). Requests behind a
    /// [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) are not counted twice
    /// anyway. The forged-refresh tracking stays on.
    #[must_use]
    pub fn without_rate_limit(mut self) -> Self {
        self.rate_limited = false;
        self
    }

    /// The `max-age` of the JWKS answer. The default is five minutes
    /// ([`DEFAULT_JWKS_MAX_AGE`]). A verifier may hold the keys that long, so in a key rotation
    /// publish the next key at least this long before it signs (most verifiers also fetch
    /// again when a token names a `kid` they do not know).
    #[must_use]
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// Counts forged and malformed refresh tokens (a MAC that does not verify, a token that does
    /// not parse) per client in `tracker`'s refresh bucket instead of the manager's, on every
    /// route that takes one (`/refresh` and `/auto-refresh`, from the body or the cookie, and
    /// `/logout` through the cookie), and answers 429 `rate_limited` there to a client that has
    /// sent too many, for the tracker's cool-down. A well-formed token of an ended session
    /// (`token_revoked`, `token_expired`, `session_expired`, `refresh_token_reused`) is not
    /// counted, nor is a failed login. The default is the manager's tracker
    /// ([`SessionManager::limits`]).
    #[must_use]
    pub fn attempt_tracker(mut self, tracker: AttemptTracker) -> Self {
        self.attempts = tracker;
        self
    }

    /// Serves under another prefix. The default is `/api/token`. Remember to set the cookie
    /// path ([`CookieSettings::with_path`](crate::config::CookieSettings::with_path)) to match.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').into();
        self
    }
}

impl<B> Service<Request<B>> for TokenRoutes
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = TokenRoutesFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        // One deadline for all the store I/O of this request (the attempt tracker, the
        // revocation check, the store), from when it reached the crate: an outage answers 503
        // within one store timeout, not the sum of each backend's.
        let at = RequestStart::of(req.extensions()) + self.manager.budget();
        Box::pin(async move {
            let res = crate::deadline::within(at, this.handle(req)).await;
            Ok(res.map(Full::new))
        })
    }
}

/// A route's answer before the body is wrapped.
type Answer = Response<Bytes>;

fn success<T: serde::Serialize>(message: &'static str, data: T) -> Answer {
    Success::new(message, data).into_http()
}

fn session_error(error: &SessionError) -> Answer {
    json_error(error.code(), &error.client_message())
}

fn bad_request(message: &str) -> Answer {
    json_error(ErrorCode::InvalidRequest, message)
}

impl TokenRoutes {
    /// The route a request names, or the 404 / 405 answer.
    fn route<B>(&self, req: &Request<B>) -> Result<Route, Answer> {
        let path = req.uri().path();
        let route = path
            .strip_prefix(&*self.prefix)
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path)
            .to_owned();
        let method = req.method().clone();
        let (allowed, route) = match route.as_str() {
            "/refresh" => (Method::POST, Route::Refresh),
            "/validate" => (Method::POST, Route::Validate),
            "/auto-refresh" => (Method::POST, Route::AutoRefresh),
            "/health" => (Method::GET, Route::Health),
            "/logout" => (Method::POST, Route::Logout),
            "/logout-all" => (Method::POST, Route::LogoutAll),
            JWKS_PATH => (Method::GET, Route::Jwks),
            "/logout-others" => (Method::POST, Route::LogoutOthers),
            "/sessions" => (Method::GET, Route::OwnSessions),
            "/activity" => (Method::GET, Route::Activity),
            other => match other.strip_prefix("/session-stats/") {
                Some(user) if !user.is_empty() && !user.contains('/') => {
                    (Method::GET, Route::SessionStats(user.to_owned()))
                }
                _ if other.starts_with("/sessions/") && !other[10..].contains('/') => {
                    (Method::DELETE, Route::EndSession(other[10..].to_owned()))
                }
                _ => {
                    return Err(json_error(ErrorCode::NotFound, "no such token route"));
                }
            },
        };
        if method != allowed && !(allowed == Method::GET && method == Method::HEAD) {
            let mut res = json_error(
                ErrorCode::MethodNotAllowed,
                &format!("use {allowed} on this route"),
            );
            res.headers_mut().insert(
                ALLOW,
                HeaderValue::from_str(allowed.as_str()).expect("a method name"),
            );
            return Err(res);
        }
        Ok(route)
    }

    async fn handle<B>(&self, req: Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let route = match self.route(&req) {
            Ok(route) => route,
            Err(res) => return res,
        };
        // Attached to the future, not entered: a guard held across `.await` would leave the
        // span entered on the thread while this request waits, and every request polled there
        // meanwhile would nest inside it.
        let span = tracing::debug_span!("token_route", route = route.name());
        async {
            // Health probes and verifiers fetching the keys are never limited, and need no
            // client address.
            if matches!(route, Route::Health | Route::Jwks) {
                return self.dispatch(route, req).await;
            }
            self.manager
                .limits()
                .around(self.rate_limited, req, |req| self.dispatch(route, req))
                .await
        }
        .instrument(span)
        .await
    }

    async fn dispatch<B>(&self, route: Route, req: Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = req.into_parts();
        match route {
            Route::Refresh => {
                let tracked = self.refresh_tracking(&parts.extensions);
                if let Err(res) = refresh_allowed(tracked).await {
                    return res;
                }
                match excluding(read_optional_json::<RefreshBody, B>(&parts.headers, body)).await {
                    Ok(body) => {
                        let cookie_only = body.refresh_token_delivery == Some(Delivery::Cookie);
                        self.refresh(&parts, body.refresh_token, cookie_only, tracked)
                            .await
                    }
                    Err(res) => res,
                }
            }
            Route::Validate => {
                match excluding(read_optional_json::<ValidateBody, B>(&parts.headers, body)).await {
                    Ok(body) => self.validate(body).await,
                    Err(res) => res,
                }
            }
            Route::AutoRefresh => {
                let tracked = self.refresh_tracking(&parts.extensions);
                if let Err(res) = refresh_allowed(tracked).await {
                    return res;
                }
                match excluding(read_optional_json::<AutoRefreshBody, B>(
                    &parts.headers,
                    body,
                ))
                .await
                {
                    Ok(body) => self.auto_refresh(&parts, body, tracked).await,
                    Err(res) => res,
                }
            }
            Route::SessionStats(user) => self.session_stats(&parts, &user).await,
            Route::OwnSessions => self.own_sessions(&parts).await,
            Route::Activity => self.activity(&parts).await,
            Route::Health => self.health().await,
            Route::Logout => {
                let tracked = self.refresh_tracking(&parts.extensions);
                self.logout(&parts, false, tracked).await
            }
            Route::LogoutAll => self.logout(&parts, true, None).await,
            Route::Jwks => self.jwks(&parts.headers),
            Route::LogoutOthers => self.logout_others(&parts).await,
            Route::EndSession(id) => self.end_session(&parts, &id).await,
        }
    }
}

enum Route {
    Refresh,
    Validate,
    AutoRefresh,
    SessionStats(String),
    OwnSessions,
    Activity,
    Health,
    Logout,
    LogoutAll,
    Jwks,
    LogoutOthers,
    EndSession(String),
}

impl Route {
    fn name(&self) -> &'static str {
        match self {
            Route::Refresh => "refresh",
            Route::Validate => "validate",
            Route::AutoRefresh => "auto-refresh",
            Route::SessionStats(_) => "session-stats",
            Route::OwnSessions => "sessions",
            Route::Activity => "activity",
            Route::Health => "health",
            Route::Logout => "logout",
            Route::LogoutAll => "logout-all",
            Route::Jwks => "jwks",
            Route::LogoutOthers => "logout-others",
            Route::EndSession(_) => "end-session",
        }
    }
}

/// Decodes `%XX` escapes of a path segment; `None` for a bad escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    // `percent-encoding` passes a malformed escape (`%zz`, a lone `%`) through as it is; a user
    // id with one is refused (400), so the escapes are checked first.
    let malformed = s.match_indices('%').any(|(i, _)| {
        !s.get(i + 1..i + 3)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if malformed {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
    Some(decoded.into_owned())
}

mod account;
#[cfg(test)]
mod device_tests;
mod jwks;
mod refresh;
#[cfg(test)]
mod tests;

//! [`TokenRoutes`]: the token routes of SPEC §5 as one tower service.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST {prefix}/refresh` `{refreshToken}` or the refresh cookie | — | a new token pair |
//! | `POST {prefix}/validate` `{accessToken}` | — | what the layer would think of the token |
//! | `POST {prefix}/auto-refresh` `{accessToken, refreshToken}` | — | refreshes only when due |
//! | `GET {prefix}/session-stats/{userId}` | Bearer | the user's live sessions (self or `admin`) |
//! | `GET {prefix}/health` | — | `{status, store}`, 503 when the store is down |
//! | `POST {prefix}/logout` | Bearer | ends the caller's session |
//! | `POST {prefix}/logout-all` | Bearer | ends all the caller's sessions |
//!
//! The service accepts paths with or without the prefix, so it works both nested in axum
//! (`Router::nest_service("/api/token", …)`, which strips the prefix) and as the whole service of
//! a bare hyper server. Bodies are capped at 16 KiB (413 beyond).
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
//! `Origin` in the configured [`allowed_origins`](crate::SessionConfig::allowed_origins)
//! (CSRF), else 403; and then the response body leaves `refreshToken` out, so an HttpOnly cookie
//! stays out of reach of scripts.
//! A client can also ask for that with `"refreshTokenDelivery": "cookie"` in the body of
//! `refresh` and `auto-refresh`, as at [login](crate::login).
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager, TokenRoutes};
//!
//! let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
//! let app: Router = Router::new()
//!     .route("/api/me", get(|| async { "protected" }))
//!     .route_layer(SessionLayer::from_manager(&manager))
//!     .nest_service("/api/token", TokenRoutes::new(&manager));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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

use bytes::Bytes;
use http::header::{ALLOW, ORIGIN, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use serde::Deserialize;
use tower_service::Service;

use crate::clock::rfc3339;
use crate::cookie::Delivery;
use crate::error::{AuthError, ErrorCode, auth_error_response, json_error};
use crate::json_body::read_optional_json;
use crate::layer::SessionLayer;
use crate::manager::RevocationCache;
use crate::manager::{SessionError, SessionManager, TokenPair};
use crate::rate_limit::{AttemptTracker, ClientIp};
use crate::response::{
    Empty, Health, Revoked, SessionInfo, SessionStats, Success, TokenPairBody, TokenStatus,
};
use crate::revocation::SessionStatus;

#[doc(inline)]
pub use crate::json_body::MAX_BODY_BYTES;

/// The token routes of SPEC §5: see the [module docs](crate::routes).
#[derive(Clone)]
pub struct TokenRoutes {
    manager: SessionManager,
    layer: SessionLayer<RevocationCache>,
    prefix: Arc<str>,
    attempts: Option<AttemptTracker>,
}

impl fmt::Debug for TokenRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRoutes")
            .field("prefix", &self.prefix)
            .field("attempts", &self.attempts.is_some())
            .finish_non_exhaustive()
    }
}

/// The response future of [`TokenRoutes`]. Boxed: token routes do store I/O, which costs far
/// more than the allocation.
pub type TokenRoutesFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl TokenRoutes {
    /// The token routes of `manager` under `/api/token`.
    pub fn new(manager: &SessionManager) -> Self {
        Self {
            manager: manager.clone(),
            layer: SessionLayer::from_manager(manager),
            prefix: "/api/token".into(),
            attempts: None,
        }
    }

    /// Counts forged and malformed refresh tokens (a MAC that does not verify, a token that does
    /// not parse) per client IP in `tracker`'s refresh bucket, on every route that takes one
    /// (`/refresh` and `/auto-refresh`, from the body or the cookie), and answers 429
    /// `rate_limited` on those routes to an IP that has sent too many, for the tracker's
    /// cool-down. A well-formed token of an ended session (`token_revoked`, `token_expired`,
    /// `session_expired`, `refresh_token_reused`) is not counted, nor is a failed login. Needs
    /// the client IP that [`ClientRateLimitLayer`](crate::ClientRateLimitLayer) puts into the request;
    /// without that layer in front, nothing is counted. The default is no tracking.
    #[must_use]
    pub fn attempt_tracker(mut self, tracker: AttemptTracker) -> Self {
        self.attempts = Some(tracker);
        self
    }

    /// Serves under another prefix. The default is `/api/token`. Remember to set the cookie
    /// path ([`SessionConfig::cookie_path`](crate::SessionConfig::cookie_path)) to match.
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
        Box::pin(async move { Ok(this.handle(req).await.map(Full::new)) })
    }
}

/// A route's answer before the body is wrapped.
type Answer = Response<Bytes>;

fn success<T: serde::Serialize>(message: &'static str, data: T) -> Answer {
    Success::new(message, data).into_http()
}

fn session_error(error: &SessionError) -> Answer {
    json_error(error.status(), error.code(), &error.to_string())
}

fn bad_request(message: &str) -> Answer {
    json_error(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
}

impl TokenRoutes {
    async fn handle<B>(&self, req: Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
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
            other => match other.strip_prefix("/session-stats/") {
                Some(user) if !user.is_empty() && !user.contains('/') => {
                    (Method::GET, Route::SessionStats(user.to_owned()))
                }
                _ => {
                    return json_error(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        "no such token route",
                    );
                }
            },
        };
        if method != allowed && !(allowed == Method::GET && method == Method::HEAD) {
            let mut res = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                &format!("use {allowed} on this route"),
            );
            res.headers_mut().insert(
                ALLOW,
                HeaderValue::from_str(allowed.as_str()).expect("a method name"),
            );
            return res;
        }
        let span = tracing::debug_span!("token_route", route = route.name());
        let _enter = span.enter();
        let (parts, body) = req.into_parts();
        match route {
            Route::Refresh => {
                let tracked = self.refresh_tracking(&parts.extensions);
                if let Err(res) = refresh_allowed(tracked).await {
                    return res;
                }
                match read_optional_json::<RefreshBody, B>(&parts.headers, body).await {
                    Ok(body) => {
                        let cookie_only = body.refresh_token_delivery == Some(Delivery::Cookie);
                        self.refresh(&parts.headers, body.refresh_token, cookie_only, tracked)
                            .await
                    }
                    Err(res) => res,
                }
            }
            Route::Validate => {
                match read_optional_json::<ValidateBody, B>(&parts.headers, body).await {
                    Ok(body) => self.validate(body).await,
                    Err(res) => res,
                }
            }
            Route::AutoRefresh => {
                let tracked = self.refresh_tracking(&parts.extensions);
                if let Err(res) = refresh_allowed(tracked).await {
                    return res;
                }
                match read_optional_json::<AutoRefreshBody, B>(&parts.headers, body).await {
                    Ok(body) => self.auto_refresh(&parts.headers, body, tracked).await,
                    Err(res) => res,
                }
            }
            Route::SessionStats(user) => self.session_stats(&parts.headers, &user).await,
            Route::Health => self.health().await,
            Route::Logout => self.logout(&parts.headers, false).await,
            Route::LogoutAll => self.logout(&parts.headers, true).await,
        }
    }

    /// The refresh token from the body, or else from the cookie under the CSRF rule.
    fn refresh_token_from<'a>(
        &self,
        headers: &'a HeaderMap,
        body_token: Option<&'a str>,
    ) -> Result<(&'a str, bool), Answer> {
        if let Some(token) = body_token.filter(|t| !t.is_empty()) {
            return Ok((token, false));
        }
        let config = self.manager.config();
        let Some(token) = crate::cookie::read(headers, config.cookies().name()) else {
            return Err(bad_request(
                "refreshToken is required, in the JSON body or in the refresh cookie",
            ));
        };
        let requested_with = headers.contains_key("x-requested-with");
        let trusted_origin = headers
            .get(ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|origin| {
                config
                    .cookies()
                    .allowed_origins()
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(origin))
            });
        if !(requested_with || trusted_origin) {
            return Err(json_error(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "refreshing with the cookie alone needs an X-Requested-With header or an allowed Origin",
            ));
        }
        Ok((token, true))
    }

    fn pair_response(
        &self,
        message: &'static str,
        pair: &TokenPair,
        from_cookie: bool,
        refreshed: Option<bool>,
    ) -> Answer {
        let data = TokenPairBody::from_pair(pair)
            .without_user_id()
            .hide_refresh_token(from_cookie)
            .refreshed(refreshed);
        let mut res = success(message, data);
        res.headers_mut().insert(
            SET_COOKIE,
            crate::cookie::refresh_cookie(&self.manager, pair),
        );
        res
    }

    async fn refresh(
        &self,
        headers: &HeaderMap,
        body_token: Option<String>,
        cookie_only: bool,
        tracked: Tracked<'_>,
    ) -> Answer {
        let (token, from_cookie) = match self.refresh_token_from(headers, body_token.as_deref()) {
            Ok(found) => found,
            Err(res) => return res,
        };
        match self.manager.refresh(token).await {
            Ok(pair) => self.pair_response(
                "Token refreshed successfully",
                &pair,
                from_cookie || cookie_only,
                None,
            ),
            Err(error) => {
                count_refresh_error(tracked, &error).await;
                self.refresh_failed(&error, from_cookie)
            }
        }
    }

    /// The tracker and the client IP, when failed refreshes are counted: the IP is the one
    /// [`ClientRateLimitLayer`](crate::ClientRateLimitLayer) resolved.
    fn refresh_tracking(&self, extensions: &http::Extensions) -> Tracked<'_> {
        let ip = extensions.get::<ClientIp>()?.0;
        Some((self.attempts.as_ref()?, ip))
    }

    fn refresh_failed(&self, error: &SessionError, from_cookie: bool) -> Answer {
        let mut res = session_error(error);
        // A cookie that can never work again is removed, so the browser stops sending it.
        if from_cookie && res.status() == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                SET_COOKIE,
                crate::cookie::clear_refresh_cookie(&self.manager),
            );
        }
        res
    }

    async fn validate(&self, body: ValidateBody) -> Answer {
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
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                &AuthError::Unavailable.to_string(),
            );
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

    async fn auto_refresh(
        &self,
        headers: &HeaderMap,
        body: AutoRefreshBody,
        tracked: Tracked<'_>,
    ) -> Answer {
        let Some(access) = body.access_token.filter(|t| !t.is_empty()) else {
            return bad_request("accessToken is required");
        };
        let (refresh, from_cookie) =
            match self.refresh_token_from(headers, body.refresh_token.as_deref()) {
                Ok(found) => found,
                Err(res) => return res,
            };
        // The refresh token stays out of the body when it came from the cookie, or when the
        // client asked for cookie-only delivery.
        let hide_refresh = from_cookie || body.refresh_token_delivery == Some(Delivery::Cookie);
        let codec = self.manager.codec();
        if let Ok(session) = self.manager.verify_access_token(&access).await {
            // Never echo a refresh token that is not this session's own. One that is well
            // formed (another session's) is refused but not counted: only forged or malformed
            // ones are.
            match self.manager.refresh_token_session(refresh) {
                Some(sid) if sid == session.session_id() => {}
                Some(_) => return session_error(&SessionError::InvalidToken),
                None => {
                    count_refresh_error(tracked, &SessionError::InvalidToken).await;
                    return session_error(&SessionError::InvalidToken);
                }
            }
            let now_ms = codec.clock().now_ms();
            let left = codec.time_left(&session, now_ms);
            let left_ms = left.millis();
            if !left.refresh_advised() {
                let data = TokenPairBody {
                    access_token: access,
                    refresh_token: (!hide_refresh).then(|| refresh.to_owned()),
                    expires_in: left_ms,
                    session_id: session.session_id(),
                    user_id: None,
                    refreshed: Some(false),
                };
                return success("Token is still fresh", data);
            }
        }
        match self.manager.refresh(refresh).await {
            Ok(pair) => self.pair_response(
                "Token refreshed successfully",
                &pair,
                hide_refresh,
                Some(true),
            ),
            Err(error) => {
                count_refresh_error(tracked, &error).await;
                self.refresh_failed(&error, from_cookie)
            }
        }
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<crate::Session, Answer> {
        self.layer
            .authenticate(headers)
            .await
            .map_err(|error| auth_error_response(self.manager.codec().realm(), error))
    }

    async fn session_stats(&self, headers: &HeaderMap, raw_user: &str) -> Answer {
        let caller = match self.authenticate(headers).await {
            Ok(session) => session,
            Err(res) => return res,
        };
        let Some(user) = percent_decode(raw_user) else {
            return bad_request("the user id in the path is not valid percent-encoded UTF-8");
        };
        if caller.user_id() != user && !caller.has_role("admin") {
            return json_error(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "you may only see your own sessions unless you have the admin role",
            );
        }
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

    async fn health(&self) -> Answer {
        match self.manager.health().await {
            Ok(()) => success(
                "ok",
                Health {
                    status: "ok",
                    store: self.manager.store_kind(),
                },
            ),
            Err(error) => session_error(&error),
        }
    }

    async fn logout(&self, headers: &HeaderMap, everywhere: bool) -> Answer {
        let caller = match self.authenticate(headers).await {
            Ok(session) => session,
            Err(res) => return res,
        };
        let result = if everywhere {
            self.manager
                .revoke_all(caller.user_id())
                .await
                .map(|revoked| success("Logged out of all sessions", Revoked { revoked }))
        } else {
            self.manager
                .revoke(caller.session_id())
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
}

/// The failed-refresh tracker and the client IP, when both are there.
type Tracked<'a> = Option<(&'a AttemptTracker, IpAddr)>;

/// 429 while the client is locked out of refreshing.
async fn refresh_allowed(tracked: Tracked<'_>) -> Result<(), Answer> {
    match tracked {
        Some((tracker, ip)) => tracker
            .check_refresh(ip)
            .await
            .map_err(|locked| locked.to_response()),
        None => Ok(()),
    }
}

/// Counts a refresh error against the client when the token was forged or malformed, and only
/// then: a well-formed token of an ended session (logout, expiry, reuse) is a stale client, not
/// a guess, and must not lock its address out.
async fn count_refresh_error(tracked: Tracked<'_>, error: &SessionError) {
    if let (Some((tracker, ip)), SessionError::InvalidToken) = (tracked, error) {
        tracker.record_refresh_failure(ip).await;
    }
}

enum Route {
    Refresh,
    Validate,
    AutoRefresh,
    SessionStats(String),
    Health,
    Logout,
    LogoutAll,
}

impl Route {
    fn name(&self) -> &'static str {
        match self {
            Route::Refresh => "refresh",
            Route::Validate => "validate",
            Route::AutoRefresh => "auto-refresh",
            Route::SessionStats(_) => "session-stats",
            Route::Health => "health",
            Route::Logout => "logout",
            Route::LogoutAll => "logout-all",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_token_delivery: Option<Delivery>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ValidateBody {
    #[serde(default)]
    access_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AutoRefreshBody {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_token_delivery: Option<Delivery>,
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

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use serde_json::{Value, json};

    use super::*;
    use crate::SessionConfig;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    async fn setup() -> (TokenRoutes, TokenPair) {
        let config = SessionConfig::new(SECRET).unwrap();
        let manager = SessionManager::new(config).unwrap();
        let pair = manager
            .create_session("alice", &["user".to_owned()])
            .await
            .unwrap();
        (TokenRoutes::new(&manager), pair)
    }

    /// `POST path` with `headers` and `body`: the status and the JSON body.
    async fn post(
        service: &TokenRoutes,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::post(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        let mut service = service.clone();
        let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service);
        let res = ready.await.unwrap().call(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_json_routes_refuse_other_content_types() {
        let (service, pair) = setup().await;
        let cookie = format!("tjs_refresh={}", pair.refresh_token);
        let json_bodies = [
            (
                "/api/token/refresh",
                json!({ "refreshToken": pair.refresh_token }).to_string(),
            ),
            (
                "/api/token/validate",
                json!({ "accessToken": pair.access_token }).to_string(),
            ),
            (
                "/api/token/auto-refresh",
                json!({ "accessToken": pair.access_token, "refreshToken": pair.refresh_token })
                    .to_string(),
            ),
        ];
        for (path, json) in &json_bodies {
            let form = format!("refreshToken={}", pair.refresh_token);
            let multipart = format!(
                "--x\r\ncontent-disposition: form-data; name=\"refreshToken\"\r\n\r\n{}\r\n--x--\r\n",
                pair.refresh_token
            );
            for (content_type, body) in [
                (Some("text/plain"), json.as_str()),
                (Some("text/plain;charset=UTF-8"), json.as_str()),
                (Some("application/x-www-form-urlencoded"), form.as_str()),
                (Some("multipart/form-data; boundary=x"), multipart.as_str()),
                (Some("application/jsonx"), json.as_str()),
                // A declared type that is not JSON is refused even with nothing to read.
                (Some("text/plain"), ""),
                // No type at all, with a body: not read as JSON either.
                (None, json.as_str()),
                (None, " "),
            ] {
                let mut headers = vec![("cookie", cookie.as_str()), ("x-requested-with", "x")];
                headers.extend(content_type.map(|t| ("content-type", t)));
                let (status, res_headers, body) = post(&service, path, &headers, body).await;
                assert_eq!(status, 415, "{path} {content_type:?}: {body}");
                assert_eq!(body["success"], false);
                assert_eq!(body["error"], "unsupported_media_type");
                assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
                assert_eq!(res_headers[http::header::ACCEPT], "application/json");
                assert!(res_headers.get(SET_COOKIE).is_none(), "{path}");
            }
        }
        // Nothing above spent the refresh token: JSON, with parameters, still works.
        let (path, json) = &json_bodies[0];
        let headers = [("content-type", "Application/JSON; charset=utf-8")];
        let (status, _, body) = post(&service, path, &headers, json).await;
        assert_eq!(status, 200, "{body}");
    }

    #[tokio::test]
    async fn a_cookie_only_refresh_needs_no_body_and_no_content_type() {
        let (service, pair) = setup().await;
        let cookie = format!("tjs_refresh={}", pair.refresh_token);
        let headers = [("cookie", cookie.as_str()), ("x-requested-with", "x")];
        let (status, res_headers, body) = post(&service, "/api/token/refresh", &headers, "").await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"]["accessToken"].is_string(), "{body}");
        assert!(body["data"].get("refreshToken").is_none(), "{body}");
        assert!(res_headers.contains_key(SET_COOKIE));
        // The CSRF rule still holds for such a request (checked before the token is used).
        let (status, _, body) = post(
            &service,
            "/api/token/refresh",
            &[("cookie", cookie.as_str())],
            "",
        )
        .await;
        assert_eq!(status, 403, "{body}");
        // And with no cookie it is an empty object: nothing to refresh.
        let (status, _, body) = post(&service, "/api/token/refresh", &[], "").await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_request");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("alice").as_deref(), Some("alice"));
        assert_eq!(percent_decode("a%40b.c").as_deref(), Some("a@b.c"));
        assert_eq!(percent_decode("%E2%9C%93").as_deref(), Some("✓"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}

//! The path of one login or re-authentication through [`LoginService`](super::LoginService): the
//! rate limit, the route and its precheck, the caller's token, the DPoP proof, the body, and
//! the answer.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{ALLOW, SET_COOKIE};
use http::{Extensions, HeaderValue, Method, Request, Response};
use http_body::Body;
use serde::Deserialize;

use super::steps::session_error;
use super::{LoginService, Route};
use crate::config::DpopMode;
use crate::cookie::Delivery;
use crate::deadline::excluding;
use crate::error::{DpopError, ErrorCode, json_error};
use crate::json_body::{bad_request, declares_json, read_json_object, unsupported_media_type};
use crate::layer::{token_route_proof, token_route_refusal};
use crate::login::{Authenticated, CredentialCheck, LoginCredentials, origin};
use crate::manager::{NewSession, SessionError, TokenPair};
use crate::rate_limit::{ClientIp, LoginAttempt};
use crate::response::{Success, TokenPairBody};
use crate::session::Session;
use crate::store::DeviceInfo;
use crate::telemetry::Escaped;
use crate::token::dpop::DpopProof;
use http::request::Parts;

/// What the login body says beside the credentials.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Delivered {
    #[serde(default)]
    refresh_token_delivery: Option<Delivery>,
}

/// The refresh token delivery and the credentials of a login body, read twice from the same
/// bytes, each refusing a member named twice.
fn login_body<C: LoginCredentials>(body: &[u8]) -> Result<(Delivery, C), Response<Bytes>> {
    let delivery = match serde_json::from_slice::<Delivered>(body) {
        Ok(delivered) => delivered.refresh_token_delivery.unwrap_or_default(),
        Err(error) => return Err(body_refused(&error)),
    };
    match serde_json::from_slice(body) {
        Ok(credentials) => Ok((delivery, credentials)),
        Err(error) => Err(body_refused(&error)),
    }
}

/// 400 for a login body that does not hold the credentials: which field is missing or named
/// twice, or that one has the wrong type. Never a value the client sent (serde's messages can
/// quote one).
pub(super) fn body_refused(error: &serde_json::Error) -> Response<Bytes> {
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
pub(super) fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ClientIp>().map(|ClientIp(ip)| *ip)
}

impl<K: CredentialCheck<C>, C: LoginCredentials> LoginService<K, C> {
    pub(super) async fn handle<B>(&self, req: Request<B>) -> Response<Bytes>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        self.manager
            .limits()
            .around(self.rate_limited, req, |req| self.login(req))
            .await
    }

    pub(super) async fn login<B>(&self, req: Request<B>) -> Response<Bytes>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let route = match self.precheck(&req) {
            Ok(route) => route,
            Err(res) => return res,
        };
        let (parts, body) = req.into_parts();
        let caller = match self.caller(route, &parts).await {
            Ok(caller) => caller,
            Err(res) => return res,
        };
        let ip = client_ip(&parts.extensions);
        let device = self.device(&parts, ip);
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
        let (delivery, credentials) = match login_body::<C>(&body) {
            Ok(read) => read,
            Err(res) => return res,
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

    /// A re-authentication's caller, from its access token, checked before its body is read or
    /// anything counted (the refusal when it has none usable); `None` for a login.
    async fn caller(
        &self,
        route: Route,
        parts: &Parts,
    ) -> Result<Option<Session>, Response<Bytes>> {
        match route {
            Route::Login => Ok(None),
            Route::Reauthenticate => match self
                .layer
                .authenticate_parts(
                    &parts.method,
                    (&parts.uri, &parts.extensions),
                    &parts.headers,
                )
                .await
            {
                Ok(session) => Ok(Some(session)),
                Err(error) => {
                    tracing::info!(%error, "re-authentication refused: no usable access token");
                    Err(self.layer.refusal(error))
                }
            },
        }
    }

    /// The device a login comes from: its user agent and, as the settings say, its address.
    fn device(&self, parts: &Parts, ip: Option<IpAddr>) -> DeviceInfo {
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .map(|ua| String::from_utf8_lossy(ua.as_bytes()));
        DeviceInfo::capture(
            user_agent.as_deref(),
            ip,
            self.manager.config().device().ip(),
        )
    }

    /// The login's DPoP proof, checked before anything is counted: the key the session is bound
    /// to, when DPoP is on. Without DPoP required, a login without a proof gets Bearer tokens.
    pub(super) async fn login_proof(
        &self,
        parts: &Parts,
    ) -> Result<Option<DpopProof>, Response<Bytes>> {
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
    pub(super) async fn reissue(
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
    pub(super) fn answer(
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
    pub(super) fn precheck<B>(&self, req: &Request<B>) -> Result<Route, Response<Bytes>> {
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
}

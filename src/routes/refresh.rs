//! The refresh routes: `refresh` and `auto-refresh`, and the failed-refresh tracking.

use super::*;
use crate::layer::{token_route_proof, token_route_refusal};
use crate::manager::RefreshRequest;
use crate::token::dpop::DpopProof;
use http::request::Parts;

impl TokenRoutes {
    /// The refresh token from the body, or else from the cookie under the CSRF rule.
    pub(super) fn refresh_token_from<'a>(
        &self,
        headers: &'a HeaderMap,
        body_token: Option<&'a str>,
    ) -> Result<(&'a str, bool), Answer> {
        if let Some(token) = body_token.filter(|t| !t.is_empty()) {
            return Ok((token, false));
        }
        match self.refresh_cookie(headers)? {
            Some(token) => Ok((token, true)),
            None => Err(bad_request(
                "refreshToken is required, in the JSON body or in the refresh cookie",
            )),
        }
    }

    /// The refresh cookie, if the request carries one, under the CSRF rule: a cookie is taken
    /// only with an `X-Requested-With` header or an `Origin` in the allowed origins, else 403.
    /// Every route that acts on the cookie alone (refresh, auto-refresh, logout) goes through
    /// here.
    pub(super) fn refresh_cookie<'a>(
        &self,
        headers: &'a HeaderMap,
    ) -> Result<Option<&'a str>, Answer> {
        let config = self.manager.config();
        let Some(token) = crate::cookie::read(headers, config.cookies().name()) else {
            return Ok(None);
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
                ErrorCode::Forbidden,
                "acting with the refresh cookie alone needs an X-Requested-With header or an allowed Origin",
            ));
        }
        Ok(Some(token))
    }

    pub(super) fn pair_response(
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

    pub(super) async fn refresh(
        &self,
        parts: &Parts,
        body_token: Option<String>,
        cookie_only: bool,
        tracked: Tracked<'_>,
    ) -> Answer {
        let (token, from_cookie) =
            match self.refresh_token_from(&parts.headers, body_token.as_deref()) {
                Ok(found) => found,
                Err(res) => return res,
            };
        let proof = match self.proof(parts).await {
            Ok(proof) => proof,
            Err(res) => return res,
        };
        match self
            .manager
            .refresh(refresh_request(token, proof.as_ref()))
            .await
        {
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
    /// [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) resolved.
    pub(super) fn refresh_tracking(&self, extensions: &http::Extensions) -> Tracked<'_> {
        let ip = extensions.get::<ClientIp>()?.0;
        Some((&self.attempts, ip))
    }

    /// The request's DPoP proof (RFC 9449 §5): a session bound to a key is refreshed only
    /// with one by that key.
    async fn proof(&self, parts: &Parts) -> Result<Option<DpopProof>, Answer> {
        let dpop = self.manager.dpop();
        let uri = crate::layer::original_uri(&parts.uri, &parts.extensions);
        token_route_proof(dpop, &parts.method, uri, &parts.headers)
            .await
            .map_err(|error| {
                tracing::info!(%error, "refresh refused: DPoP proof");
                token_route_refusal(dpop, &error).unwrap_or_else(|| session_error(&error))
            })
    }

    pub(super) fn refresh_failed(&self, error: &SessionError, from_cookie: bool) -> Answer {
        if let Some(res) = token_route_refusal(self.manager.dpop(), error) {
            return res;
        }
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

    pub(super) async fn auto_refresh(
        &self,
        parts: &Parts,
        body: AutoRefreshBody,
        tracked: Tracked<'_>,
    ) -> Answer {
        let headers = &parts.headers;
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
        if let Some(answer) = self
            .still_fresh(access, refresh, hide_refresh, tracked)
            .await
        {
            return answer;
        }
        let proof = match self.proof(parts).await {
            Ok(proof) => proof,
            Err(res) => return res,
        };
        match self
            .manager
            .refresh(refresh_request(refresh, proof.as_ref()))
            .await
        {
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

    /// The caller's own tokens back when its access token is valid and not yet near its
    /// expiry (no refresh needed); a refusal when the refresh token is another session's or
    /// forged; `None` when a refresh is due.
    async fn still_fresh(
        &self,
        access: String,
        refresh: &str,
        hide_refresh: bool,
        tracked: Tracked<'_>,
    ) -> Option<Answer> {
        if let Ok(session) = self.manager.verify_access_token(&access).await {
            // Never echo a refresh token that is not this session's own. One that is well
            // formed (another session's) is refused but not counted: only forged or malformed
            // ones are.
            match self.manager.refresh_token_session(refresh) {
                Some(sid) if sid == session.session_id() => {}
                Some(_) => return Some(session_error(&SessionError::InvalidToken)),
                None => {
                    count_refresh_error(tracked, &SessionError::InvalidToken).await;
                    return Some(session_error(&SessionError::InvalidToken));
                }
            }
            let codec = self.manager.codec();
            let left = codec.time_left(&session, codec.clock().now_ms());
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
                return Some(success("Token is still fresh", data));
            }
        }
        None
    }
}

/// A refresh with the request's proof, when it carried one.
fn refresh_request<'a>(token: &'a str, proof: Option<&'a DpopProof>) -> RefreshRequest<'a> {
    match proof {
        Some(proof) => RefreshRequest::new(token).dpop_proof(proof),
        None => RefreshRequest::new(token),
    }
}

/// The failed-refresh tracker and the client IP, when both are there.
pub(super) type Tracked<'a> = Option<(&'a AttemptTracker, IpAddr)>;

/// 429 while the client is locked out of refreshing.
pub(super) async fn refresh_allowed(tracked: Tracked<'_>) -> Result<(), Answer> {
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
pub(super) async fn count_refresh_error(tracked: Tracked<'_>, error: &SessionError) {
    if let (Some((tracker, ip)), SessionError::InvalidToken) = (tracked, error) {
        tracker.record_refresh_failure(ip).await;
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefreshBody {
    #[serde(default)]
    pub(super) refresh_token: Option<String>,
    #[serde(default)]
    pub(super) refresh_token_delivery: Option<Delivery>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct AutoRefreshBody {
    #[serde(default)]
    pub(super) access_token: Option<String>,
    #[serde(default)]
    pub(super) refresh_token: Option<String>,
    #[serde(default)]
    pub(super) refresh_token_delivery: Option<Delivery>,
}

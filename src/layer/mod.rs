//! [`SessionLayer`]: verifies bearer access tokens in front of any tower service.
//!
//! For each request the layer
//! 1. reads the token from the one `Authorization: Bearer` header (scheme case-insensitive; a
//!    token in the query string is never looked at; two `Authorization` headers are refused);
//! 2. verifies it with the [`TokenCodec`](crate::token::TokenCodec) (signature, `alg`, `kid`, `typ`,
//!    claims, time with leeway), or finds it in the codec's cache of verified tokens (then only
//!    the time window is checked again; see
//!    [`TokenCacheSettings`](crate::config::TokenCacheSettings));
//! 3. for a token bound to a DPoP key (its `cnf.jkt`, see
//!    [`DpopConfig`](crate::config::DpopConfig)): requires the `DPoP` scheme and checks the
//!    request's `DPoP` proof (RFC 9449 §4.3: signature by the bound key, method, URL, time,
//!    `ath`, never seen before); a bound token sent as `Bearer` is refused, and so is an
//!    unbound one sent as `DPoP`;
//! 4. asks the [`RevocationCheck`] whether the session is still live;
//! 5. on success puts the [`Session`](crate::Session) into the request extensions and calls the
//!    inner service; when the token has no more than the refresh threshold left, the response
//!    gets `X-Token-Refresh: true` and `X-Token-Expires-In: <seconds>`;
//! 6. on failure answers through the [`ErrorResponder`] (default: 401 with an RFC 6750
//!    `WWW-Authenticate` challenge and the JSON error body) without calling the inner service.
//!
//! A refusal is an `Ok` response, never a service error, so the connection stays up.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_jwt_session::{Session, SessionLayer, session::SessionId, token::TokenCodec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = tower_jwt_session::config::TokenSettings::new("0123456789abcdef0123456789abcdef")?;
//! let codec = TokenCodec::new(&tokens, &Default::default())?;
//! let token = codec.issue("alice", SessionId::random(), &[]).token;
//!
//! let service = ServiceBuilder::new()
//!     .layer(SessionLayer::new(codec))
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         let user = req.extensions().get::<Session>().unwrap().user_id().to_owned();
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(user))))
//!     }));
//!
//! let allowed = Request::builder()
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Full::default())?;
//! assert_eq!(service.clone().oneshot(allowed).await?.status(), StatusCode::OK);
//!
//! let refused = Request::builder().body(Full::default())?;
//! assert_eq!(service.oneshot(refused).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

mod future;
#[allow(clippy::module_inception)]
mod layer;
mod proof;
mod rate_limit;
mod responder;
mod service;

pub use rate_limit::{ClientRateLimit, ClientRateLimitLayer, RateLimitCheck, RateLimitWait};

pub use future::RevocationWait;
pub use layer::SessionLayer;
pub(crate) use proof::{original_uri, renew_nonce, token_route_proof, token_route_refusal};
// The role check, the revocation check and the machinery every layer of the crate is made of
// (a `Check` deciding each request, the `Guarded` service running it): an extension point, to
// write a check of your own.
pub use crate::guard::{Check, Guarded, ResponseBody, ResponseFuture, Stamp, Verdict};
pub use crate::require_recent_auth::{
    RecentAuthCheck, RequireRecentAuth, RequireRecentAuthLayer, require_recent_auth,
};
pub use crate::require_role::{RequireRole, RequireRoleLayer, RoleCheck, require_role};
pub use crate::revocation::{Checked, NoRevocation, RevocationCheck, SessionStatus};
pub use responder::{ErrorResponder, JsonResponder};
pub use service::{RefreshHint, SessionCheck, SessionService, SessionStamp};

use http::HeaderName;
use http::header::{AUTHORIZATION, HeaderMap};

/// `X-Token-Refresh: true` is set on responses whose access token should be refreshed.
pub const X_TOKEN_REFRESH: HeaderName = HeaderName::from_static("x-token-refresh");
/// `X-Token-Expires-In`: whole seconds the access token has left, set with `X-Token-Refresh`.
pub const X_TOKEN_EXPIRES_IN: HeaderName = HeaderName::from_static("x-token-expires-in");

use crate::error::AuthError;

/// The scheme of the `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// RFC 6750.
    Bearer,
    /// RFC 9449 §7.1: a token bound to a key, with a `DPoP` proof.
    Dpop,
}

/// The access token of the one `Authorization` header (RFC 6750 §2.1, RFC 9449 §7.1), as
/// bytes, with its scheme.
///
/// Only the scheme is checked here, in a few instructions: the token's own characters are
/// checked by the base64url decoding of the codec, which refuses spaces and anything else
/// outside the alphabet, so scanning a 400-byte header twice more here would only cost time.
#[inline]
pub(crate) fn access_token(headers: &HeaderMap) -> Result<(Scheme, &[u8]), AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::MissingToken)?;
    if values.next().is_some() {
        return Err(AuthError::DuplicateAuthorization);
    }
    let bytes = value.as_bytes().trim_ascii();
    let scheme_end = bytes
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(bytes.len());
    let scheme = &bytes[..scheme_end];
    let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case(b"dpop") {
        Scheme::Dpop
    } else {
        return Err(AuthError::MissingToken);
    };
    let token = bytes[scheme_end..].trim_ascii_start();
    if token.is_empty() {
        return Err(AuthError::Malformed("the credentials are empty"));
    }
    Ok((scheme, token))
}

#[cfg(test)]
mod tests;

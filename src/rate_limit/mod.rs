//! Abuse protection: [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) (requests per client IP) and [`AttemptTracker`]
//! (failed logins per user+client and per client, a slowing delay per user, failed refreshes
//! per client).
//!
//! # Rate limiting
//!
//! [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) counts requests per client IP in a fixed window ([the configuration](crate::routes#configuration)
//! `RATE_LIMIT_WINDOW_MS` / `RATE_LIMIT_MAX_REQUESTS`, 15 minutes / 100 by default) and
//!
//! - lets a request within the limit through, adding `RateLimit-Limit`,
//!   `RateLimit-Remaining` and `RateLimit-Reset` (whole seconds until the window resets) to its
//!   response;
//! - answers one over the limit itself, without calling the inner service: 429, `Retry-After`,
//!   the same `RateLimit-*` headers and `{"success":false,"message":…,"error":"rate_limited"}`.
//!   The [`RateDecision`] is in the response extensions.
//!
//! **Who the client is.** The peer address of the connection: axum's
//! `ConnectInfo<SocketAddr>` (serve with `into_make_service_with_connect_info::<SocketAddr>()`)
//! or a [`PeerAddr`] the server inserts per connection. `X-Forwarded-For` counts only when the
//! peer is one of the [trusted proxies](RateLimitConfig::trusted_proxies), and then the client is
//! the right-most entry that is not a trusted proxy, so a client cannot pick its own key by
//! sending the header. A request without a peer address is a wiring mistake: it is answered 500
//! and logged at `error`, rather than every such request sharing one budget (or none). IPv6
//! clients are counted per /64 ([`RateLimitConfig::ipv6_prefix_len`]). The resolved address is
//! put into the request extensions as [`ClientIp`] for the handlers behind the layer.
//!
//! **Where counts live.** A [`RateLimitBackend`]: [`MemoryBackend`] (moka, bounded, entries
//! expire with their window) by default, or a shared store: Redis (`RedisRateLimitBackend`,
//! feature `redis`) or PostgreSQL (`PostgresRateLimitBackend`, feature `postgres`), on the
//! session store's connection. An in-process backend answers
//! through [`RateLimitBackend::try_hit`] without a future, so the hot path allocates nothing;
//! only a remote backend's answer is boxed and awaited.
//!
//! **Health is exempt.** A request whose path is one of
//! [`RateLimitConfig::exempt_paths`] goes straight through: not counted, never refused, no
//! `RateLimit-*` headers. The default list holds the token routes' health check,
//! `/api/token/health` (a load balancer probing every few seconds must never get a
//! 429 and take the instance out of rotation). The exemption lives in the layer, so every app
//! that wraps its token routes gets it without routing health around the limiter; set the list
//! when the token routes are served under another prefix, or when the layer sits inside the
//! nest (see [`RateLimitConfig::exempt_paths`]).
//!
//! **Failure.** Rate limiting fails open: when the backend errors, the request goes through
//! (without `RateLimit-*` headers) and the error is logged at `warn`. A limiter outage should
//! not become an outage of login and refresh; the [`AttemptTracker`] and the sessions' own
//! rules still hold.
//!
//! Apply the layer to the routes that need it (`/api/auth/*` and `/api/token/*`), and
//! use one layer, or its clones, wherever one budget should be shared:
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::{Router, routing::{get, post}};
//! use tower_jwt_session::{
//!     SessionConfig, SessionManager, layer::ClientRateLimitLayer,
//!     rate_limit::{ClientIp, RateLimitConfig}, routes::TokenRoutes,
//! };
//!
//! async fn login(ClientIp(ip): ClientIp) -> String {
//!     format!("hello {ip}")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SessionConfig::new("0123456789abcdef0123456789abcdef")?; // from_env()
//! let manager = SessionManager::new(config.clone())?;
//! let limit = ClientRateLimitLayer::new(
//!     RateLimitConfig::new().trusted_proxies(["10.0.0.0/8".parse()?])?,
//! );
//! let limited = Router::new()
//!     .route("/api/auth/login", post(login))
//!     .nest_service("/api/token", TokenRoutes::new(&manager))
//!     .layer(limit);
//! let app = Router::new()
//!     .route("/", get(|| async { "not limited" }))
//!     .merge(limited);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>());
//! # drop(server);
//! # Ok(())
//! # }
//! ```
//!
//! Any tower service works the same; without axum, insert a [`PeerAddr`]:
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use tower::{Layer, ServiceExt, service_fn};
//! use tower_jwt_session::config::ManualClock;
//! use tower_jwt_session::{layer::ClientRateLimitLayer, rate_limit::{PeerAddr, RateLimitConfig}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(1_800_000_000_000);
//! let layer = ClientRateLimitLayer::new(
//!     RateLimitConfig::new()
//!         .window(Duration::from_secs(60))
//!         .max_requests(1)
//!         .clock(Arc::new(clock.clone())),
//! );
//! let service = layer.layer(service_fn(|_req: Request<String>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("hi")))
//! }));
//! let request = || {
//!     let mut req = Request::new(String::new());
//!     req.extensions_mut().insert(PeerAddr("203.0.113.7:40000".parse().unwrap()));
//!     req
//! };
//!
//! let ok = service.clone().oneshot(request()).await?;
//! assert_eq!(ok.headers()["ratelimit-remaining"], "0");
//! let refused = service.clone().oneshot(request()).await?;
//! assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(refused.headers()["retry-after"], "60");
//!
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(service.oneshot(request()).await?.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
//!
//! # Failed attempts
//!
//! [`AttemptTracker`] is called by handlers (login, refresh); its docs say what it counts and
//! what that protects against.

mod attempts;
mod backend;
mod client_ip;
mod limits;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

pub use crate::config::{AttemptConfig, Cidr, ParseCidrError, RateLimitConfig};
pub use attempts::{
    AttemptBackend, AttemptPolicy, AttemptState, AttemptTracker, LockedOut, LoginAttempt,
    LoginRefused, MemoryAttemptBackend,
};
pub use backend::{BackendError, RateDecision, RateLimitBackend};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use client_ip::MissingRateLimitLayer;
pub use client_ip::{ClientIp, PeerAddr};
pub(crate) use client_ip::{IpKey, peer_ip, resolve};
pub use limits::{Limits, RateLimiter};
pub use memory::MemoryBackend;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresAttemptBackend, PostgresRateLimitBackend};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisAttemptBackend, RedisRateLimitBackend};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, header};

use crate::error::{ErrorCode, json_error};

/// Marks a request a [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) has counted
/// (or exempted), so the routes behind it count it no second time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted;

/// `RateLimit-Limit`: requests allowed per window.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left in the current window.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: whole seconds until the current window resets.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

#[inline]
pub(crate) fn set_headers(headers: &mut HeaderMap, decision: &RateDecision) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(
        RATELIMIT_RESET,
        HeaderValue::from(decision.reset_after_secs()),
    );
}

/// The 429 answer for a request over the limit.
pub(crate) fn too_many_requests(decision: &RateDecision) -> Response<Bytes> {
    crate::telemetry::rate_limited("ip");
    let retry_after = decision.reset_after_secs().max(1);
    let mut response = json_error(
        ErrorCode::RateLimited,
        &format!("too many requests; try again in {retry_after} seconds"),
    );
    set_headers(response.headers_mut(), decision);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response.extensions_mut().insert(*decision);
    response
}

/// The 500 answer for a request without a peer address.
pub(crate) fn missing_peer_response() -> Response<Bytes> {
    json_error(
        ErrorCode::Internal,
        "rate limiting is misconfigured: the request carries no peer address (serve axum with into_make_service_with_connect_info::<SocketAddr>(), or insert tower_jwt_session::rate_limit::PeerAddr into each request)",
    )
}

#[cfg(test)]
mod tests;

//! JWT session management for axum and hyper, as drop-in Tower middleware.
//!
//! - [`SessionLayer`] protects any tower service: it verifies the bearer access token
//!   (RFC 6750, RFC 8725, RFC 9068), refuses revoked sessions through an in-process
//!   [`RevocationCache`], puts the verified [`Session`] into the request extensions, and adds
//!   `X-Token-Refresh` hints when the token is close to expiry. A valid token with a cache hit
//!   costs less than a bare `jsonwebtoken::decode` of the same token, and nothing is boxed.
//! - [`TokenRoutes`] serves the token routes: refresh with rotation and reuse detection,
//!   validate, auto-refresh, session stats, logout, logout-all, health.
//! - [`SessionManager`] holds the session rules: 2 h access tokens, 30 d refresh tokens, a 90 d
//!   absolute lifetime, 10 sessions per user, all configurable, on a [`store::MemoryStore`] by
//!   default. Refresh tokens are derived from a server key and never stored.
//! - [`SessionConfig::from_env`] reads the environment variables of the Node guide this crate
//!   replaces (`JWT_SECRET`, `JWT_ACCESS_TOKEN_EXPIRY=2h`, …).
//!
//! # axum
//!
//! ```
//! use axum::{Json, Router, routing::{get, post}};
//! use tower_jwt_session::{Session, SessionConfig, SessionLayer, SessionManager, TokenRoutes};
//!
//! async fn me(session: Session) -> String {
//!     format!("hello {}", session.user_id())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let config = SessionConfig::new("0123456789abcdef0123456789abcdef")?;
//! // In production: SessionConfig::from_env()?
//! let manager = SessionManager::new(config)?;
//! let app: Router = Router::new()
//!     .route("/api/me", get(me))
//!     .route_layer(SessionLayer::from_manager(&manager))   // routes above need a token
//!     .nest_service("/api/token", TokenRoutes::new(&manager)); // refresh, logout, …
//! // Your login handler calls `manager.create_session(user_id, &roles).await?`
//! // and returns the `TokenPair` (see examples/server.rs).
//! # Ok(())
//! # }
//! ```
//!
//! # hyper, or any tower service
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{Layer, ServiceExt, service_fn};
//! use tower_jwt_session::{Session, SessionConfig, SessionLayer, SessionManager};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
//! let service = SessionLayer::from_manager(&manager).layer(service_fn(|req: Request<Full<Bytes>>| async move {
//!     let session = req.extensions().get::<Session>().expect("the layer put it there");
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(session.user_id().to_owned()))))
//! }));
//!
//! let pair = manager.create_session("alice", tower_jwt_session::NO_ROLES).await?;
//! let request = Request::builder()
//!     .header("authorization", format!("Bearer {}", pair.access_token))
//!     .body(Full::default())?;
//! assert_eq!(service.oneshot(request).await?.status(), 200);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/hyper.rs` serves this from a bare hyper 1 server.
//!
//! # Security choices
//!
//! - Tokens carry `typ: at+jwt` and a `kid`; every key is bound to one algorithm and the
//!   `alg` allow-list defaults to HS256 alone, so `alg: none` and algorithm confusion are refused.
//!   `jku`, `jwk`, `x5u`, `x5c` and `crit` headers are refused, never followed.
//! - The token is read only from a single `Authorization: Bearer` header, never the query string.
//! - Refresh tokens are `tjs1.<session>.<generation>.<expiry>.<HMAC>`: derived from a key that is
//!   itself derived from `JWT_SECRET`, checked in constant time, never stored anywhere. Presenting
//!   the immediate parent within `JWT_REFRESH_REUSE_INTERVAL` returns the same successor (tabs
//!   racing, lost responses); anything older revokes the whole session.
//! - A revocation made in this process is refused on the very next request; one made by another
//!   instance sharing the store within [`SessionConfig::revocation_cache_ttl`] (1 s).
//! - When the store cannot be reached, login and refresh answer 503 and protected routes fail
//!   closed on a cache miss, unless [`SessionConfig::fail_open`] is set.
//! - Secrets never appear in `Debug` output or logs.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | `Session` as an axum extractor (`FromRequestParts`, also `Option<Session>`) |
//! | `metrics` | yes | counters and histograms through the `metrics` facade: see [`telemetry`] |
//! | `redis` | no | [`store::RedisStore`]: sessions in Redis or Redis Cluster for several instances |
//! | `full` | no | every feature |
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod config;
pub mod cookie;
mod error;
mod escape;
mod json_body;
pub mod guard;
pub mod layer;
pub mod login;
mod manager;
pub mod response;
mod revocation;
pub mod routes;
mod session;
pub mod store;
pub mod telemetry;
mod token;

pub use manager::RevocationCache;
pub use config::Algorithm;
pub use config::{ConfigError, SameSite, SessionConfig, SessionLimitPolicy};
pub use error::{AuthError, ErrorCode};
pub use layer::{ErrorResponder, JsonResponder, SessionLayer, X_TOKEN_EXPIRES_IN, X_TOKEN_REFRESH};
#[doc(inline)]
pub use login::{Authenticated, LoginService};
pub use manager::{
    MAX_ROLES, MAX_USER_ID_LEN, NO_ROLES, SessionError, SessionManager, SessionManagerBuilder,
    StartupError, TokenPair,
};
pub use revocation::{Checked, NoRevocation, RevocationCheck, SessionStatus};
pub use routes::{MAX_BODY_BYTES, TokenRoutes};
pub use session::{ParseSessionIdError, Roles, Session, SessionId};
pub use token::{IssuedToken, MAX_TOKEN_LEN, TokenCodec};

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
mod extract;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::MissingSessionLayer;

pub mod rate_limit;
pub mod require_role;
#[doc(inline)]
pub use rate_limit::{
    AttemptConfig, AttemptTracker, Cidr, ClientIp, LockedOut, PeerAddr, RateLimitConfig,
    ClientRateLimitLayer,
};
#[doc(inline)]
pub use require_role::{RequireRoleLayer, require_role};

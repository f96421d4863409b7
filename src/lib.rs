//! JWT session management for axum and hyper, as drop-in Tower middleware: verified access
//! tokens, refresh-token rotation with reuse detection, revocation at once, per-user session
//! limits, a devices list, and every protection a login needs, on by default.
//!
//! # Quick start (axum)
//!
//! ```no_run
//! use std::net::SocketAddr;
//!
//! use axum::{Router, routing::get};
//! use tower_jwt_session::login::{Authenticated, CheckError, Credentials};
//! use tower_jwt_session::{Session, SessionLayer, SessionManager, require_role, routes};
//!
//! async fn me(session: Session) -> String {
//!     format!("hello {}", session.user_id())
//! }
//!
//! // Your password check: Some(user) for the right password, None otherwise.
//! async fn check(c: Credentials) -> Result<Option<Authenticated>, CheckError> {
//!     Ok((c.password == "alice-password").then(|| Authenticated::new("alice", ["user"])))
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // JWT_SECRET, JWT_ACCESS_TOKEN_EXPIRY, …; REDIS_URL or DATABASE_URL picks a shared store.
//! let sessions = SessionManager::from_env().await?;
//!
//! let app: Router = Router::new()
//!     .route("/api/admin", get(|| async { "admin only" }).route_layer(require_role("admin")))
//!     .route("/api/me", get(me))
//!     .route_layer(SessionLayer::from_manager(&sessions)) // every route above needs a token
//!     .merge(routes::router(&sessions, check)); // login, refresh, logout, devices, health, …
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // The client's address is what the rate limit and the login lock-out count by.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`routes::router`] serves the login and token routes; three pieces, built on one
//! [`SessionManager`], do the work:
//!
//! - [`SessionLayer`] protects routes: it verifies the access token (RFC 6750, RFC 8725,
//!   RFC 9068), refuses ended sessions, puts the verified [`Session`] into the request (an axum
//!   extractor), and adds `X-Token-Refresh` hints when the token is close to expiry. A token
//!   seen before costs about a twentieth of a bare `jsonwebtoken::decode`.
//! - [`TokenRoutes`] serves `/api/token/…`: refresh with rotation and reuse detection, validate,
//!   auto-refresh, the devices list (`GET sessions`, `DELETE sessions/{id}`, `POST
//!   logout-others`), logout, logout-all, health, and the JWKS of asymmetric keys.
//! - [`LoginService`] serves `POST /api/auth/login` around your credential check, in the shape
//!   your users log in with ([`login::LoginCredentials`]).
//!
//! The whole wire protocol (routes, bodies, error codes, headers, the refresh cookie) is in
//! [`routes`](crate::routes#the-protocol).
//!
//! # One way to start, every protection on
//!
//! [`SessionManager::from_env`] is
//! [`SessionManager::builder`]`(`[`SessionConfig::from_env`]`()?).`[`connect`](manager::SessionManagerBuilder::connect)`()`:
//! the environment names the store (memory, `REDIS_URL`, `DATABASE_URL`, or `SESSION_STORE`),
//! the builder takes what only the app knows (a [refresh hook](manager::RefreshHook), the app's
//! own [PostgreSQL pool](manager::SessionManagerBuilder::postgres_pool)), and `connect` opens
//! and claims the store and logs once where everything lives. On that same store:
//!
//! - every request to the login and token routes counts against a per-client rate limit
//!   (`RATE_LIMIT_*`; `X-Forwarded-For` only from `TRUSTED_PROXIES`);
//! - every login attempt against the lock-out (per user and client, per client), reserved
//!   before the password is checked; every forged refresh token against the client's refresh
//!   bucket;
//! - all of it shared by every instance when the sessions are in Redis or PostgreSQL.
//!
//! A protection is never off without a word: served without the client's address, the routes
//! cannot count, which they say once at `warn` with the fix and in `GET /api/token/health`
//! (`degraded`, `client_address_missing`); settings that would switch a protection off (a
//! trusted-proxy list covering everyone, a reuse interval of days) are refused at startup.
//!
//! # Custom claims and the refresh hook
//!
//! An app puts its own data into access tokens (a tenant, a plan) so handlers and other
//! services act on it without a database round trip:
//!
//! - **At login** the credential check answers
//!   [`Authenticated::with_claims`](login::Authenticated::with_claims). Claims are any value that
//!   serializes to a JSON object ([`session::CustomClaims`]); [reserved
//!   names](session::RESERVED_CLAIMS) and claims that would make the token longer than
//!   [`token::MAX_TOKEN_LEN`] are the app's bug: [`SessionError::InvalidClaims`], 500
//!   `internal_error`, logged; no session is started.
//! - **On every refresh that rotates** the [refresh hook](manager::RefreshHook) answers fresh
//!   roles and claims, stored with the rotation in the same atomic step, or
//!   [`Refreshed::user_gone`](manager::Refreshed::user_gone) for a user deleted or disabled:
//!   every session of the user ends and the refresh answers 401. Its failing or timing out is
//!   503 and the refresh token stays usable.
//! - **Reading them:** [`Session::claims`], or the axum extractor
//!   [`extract::Claims<T>`](extract::Claims), from what verification kept (nothing is decoded
//!   again).
//!
//! # Modules
//!
//! | module | what is in it |
//! |---|---|
//! | [`config`] | [`SessionConfig`] and its parts (token keys, session rules, cookies, Redis, PostgreSQL, rate limit, lock-out), the environment variables |
//! | [`manager`] | [`SessionManager`]: create, refresh, revoke and list sessions; [`TokenPair`] |
//! | [`session`] | [`Session`], what a verified token says: user, roles, session id, expiry |
//! | [`layer`] | [`SessionLayer`] and how it answers refusals ([`layer::ErrorResponder`]); [`layer::ClientRateLimitLayer`] for routes of your own |
//! | [`routes`], [`login`], [`cookie`] | the token routes, the login route, the refresh cookie |
//! | [`mod@require_role`] | the role check ([`require_role()`]) |
//! | [`rate_limit`] | per-client rate limits and the login lock-out, in memory, Redis or PostgreSQL |
//! | [`store`] | the [`store::SessionStore`] trait, [`store::MemoryStore`], `RedisStore` (feature `redis`), `PostgresStore` (feature `postgres`) |
//! | [`token`] | the token codec: access tokens and the refresh-token format |
//! | [`response`], [`error`] | typed JSON bodies, error codes |
//! | [`guard`] | the middleware machinery the layers share, to write your own check |
//! | [`revocation`], [`telemetry`], [`clock`] | revocation checks, metrics, the time source (for tests) |
//!
//! `docs/architecture.md` maps how they depend on each other and a request's path through them.
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
//! - When the store cannot be reached, login and refresh answer 503 within one store timeout
//!   and protected routes fail closed on a cache miss, unless [`SessionConfig::fail_open`] is
//!   set. A refresh answered 503 never takes effect later: a store that stalls cannot turn a
//!   client's retry into "reuse detected".
//! - Secrets never appear in `Debug` output or logs.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | `Session` as an axum extractor, `IntoResponse` for the crate's errors and bodies |
//! | `metrics` | yes | counters and histograms through the `metrics` facade: see [`telemetry`] |
//! | `redis` | no | `store::RedisStore`: sessions, rate limits and lock-outs in Redis or Redis Cluster, for several instances |
//! | `postgres` | no | `store::PostgresStore`: the same in PostgreSQL (sqlx; the app's own pool if it likes), without TLS: the app picks sqlx's TLS |
//! | `postgres-rustls` | no | `postgres` with TLS by rustls and the system's root certificates (`sslmode=require`) |
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
mod deadline;
pub mod error;
mod escape;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
pub mod guard;
mod json_body;
pub mod layer;
pub mod login;
pub mod manager;
pub mod rate_limit;
pub mod require_role;
pub mod response;
pub mod revocation;
pub mod routes;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod token;

// Every Rust snippet of the README compiles.
#[cfg(all(doctest, feature = "axum", feature = "postgres"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The names an application types; everything else by its module path.
pub use config::{ConfigError, SessionConfig};
pub use layer::SessionLayer;
pub use login::LoginService;
pub use manager::{NO_ROLES, SessionError, SessionManager, StartupError, TokenPair};
pub use require_role::require_role;
pub use routes::TokenRoutes;
pub use session::Session;

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
//! use tower_jwt_session::{Session, SessionLayer, SessionManager, routes, layer::require_role};
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
//! - [`TokenRoutes`](routes::TokenRoutes) serves `/api/token/…`: refresh with rotation and reuse detection, validate,
//!   auto-refresh, the devices list (`GET sessions`, `DELETE sessions/{id}`, `POST
//!   logout-others`), logout, logout-all, health, and the JWKS of asymmetric keys.
//! - [`LoginService`](login::LoginService) serves `POST /api/auth/login` around your credential check, in the shape
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
//!   [`session::Claims<T>`](session::Claims), from what verification kept (nothing is decoded
//!   again).
//!
//! # Modules
//!
//! The crate root holds what every app types: [`SessionManager`], [`SessionConfig`],
//! [`SessionLayer`], [`Session`], [`SessionError`]. Everything else by its module:
//!
//! | module | what is in it |
//! |---|---|
//! | [`config`] | [`SessionConfig`] and the settings of each component (token keys, session rules, cookies, Redis, PostgreSQL, rate limit, lock-out), the environment variables, [`config::ConfigError`]; the time source ([`config::Clock`], [`config::ManualClock`] for tests) |
//! | [`manager`] | [`SessionManager`], its builder and hooks: create, refresh, revoke and list sessions; [`manager::TokenPair`] |
//! | [`session`] | [`Session`], what a verified token says, and its custom claims; the axum extractors |
//! | [`layer`] | [`SessionLayer`], [`layer::require_role`], [`layer::require_recent_auth`] (step-up, RFC 9470), [`layer::ClientRateLimitLayer`] for routes of your own, how refusals are answered ([`layer::ErrorResponder`]), and the machinery to write a check of your own ([`layer::Check`]) |
//! | [`routes`], [`login`] | the token routes ([`routes::TokenRoutes`], [`routes::router`]) with the protocol reference, the login route ([`login::LoginService`]) with its re-authentication (step-up) route, and the credential check |
//! | [`rate_limit`] | the per-client rate limit and the login lock-out, in memory, Redis or PostgreSQL |
//! | [`store`] | the [`store::SessionStore`] trait, [`store::MemoryStore`], `RedisStore` (feature `redis`), `PostgresStore` (feature `postgres`), the store suite (feature `test-util`) |
//! | [`token`] | the token codec: access tokens, the refresh-token format, DPoP proofs |
//! | [`response`] | typed JSON bodies, [`response::ErrorCode`], [`response::AuthError`] |
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
//!   instance sharing the store within [`RevocationCacheSettings::with_ttl`](config::RevocationCacheSettings::with_ttl) (1 s).
//! - When the store cannot be reached, login and refresh answer 503 within one store timeout
//!   and protected routes fail closed on a cache miss, unless [`RevocationCacheSettings::with_fail_open`](config::RevocationCacheSettings::with_fail_open) is
//!   set. A refresh answered 503 never takes effect later: a store that stalls cannot turn a
//!   client's retry into "reuse detected".
//! - Secrets never appear in `Debug` output or logs.
//!
//! # Metrics
//!
//! Metrics through the `metrics` facade (feature `metrics`); without the feature every call here
//! compiles to nothing.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `tjs_token_validations_total` | counter | `outcome`: `valid`, or the refusal's error code |
//! | `tjs_refresh_total` | counter | `outcome`: `success`, or the error code |
//! | `tjs_sessions_created_total` | counter | |
//! | `tjs_sessions_revoked_total` | counter | `reason`: `logout`, `evicted`, `reuse` |
//! | `tjs_refresh_reuse_detected_total` | counter | `kind`: `retired_after_interval`, `ancestor` |
//! | `tjs_logins_denied_total` | counter | (the `deny` session-limit policy) |
//! | `tjs_rate_limited_total` | counter | `scope`: `ip` (rate limit), `lockout` (failed attempts) |
//! | `tjs_store_operation_seconds` | histogram | `op`, `store` |
//! | `tjs_records_unreadable_total` | counter | records that failed their integrity check: a seal that does not open, clear fields that disagree with it, or no seal where one is required (each treated as no session) |
//! | `tjs_sessions_unknown_total` | counter | sessions refused as `token_revoked` because the store did not know them as issued, `path`: `refresh`, `access`; `cause`: `no_record` (ended where this instance did not see it end, or lost by the store: after a failover or an eviction it rises), `rotation_lost` (the store has the session at an older generation than this server issued: a failover lost a rotation) |
//! | `tjs_store_inconsistent_total` | counter | logout-all calls that found the store's index of a user missing a live session (an evicting or restored Redis) |
//! | `tjs_verified_cache_lookups_total` | counter | `outcome`: `hit` (a token verified before, served from memory), `miss` (verified in full) |
//! | `tjs_verified_cache_evictions_total` | counter | `cause`: `size` (pushed out by the capacity), `expired` (its token's `exp` plus leeway passed) |
//! | `tjs_sessions_held` | gauge | records the memory store holds: live sessions, and those expired within the last access-token lifetime (ended ones are deleted at once) |
//!
//! Counter handles for the layer's outcomes are registered once, when the layer is built, so
//! the hot path only bumps an atomic: install your recorder before building the manager.
//!
//! # Logs
//!
//! Events go through `tracing`. Every string a client chose (a user name, an `Origin`) is logged
//! through an escaper: control characters escaped, at most 64 bytes, so it cannot forge a log
//! line or reach a terminal as an escape sequence. Do the same in your own handlers.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | `Session` as an axum extractor, `IntoResponse` for the crate's errors and bodies |
//! | `metrics` | yes | counters and histograms through the `metrics` facade: see [Metrics](#metrics) |
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

mod clock;
pub mod config;
mod cookie;
mod deadline;
mod error;
mod escape;
mod guard;
mod json_body;
pub mod layer;
pub mod login;
pub mod manager;
pub mod rate_limit;
mod require_recent_auth;
mod require_role;
pub mod response;
mod revocation;
pub mod routes;
pub mod session;
pub mod store;
mod telemetry;
pub mod token;

// Every Rust snippet of the README compiles.
#[cfg(all(doctest, feature = "axum", feature = "postgres"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The names an application types; everything else by its module path.
pub use config::SessionConfig;
pub use layer::SessionLayer;
pub use manager::{SessionError, SessionManager};
pub use session::Session;

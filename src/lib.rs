//! JWT session management for axum and hyper, as drop-in Tower middleware.
//!
//! Three pieces, built from one [`SessionManager`]:
//!
//! - [`SessionLayer`] protects routes: it verifies the bearer access token (RFC 6750, RFC 8725,
//!   RFC 9068), refuses revoked sessions, puts the verified [`Session`] into the request (an axum
//!   extractor), and adds `X-Token-Refresh` hints when the token is close to expiry. A valid
//!   token with a revocation-cache hit costs less than a bare `jsonwebtoken::decode`.
//! - [`TokenRoutes`] serves `/api/token/…`: refresh with rotation and reuse detection, validate,
//!   auto-refresh, session stats, logout, logout-all, health.
//! - [`LoginService`] serves `POST /api/auth/login` around your password check.
//!
//! The manager holds the rules (2 h access tokens, 30 d refresh tokens, a 90 d absolute
//! lifetime, 10 sessions per user) and the store: in memory, or Redis when `REDIS_URL` is set.
//!
//! # Quick start (axum)
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tower_jwt_session::login::{Authenticated, CheckError, Credentials};
//! use tower_jwt_session::{LoginService, Session, SessionLayer, SessionManager, TokenRoutes, require_role};
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
//! // JWT_SECRET, JWT_ACCESS_TOKEN_EXPIRY=2h, …; REDIS_URL picks the Redis store.
//! let manager = SessionManager::from_env().await?;
//!
//! let app: Router = Router::new()
//!     .route("/api/admin", get(|| async { "admin only" }).route_layer(require_role("admin")))
//!     .route("/api/me", get(me))
//!     .route_layer(SessionLayer::from_manager(&manager)) // every route above needs a token
//!     .route_service("/api/auth/login", LoginService::new(&manager, check))
//!     .nest_service("/api/token", TokenRoutes::new(&manager));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! - `route_layer`, not `layer`: `layer` would also wrap axum's fallback (an unknown path
//!   would answer 401, not 404).
//! - `require_role` goes on the route, inside the session layer; the other way round it answers
//!   500 and logs that the session layer is missing.
//! - In your own handlers `?` works: [`SessionError`] and [`error::AuthError`] are
//!   `IntoResponse`, and so is a [`TokenPair`]; the JSON bodies are in [`response`].
//! - `examples/server.rs` is a whole server (argon2 logins, rate limits, metrics);
//!   `examples/hyper.rs` the same layer on a bare hyper 1 server.
//!
//! # Custom claims
//!
//! An app puts its own data into access tokens (a tenant, a plan, permissions) so handlers and
//! other services act on it without a database round trip:
//!
//! - **At login** the credential check answers [`Authenticated::with_claims`](login::Authenticated::with_claims),
//!   or the app calls [`SessionManager::create_session_with`] with a [`manager::NewSession`].
//!   Claims are any value that serializes to a JSON object ([`session::CustomClaims`]).
//! - **Reserved names** ([`session::RESERVED_CLAIMS`]: `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`,
//!   `jti`, `sid`, `roles`, `typ`) are refused with [`session::ClaimsError::Reserved`] naming the
//!   claim, never overwritten or dropped; claims that would make the access token longer than
//!   [`token::MAX_TOKEN_LEN`] are refused with [`session::ClaimsError::TooLarge`], which says how
//!   large they were. Both are the app's bug: [`SessionError::InvalidClaims`], 500
//!   `internal_error`, logged; no session is started or changed and no token issued.
//! - **Stored with the session** (sealed with the rest of the record when the Redis store seals).
//!   Without a refresh hook every refresh carries them over.
//! - **The refresh hook** ([`manager::RefreshHook`], installed with
//!   [`SessionManagerBuilder::refresh_hook`](manager::SessionManagerBuilder::refresh_hook)) is
//!   asked for fresh roles and claims on every refresh that rotates; its answer is stored with
//!   the rotation in the same atomic step. Its failing or timing out is 503 `unavailable`, and the
//!   refresh token stays usable. A successor handed out again within the reuse interval carries
//!   the claims it was minted with: one successor, one set of claims.
//! - **Reading them:** [`Session::claims`] (any `T: Deserialize`), or the axum extractor
//!   [`extract::Claims<T>`](extract::Claims), from what verification kept (the cache of
//!   verified tokens holds them too: a handler reading claims decodes nothing). Verification
//!   accepts and carries any non-reserved member of a token it verifies, with the registered
//!   claims checked as strictly as before; a member named twice refuses the token.
//!
//! # Modules
//!
//! | module | what is in it |
//! |---|---|
//! | [`config`] | [`SessionConfig`] and its parts (token keys, session rules, cookies, Redis, cache), the environment variables |
//! | [`manager`] | [`SessionManager`]: create, refresh, revoke and list sessions; [`TokenPair`] |
//! | [`session`] | [`Session`], what a verified token says: user, roles, session id, expiry |
//! | [`layer`] | [`SessionLayer`] and how it answers refusals ([`layer::ErrorResponder`]) |
//! | [`routes`], [`login`], [`cookie`] | the token routes, the login route, the refresh cookie |
//! | [`mod@require_role`] | the role check ([`require_role()`]) |
//! | [`rate_limit`] | per-client rate limits and the login lock-out, in memory, Redis or PostgreSQL |
//! | [`store`] | the [`store::SessionStore`] trait, [`store::MemoryStore`], `RedisStore` (feature `redis`) |
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
//! - When the store cannot be reached, login and refresh answer 503 and protected routes fail
//!   closed on a cache miss, unless [`SessionConfig::fail_open`] is set.
//! - Secrets never appear in `Debug` output or logs.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | `Session` as an axum extractor, `IntoResponse` for the crate's errors and bodies |
//! | `metrics` | yes | counters and histograms through the `metrics` facade: see [`telemetry`] |
//! | `redis` | no | `store::RedisStore`: sessions in Redis or Redis Cluster for several instances |
//! | `postgres` | no | `store::PostgresStore`: sessions in PostgreSQL (sqlx) for several instances |
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

// The names an application types; everything else by its module path.
pub use config::{ConfigError, SessionConfig};
pub use layer::SessionLayer;
pub use login::LoginService;
pub use manager::{NO_ROLES, SessionError, SessionManager, StartupError, TokenPair};
pub use require_role::require_role;
pub use routes::TokenRoutes;
pub use session::Session;

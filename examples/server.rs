//! The demo server: an axum app with login, a protected route and the token routes.
//!
//! ```text
//! cargo run --release --example server
//! ```
//!
//! Listens on `127.0.0.1:$PORT` (default 3000; `PORT=0` picks a free port) and prints
//! `listening on http://127.0.0.1:PORT` when ready. Configuration comes from the environment
//! (`SessionConfig::from_env`); only this example makes up a random `JWT_SECRET` when none is
//! set, with a warning, so that it runs on a fresh machine.
//!
//! Asymmetric signing comes from the environment as well: `JWT_ALGORITHM=EdDSA` (or `ES256`,
//! `RS256`, ...) with `JWT_PRIVATE_KEY_FILE=key.pem`, and during a key rotation
//! `JWT_NEXT_PUBLIC_KEYS_FILE` / `JWT_PREVIOUS_PUBLIC_KEYS_FILE`; the public keys are then
//! served at `/.well-known/jwks.json`.
//!
//! The rate limiter believes `X-Forwarded-For` only from the proxies in `TRUSTED_PROXIES`
//! (comma-separated addresses or networks; none by default).
//!
//! Prometheus metrics are served at `/metrics` on a listener of their own, never on the public
//! port: `METRICS_ADDR` (default `127.0.0.1:9090`; port 0 picks a free port; `off` serves no
//! metrics). It prints `metrics on http://IP:PORT/metrics` before the `listening on` line, which
//! comes last, once every listener is up.
//!
//! Step-up: `GET /api/account/security` answers only a session whose user logged in or
//! re-authenticated (`POST /api/auth/reauthenticate`) within `SESSION_STEP_UP_MAX_AGE`
//! (default `5m`; `90s`, `15m`, … as the crate's durations); otherwise 401
//! `insufficient_user_authentication` with the RFC 9470 challenge, which the demo page answers
//! with a "confirm your password" dialog.
//!
//! Demo users: `alice`/`alice-password`, `bob`/`bob-password` (role `user`), and
//! `admin`/`admin-password` (roles `user`, `admin`), stored as argon2id hashes. Login is the
//! crate's `LoginService` with the app's password check (`check_password`) plugged in.

use std::net::SocketAddr;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde_json::json;
use std::sync::Arc;
use tokio::net::TcpListener;

use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_jwt_session::login::{CheckError, Credentials};
use tower_jwt_session::response::{ErrorBody, Success};
use tower_jwt_session::session::Claims;
use tower_jwt_session::token::dpop::{DPOP, DPOP_NONCE};
use tower_jwt_session::{
    Session, SessionConfig, SessionLayer, SessionManager,
    login::{Authenticated, LoginService},
    routes::TokenRoutes,
};
use tower_jwt_session::{
    layer::{X_TOKEN_EXPIRES_IN, X_TOKEN_REFRESH, require_recent_auth},
    response::ErrorCode,
};

/// Demo accounts: user name, argon2id hash of the password (`alice-password`, …), roles. A real
/// app keeps such PHC strings in its user table; these were made once with
/// `Argon2::default().hash_password(b"alice-password")`, salt and parameters included.
const USERS: &[(&str, &str, &[&str])] = &[
    (
        "alice",
        "$argon2id$v=19$m=19456,t=2,p=1$RblrEcZLSKGCRFuv3WEffg$fgm+iVfwh1h02J3S5Yf0AA53+qDOVdEK4LfYJ+sAMGc",
        &["user"],
    ),
    (
        "bob",
        "$argon2id$v=19$m=19456,t=2,p=1$sNe0r2YH4dEV/pNIab1Cag$NF0+2R6jRsS37Z2NXlOpsghWlX/QlRTAPBhl6M6zWs0",
        &["user"],
    ),
    (
        "admin",
        "$argon2id$v=19$m=19456,t=2,p=1$cdT9MiFyKWEBDfAciqdD1w$tvrnriRfnqgLpihFp+FhWggdjoKdKTVxWHpKIcP79HU",
        &["user", "admin"],
    ),
];

/// What an unknown user's password is verified against (same parameters as the real hashes).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$z9cU5hySSHCaDsMGb47jWw$1q4S+DNkYx3JBzgNq17VyKxNyFRKBVNefsesezJobxc";

/// Threads that verify passwords: at most this many argon2 computations (19 MiB each) at once.
const HASH_THREADS: usize = 2;

/// A password to verify, and where the answer goes.
type HashJob = (
    Credentials,
    tokio::sync::oneshot::Sender<Option<Authenticated>>,
);

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_jwt_session=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = SessionConfig::from_lookup(|name| {
        let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if name == "JWT_SECRET" && value.is_none() {
            tracing::warn!(
                "JWT_SECRET is not set: using a random secret for this run only; every token dies with the process. Set JWT_SECRET in production."
            );
            let random: [u8; 48] = rand_bytes();
            return Some(base64::engine::general_purpose::STANDARD.encode(random));
        }
        value
    })?;
    // Install the recorder before building the manager: the layer registers its counters then.
    let metrics_addr = metrics_addr()?;
    let metrics = match metrics_addr {
        Some(_) => Some(metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?),
        None => None,
    };
    // The store the environment names (memory, REDIS_URL, DATABASE_URL), claimed for this app,
    // with the rate limit and the login lock-out kept in it too (RATE_LIMIT_*, TRUSTED_PROXIES).
    let manager = SessionManager::builder(config).connect().await?;
    let step_up = step_up_max_age()?;

    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .trim()
            .parse()
            .map_err(|_| format!("PORT={p:?} is invalid: expected a port number (0-65535)"))?,
        Err(_) => 3000,
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    if let (Some(addr), Some(metrics)) = (metrics_addr, metrics) {
        serve_metrics(addr, metrics).await?;
    }
    // Printed last: when this line is out, every listener is up.
    println!("listening on http://{}", listener.local_addr()?);
    // The rate limiter keys on the peer address: serve with connection info.
    axum::serve(
        listener,
        app(manager, step_up).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    Ok(())
}

/// `METRICS_ADDR`: where `/metrics` is served, on a listener of its own so that it is never
/// on the public port. Unset or empty: `127.0.0.1:9090`; `off`: no metrics at all; otherwise
/// an `IP:PORT` (port 0 picks a free port, printed at startup).
fn metrics_addr() -> Result<Option<SocketAddr>, String> {
    let value = std::env::var("METRICS_ADDR").unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        return Ok(Some(SocketAddr::from(([127, 0, 0, 1], 9090))));
    }
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr: SocketAddr = value.parse().map_err(|_| {
        format!(
            "METRICS_ADDR={value:?} is invalid: expected IP:PORT (e.g. 127.0.0.1:9090), or `off`"
        )
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "METRICS_ADDR is not a loopback address: /metrics is reachable from the network; restrict it with a firewall"
        );
    }
    Ok(Some(addr))
}

/// Binds `addr`, prints `metrics on http://IP:PORT/metrics` and serves the Prometheus text
/// there in the background.
async fn serve_metrics(
    addr: SocketAddr,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("METRICS_ADDR={addr}: cannot listen there: {e}"))?;
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let text = metrics.render();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(())
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random source failed");
    out
}

/// The demo page, the browser client and the API description: path, content type, body.
const STATIC_FILES: [(&str, &str, &str); 6] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../client/index.html"),
    ),
    (
        "/api/token/openapi.yaml",
        "application/yaml; charset=utf-8",
        include_str!("../openapi.yaml"),
    ),
    (
        "/client/token-manager.js",
        "text/javascript; charset=utf-8",
        include_str!("../client/token-manager.js"),
    ),
    (
        "/client/token-manager.d.ts",
        "text/plain; charset=utf-8",
        include_str!("../client/token-manager.d.ts"),
    ),
    (
        "/client/demo.js",
        "text/javascript; charset=utf-8",
        include_str!("../client/demo.js"),
    ),
    (
        "/client/demo.css",
        "text/css; charset=utf-8",
        include_str!("../client/demo.css"),
    ),
];

/// The whole app: login, a protected route, the token routes and the demo page. `/metrics` is
/// not here: it is served on `METRICS_ADDR`, never on the public port. The login and token
/// routes count every request against the per-client rate limit and every failed login against
/// the lock-out, where the manager keeps its sessions (shared by every instance on Redis or
/// PostgreSQL).
fn app(manager: SessionManager, step_up: Duration) -> Router {
    let protected = Router::new()
        .route("/api/me", get(me))
        // Sensitive: only within `step_up` of the last password check (RFC 9470 step-up).
        .route(
            "/api/account/security",
            get(security).route_layer(require_recent_auth(step_up)),
        )
        .route_layer(SessionLayer::from_manager(&manager));
    let routes = TokenRoutes::new(&manager);
    // One service, two routes: login, and re-authentication of a signed-in user.
    let login = LoginService::new(&manager, check_password);
    let mut router = Router::new()
        .route_service("/api/auth/login", login.clone())
        .route_service("/api/auth/reauthenticate", login)
        .nest_service("/api/token", routes.clone())
        // The public keys (404 with HMAC signing), at the root, never rate limited.
        .route_service(tower_jwt_session::routes::JWKS_PATH, routes)
        .merge(protected);
    for (path, content_type, body) in STATIC_FILES {
        router = router.route(path, get(move || static_file(content_type, body)));
    }
    let router = router
        .fallback(|| async { ErrorBody::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ErrorBody::new(
                ErrorCode::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ));
    with_production_headers(router, manager.config())
}

/// What a production deployment wants in front of it: security headers on every response (HSTS
/// too when `BEHIND_HTTPS=true`), and CORS for `ALLOWED_ORIGINS` only, the same list that
/// cookie-only refresh trusts. Without `ALLOWED_ORIGINS` the app is same-origin only.
fn with_production_headers(router: Router, config: &SessionConfig) -> Router {
    let mut router = router;
    let hsts = std::env::var("BEHIND_HTTPS").is_ok_and(|v| v.trim() == "true");
    let hsts = hsts.then_some((
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    ));
    for (name, value) in SECURITY_HEADERS.into_iter().chain(hsts) {
        let value = HeaderValue::from_static(value);
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    if config.cookies().allowed_origins().is_empty() {
        return router;
    }
    let origins: Vec<HeaderValue> = config
        .cookies()
        .allowed_origins()
        .iter()
        .filter_map(|o| o.parse().ok())
        .collect();
    router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-requested-with"),
                DPOP,
            ])
            .expose_headers([
                DPOP_NONCE,
                header::WWW_AUTHENTICATE,
                X_TOKEN_REFRESH,
                X_TOKEN_EXPIRES_IN,
                header::RETRY_AFTER,
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
            ])
            .allow_credentials(true)
            .max_age(Duration::from_secs(600)),
    )
}

/// Security headers on every response, unless the handler set its own.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
];

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The app's half of login, plugged into the crate's `LoginService` (which owns the content
/// type, the Origin rule, the lock-out, logging, the session, the cookie and the answer).
///
/// The argon2 work runs on [`HASH_THREADS`] threads of its own, never on the async workers,
/// fed through a bounded queue, so a flood of logins waits in line instead of exhausting CPU
/// or memory. Not `spawn_blocking`: its pool grows to hundreds of threads, and every thread
/// that once held argon2's 19 MiB keeps its own allocator arena, so a login flood measured
/// 1.7 GB RSS that way (`bench/abuse.sh`). An unknown user is verified against [`DUMMY_HASH`]:
/// it takes as long as a wrong password, so response times do not tell which user names exist.
async fn check_password(credentials: Credentials) -> Result<Option<Authenticated>, CheckError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    hash_queue()
        .send((credentials, reply))
        .await
        .map_err(|_| CheckError::msg("the password-hashing threads have stopped"))?;
    Ok(answer.await?)
}

/// The queue of the password-hashing threads, started on first use.
fn hash_queue() -> &'static tokio::sync::mpsc::Sender<HashJob> {
    static QUEUE: std::sync::OnceLock<tokio::sync::mpsc::Sender<HashJob>> =
        std::sync::OnceLock::new();
    QUEUE.get_or_init(|| {
        let (queue, jobs) = tokio::sync::mpsc::channel::<HashJob>(256);
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        for i in 0..HASH_THREADS {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        // One thread waits for the next job at a time; the others hash.
                        let job = jobs
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .blocking_recv();
                        let Some((credentials, reply)) = job else {
                            return;
                        };
                        let _ = reply.send(verify(&credentials));
                    }
                })
                .expect("the operating system refused a thread");
        }
        queue
    })
}

/// `SESSION_STEP_UP_MAX_AGE`: how recent a password check `/api/account/security` needs.
fn step_up_max_age() -> Result<Duration, String> {
    match std::env::var("SESSION_STEP_UP_MAX_AGE") {
        Ok(value) if !value.trim().is_empty() => {
            tower_jwt_session::config::parse_duration(value.trim()).map_err(|e| {
                format!("SESSION_STEP_UP_MAX_AGE={value:?} is invalid: {e} (e.g. 90s, 5m)")
            })
        }
        _ => Ok(Duration::from_secs(300)),
    }
}

fn verify(credentials: &Credentials) -> Option<Authenticated> {
    let user = USERS
        .iter()
        .find(|(name, ..)| *name == credentials.username);
    let phc = user.map_or(DUMMY_HASH, |(_, phc, _)| *phc);
    let hash = PasswordHash::new(phc).expect("the demo hashes are valid PHC strings");
    let right = Argon2::default()
        .verify_password(credentials.password.as_bytes(), &hash)
        .is_ok();
    let (name, _, roles) = user?;
    // The app's own claims ride in every access token: the demo users' tenant.
    let tenant = if *name == "admin" { "ops" } else { "acme" };
    right.then(|| {
        Authenticated::new(*name, roles.iter().copied())
            .with_claims(&DemoClaims {
                tenant: Some(tenant.to_owned()),
            })
            // The password was checked: RFC 8176 `pwd`.
            .amr(["pwd"])
    })
}

/// The demo's custom claims. Optional, so a token without them still fits.
#[derive(serde::Serialize, serde::Deserialize)]
struct DemoClaims {
    tenant: Option<String>,
}

/// `GET /api/me`: the verified session and its tenant claim, through the extractors (the
/// claims come from what verification kept: the token is not decoded again).
async fn me(session: Session, Claims(claims): Claims<DemoClaims>) -> Success<serde_json::Value> {
    let data = json!({
        "userId": session.user_id(),
        "sessionId": session.session_id(),
        "roles": session.roles().collect::<Vec<_>>(),
        "tenant": claims.tenant,
    });
    Success::new("Authenticated", data)
}

/// `GET /api/account/security`: reached only with a recent password check; says when it was.
async fn security(session: Session) -> Success<serde_json::Value> {
    let auth_time = humantime::format_rfc3339_seconds(session.auth_time()).to_string();
    let data = json!({
        "userId": session.user_id(),
        "authTime": auth_time,
        "amr": session.amr(),
    });
    Success::new("Recent authentication confirmed", data)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

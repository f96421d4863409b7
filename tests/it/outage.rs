//! A store that stalls or goes away, on Redis and PostgreSQL, seen through a proxy that can
//! freeze the connection: nothing passes while frozen, and what was sent meanwhile is delivered
//! when it thaws, as a paused server (SIGSTOP, a fork, a long fsync, a VM pause) delivers the
//! commands that waited in its socket.
//!
//! - A refresh answered 503 during a stall never takes effect later: the clients' retries with
//!   the tokens they kept are never judged reuse, however long the stall
//!   (`TJS_STALL_SECS`, 3 s here; `bash bench/stall.sh` runs 12 s and 60 s).
//! - During an outage, a login, a refresh and a logout each answer 503 within one store timeout,
//!   though each asks the rate limiter, the attempt tracker and the store in turn.
#![cfg(all(feature = "redis", feature = "postgres"))]

use crate::common::pg_server;
use crate::common::redis_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use tower_jwt_session::config::{PostgresSettings, RedisSettings};
use tower_jwt_session::layer::ClientRateLimitLayer;
use tower_jwt_session::login::{Authenticated, Credentials};
use tower_jwt_session::rate_limit::{
    AttemptBackend, AttemptConfig, AttemptTracker, PeerAddr, PostgresAttemptBackend,
    PostgresRateLimitBackend, RateLimitBackend, RateLimitConfig, RedisAttemptBackend,
    RedisRateLimitBackend,
};
use tower_jwt_session::store::{PostgresStore, RedisStore, SessionStore};
use tower_jwt_session::{
    SessionConfig, SessionError, SessionManager, login::LoginService, routes::TokenRoutes,
};

const SECRET: &str = "outage-test-secret-outage-test-secret-0123";

/// A TCP proxy to `target` that can be frozen: while frozen it passes nothing to the server, so
/// what is sent waits in the sockets and is delivered when it thaws. That is a paused server:
/// it reads nothing while stopped, and what it had already answered reaches the client (the
/// kernel sends what was written). A network partition would also hold answers in flight; a
/// rotation whose answer is lost so is covered by the reuse interval alone (docs/deployment.md).
struct Freezer {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
}

impl Freezer {
    async fn start(target: SocketAddr) -> Freezer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let gate = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, gate.clone()));
                tokio::spawn(pipe(sr, cw, Arc::new(AtomicBool::new(false))));
            }
        });
        Freezer { addr, frozen }
    }

    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A read that was waiting when the freeze began is held until the thaw too.
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn port_of(url: &str) -> u16 {
    let rest = url.rsplit('@').next().unwrap();
    let rest = rest.split("://").last().unwrap();
    let host_port = rest.split('/').next().unwrap();
    host_port.rsplit(':').next().unwrap().parse().unwrap()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The store, its rate-limit and attempt backends on the same connection, behind a freezer.
struct Stack {
    freezer: Freezer,
    store: Arc<dyn SessionStore>,
    limiter: Arc<dyn RateLimitBackend>,
    attempts: Arc<dyn AttemptBackend>,
    config: SessionConfig,
    /// Keeps the test database alive.
    _db: Option<pg_server::TestDb>,
}

async fn redis_stack(timeout: Duration, reuse: Duration) -> Stack {
    let server = &redis_server::single().urls[0];
    let freezer = Freezer::start(local(port_of(server))).await;
    let url = format!("redis://{}", freezer.addr);
    let config = SessionConfig::new(SECRET)
        .unwrap()
        .with_rules(tower_jwt_session::config::SessionRules::default().with_reuse_interval(reuse))
        .with_redis(
            RedisSettings::new([url])
                .with_key_prefix(redis_server::unique_prefix("outage"))
                .with_timeout(timeout),
        );
    let store = RedisStore::connect(config.redis()).await.unwrap();
    Stack {
        limiter: Arc::new(RedisRateLimitBackend::new(store.connection())),
        attempts: Arc::new(RedisAttemptBackend::new(store.connection())),
        store: Arc::new(store),
        freezer,
        config,
        _db: None,
    }
}

async fn postgres_stack(timeout: Duration, reuse: Duration) -> Stack {
    let db = pg_server::TestDb::create().await;
    let freezer = Freezer::start(local(port_of(&db.url))).await;
    let url = db.url.replace(
        &format!(":{}/", port_of(&db.url)),
        &format!(":{}/", freezer.addr.port()),
    );
    let config = SessionConfig::new(SECRET)
        .unwrap()
        .with_rules(tower_jwt_session::config::SessionRules::default().with_reuse_interval(reuse))
        .with_postgres(PostgresSettings::new(&url).with_timeout(timeout));
    let store = PostgresStore::connect(config.postgres()).await.unwrap();
    Stack {
        limiter: Arc::new(PostgresRateLimitBackend::new(store.connection())),
        attempts: Arc::new(PostgresAttemptBackend::new(store.connection())),
        store: Arc::new(store),
        freezer,
        config,
        _db: Some(db),
    }
}

impl Stack {
    fn manager(&self) -> SessionManager {
        SessionManager::builder(self.config.clone())
            .shared_store(self.store.clone())
            .build()
            .unwrap()
    }
}

// --- A stall of any length never turns a retry into reuse ---

/// Clients refreshing in a loop (each keeps the token it holds after an error, and retries),
/// a stall of `stall` in the middle: how many sessions ended by reuse detection.
async fn sessions_ended_by_a_stall(stack: &Stack, clients: usize, stall: Duration) -> usize {
    let manager = stack.manager();
    let mut tokens = Vec::new();
    for i in 0..clients {
        let pair = manager
            .create_session(
                tower_jwt_session::manager::NewSession::new(format!("user-{i}")).roles(&["user"]),
            )
            .await
            .unwrap();
        tokens.push(pair.refresh_token);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reused = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for token in tokens {
        let (manager, stop, reused) = (manager.clone(), stop.clone(), reused.clone());
        tasks.push(tokio::spawn(async move {
            let mut token = token;
            while !stop.load(Ordering::SeqCst) {
                match manager.refresh(&token).await {
                    Ok(pair) => token = pair.refresh_token,
                    Err(SessionError::Unavailable(_)) => {}
                    Err(SessionError::TokenReused(_) | SessionError::Revoked) => {
                        reused.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    Err(other) => panic!("refresh answered {other:?}"),
                }
                // Busy clients: a PostgreSQL rotation is two round trips (read, then a
                // compare-and-set write), and only a stall that catches the write applies late.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.freezer.freeze();
    tokio::time::sleep(stall).await;
    stack.freezer.thaw();
    // Long enough for every client to retry after the queued commands ran.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    reused.load(Ordering::SeqCst)
}

fn stall_length() -> Duration {
    let secs = std::env::var("TJS_STALL_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(3);
    Duration::from_secs(secs)
}

fn clients(default: usize) -> usize {
    std::env::var("TJS_STALL_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_stall_longer_than_the_reuse_interval_ends_no_session() {
    let stall = stall_length();
    let stack = redis_stack(Duration::from_millis(500), Duration::from_secs(1)).await;
    let n = clients(20);
    let ended = sessions_ended_by_a_stall(&stack, n, stall).await;
    println!("redis: {ended} of {n} sessions ended by a {stall:?} stall");
    assert_eq!(ended, 0, "sessions ended by reuse detection after a stall");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_stall_longer_than_the_reuse_interval_ends_no_session() {
    let stall = stall_length();
    let stack = postgres_stack(Duration::from_millis(500), Duration::from_secs(1)).await;
    let n = clients(20);
    let ended = sessions_ended_by_a_stall(&stack, n, stall).await;
    println!("postgres: {ended} of {n} sessions ended by a {stall:?} stall");
    assert_eq!(ended, 0, "sessions ended by reuse detection after a stall");
}

// --- An outage costs one timeout, not the sum of each backend's ---

async fn check_password(
    c: Credentials,
) -> Result<Option<Authenticated>, tower_jwt_session::login::CheckError> {
    Ok((c.password == "right").then(|| Authenticated::new(c.username, ["user"])))
}

/// `POST path` with a JSON body (and a bearer token) through `service`, from 192.0.2.1: the
/// status and how long it took.
async fn post<S, RB>(
    service: S,
    path: &str,
    bearer: Option<&str>,
    body: serde_json::Value,
) -> (StatusCode, Duration)
where
    S: tower::Service<
            Request<Full<bytes::Bytes>>,
            Response = http::Response<RB>,
            Error = std::convert::Infallible,
        >,
    RB: http_body::Body,
{
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let mut req = req
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::from(([192, 0, 2, 1], 4000))));
    let start = Instant::now();
    let res = service.oneshot(req).await.unwrap();
    let took = start.elapsed();
    let status = res.status();
    let _ = res.into_body().collect().await;
    (status, took)
}

async fn an_outage_costs_one_timeout(stack: Stack) {
    let timeout = Duration::from_secs(1);
    let manager = stack.manager();
    let tracker = AttemptTracker::with_backend(AttemptConfig::new(), stack.attempts.clone());
    let limits = ClientRateLimitLayer::with_backend(RateLimitConfig::new(), stack.limiter.clone());
    let login = tower::ServiceBuilder::new()
        .layer(limits.clone())
        .service(LoginService::new(&manager, check_password).attempt_tracker(tracker.clone()));
    let routes = tower::ServiceBuilder::new()
        .layer(limits)
        .service(TokenRoutes::new(&manager).attempt_tracker(tracker));
    let pair = manager
        .create_session(tower_jwt_session::manager::NewSession::new("alice").roles(&["user"]))
        .await
        .unwrap();

    stack.freezer.freeze();
    let cases = [
        (
            "login",
            post(
                login.clone(),
                "/api/auth/login",
                None,
                serde_json::json!({"username": "alice", "password": "right"}),
            )
            .await,
        ),
        (
            "refresh",
            post(
                routes.clone(),
                "/api/token/refresh",
                None,
                serde_json::json!({"refreshToken": pair.refresh_token}),
            )
            .await,
        ),
        (
            "logout",
            post(
                routes.clone(),
                "/api/token/logout",
                Some(&pair.access_token),
                serde_json::json!({}),
            )
            .await,
        ),
    ];
    stack.freezer.thaw();
    for (route, (status, took)) in cases {
        println!("{route}: {status} after {took:?}");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{route}");
        // Each route asks two or three backends in turn: one timeout for all of them, with
        // room for a loaded machine, and well under two.
        assert!(
            took < timeout + timeout * 3 / 4,
            "{route} answered after {took:?}, more than one store timeout ({timeout:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_answers_within_one_timeout() {
    an_outage_costs_one_timeout(redis_stack(Duration::from_secs(1), Duration::from_secs(10)).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_outage_answers_within_one_timeout() {
    an_outage_costs_one_timeout(
        postgres_stack(Duration::from_secs(1), Duration::from_secs(10)).await,
    )
    .await;
}

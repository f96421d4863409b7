//! The one way to assemble the crate, as a new app does it: a manager from the configuration
//! (`SessionManager::builder(config).connect()`), the login and token routes on it, and every
//! protection on by default, kept where the sessions are: memory, Redis and PostgreSQL, the
//! app's own pool, two instances sharing the lock-out, a client with no address (said in
//! health), a refresh hook that ends a gone user's sessions, credentials of the app's own shape.
#![cfg(all(feature = "redis", feature = "postgres", feature = "axum"))]

use crate::common::pg_server;
use crate::common::redis_server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_session::login::{Authenticated, CheckError, Credentials, LoginCredentials};
use tower_jwt_session::manager::{HookError, RefreshContext, Refreshed};
use tower_jwt_session::rate_limit::PeerAddr;
use tower_jwt_session::{
    SessionConfig, SessionError, SessionManager, login::LoginService, routes::TokenRoutes,
};

const SECRET: &str = "assembly-test-secret-assembly-test-secret-0123";

/// The demo users: alice and bob with `<name>-password`.
async fn check(c: Credentials) -> Result<Option<Authenticated>, CheckError> {
    let known = ["alice", "bob"].contains(&c.username.as_str());
    Ok((known && c.password == format!("{}-password", c.username))
        .then(|| Authenticated::new(c.username, ["user"])))
}

/// The configuration the environment gives, for `store`: `memory`, `redis` (on the shared test
/// server, under a prefix of its own) or a PostgreSQL URL.
fn config_for(store: &str) -> SessionConfig {
    let prefix = redis_server::unique_prefix("assembly");
    let redis = redis_server::single().urls[0].clone();
    let store = store.to_owned();
    SessionConfig::from_lookup(move |name| match (name, store.as_str()) {
        ("JWT_SECRET", _) => Some(SECRET.to_owned()),
        ("REDIS_URL", "redis") => Some(redis.clone()),
        ("REDIS_KEY_PREFIX", "redis") => Some(prefix.clone()),
        ("DATABASE_URL", url) if url.starts_with("postgres") => Some(url.to_owned()),
        _ => None,
    })
    .expect("a configuration")
}

/// A request to `service`, from `peer` when given (as `into_make_service_with_connect_info`
/// gives it): the status, the headers and the JSON body.
async fn send<S, RB>(
    service: &S,
    method: &str,
    path: &str,
    peer: Option<[u8; 4]>,
    bearer: Option<&str>,
    body: Value,
) -> (StatusCode, http::HeaderMap, Value)
where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = http::Response<RB>,
            Error = std::convert::Infallible,
        > + Clone,
    RB: http_body::Body,
    RB::Error: std::fmt::Debug,
{
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let mut req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    if let Some(ip) = peer {
        req.extensions_mut()
            .insert(PeerAddr(SocketAddr::from((ip, 40_000))));
    }
    let res = service.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn wrong(user: &str) -> Value {
    json!({"username": user, "password": "guess"})
}

fn right(user: &str) -> Value {
    json!({"username": user, "password": format!("{user}-password")})
}

/// Two instances (managers) on one store, wired as a new app wires them, share the login
/// lock-out and the failed-refresh tracking: five wrong passwords from one client, split across
/// them, lock that client out of that user on both; twenty forged refresh tokens lock it out
/// of refreshing on both. Returns the two managers' limit kinds.
async fn two_instances_share_the_protections(a: SessionManager, b: SessionManager) {
    let logins = [LoginService::new(&a, check), LoginService::new(&b, check)];
    let client = Some([198, 51, 100, 7]);
    for i in 0..5 {
        let (status, _, body) = send(
            &logins[i % 2],
            "POST",
            "/api/auth/login",
            client,
            None,
            wrong("alice"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}: {body}");
    }
    for login in &logins {
        let (status, headers, body) = send(
            login,
            "POST",
            "/api/auth/login",
            client,
            None,
            right("alice"),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(headers.contains_key("retry-after"));
    }
    // Another client is not locked out of alice.
    let (status, _, _) = send(
        &logins[1],
        "POST",
        "/api/auth/login",
        Some([203, 0, 113, 9]),
        None,
        right("alice"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let routes = [TokenRoutes::new(&a), TokenRoutes::new(&b)];
    let pair = a
        .create_session(tower_jwt_session::manager::NewSession::new("bob").roles(&["user"]))
        .await
        .unwrap();
    let forged = format!("{}x", pair.refresh_token);
    for i in 0..20 {
        let (status, _, body) = send(
            &routes[i % 2],
            "POST",
            "/api/token/refresh",
            client,
            None,
            json!({"refreshToken": forged}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "forged {i}: {body}");
    }
    for routes in &routes {
        let (status, _, body) = send(
            routes,
            "POST",
            "/api/token/refresh",
            client,
            None,
            json!({"refreshToken": pair.refresh_token}),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
}

#[tokio::test]
async fn on_redis_the_lock_out_and_the_refresh_tracking_are_shared_by_two_instances() {
    let config = config_for("redis");
    let a = SessionManager::builder(config.clone())
        .connect()
        .await
        .unwrap();
    let b = SessionManager::builder(config).connect().await.unwrap();
    assert_eq!((a.limits().kind(), b.limits().kind()), ("redis", "redis"));
    two_instances_share_the_protections(a, b).await;
}

#[tokio::test]
async fn on_postgres_the_lock_out_and_the_refresh_tracking_are_shared_by_two_instances() {
    let db = pg_server::TestDb::create().await;
    let config = config_for(&db.url);
    let a = SessionManager::builder(config.clone())
        .connect()
        .await
        .unwrap();
    let b = SessionManager::builder(config).connect().await.unwrap();
    assert_eq!(
        (a.limits().kind(), b.limits().kind()),
        ("postgres", "postgres")
    );
    two_instances_share_the_protections(a, b).await;
}

/// The app's own pool backs the sessions and the protections: no pool of the crate's.
#[tokio::test]
async fn the_apps_own_pool_backs_the_sessions_and_the_protections() {
    let db = pg_server::TestDb::create().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect(&db.url)
        .await
        .unwrap();
    let config = config_for(&db.url);
    let manager = SessionManager::builder(config.clone())
        .postgres_pool(pool.clone())
        .connect()
        .await
        .unwrap();
    assert_eq!(
        (manager.store_kind(), manager.limits().kind()),
        ("postgres", "postgres")
    );
    let login = LoginService::new(&manager, check);
    let (status, _, body) = send(
        &login,
        "POST",
        "/api/auth/login",
        Some([192, 0, 2, 1]),
        None,
        right("alice"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The session and the rate-limit count are rows in the app's database, written through
    // its pool.
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM tjs_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    let limited: i64 = sqlx::query_scalar("SELECT count(*) FROM tjs_rate_limits")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((sessions, limited), (1, 1));
    // A second instance on its own pool sees the session, and the same lock-out.
    let other = SessionManager::builder(config).connect().await.unwrap();
    two_instances_share_the_protections(manager, other).await;
}

/// Served without the client's address (axum's `serve(listener, app)` without connect info),
/// nothing can be counted: the login still works, but health says so with a reason code, and
/// the log says it once at warn with the fix.
#[tokio::test]
async fn a_client_without_an_address_is_said_in_health_and_at_warn_once() {
    let logs = Captured::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish(),
    );
    let manager = SessionManager::builder(config_for("memory"))
        .connect()
        .await
        .unwrap();
    let login = LoginService::new(&manager, check);
    let routes = TokenRoutes::new(&manager);
    let (status, _, health) =
        send(&routes, "GET", "/api/token/health", None, None, Value::Null).await;
    assert_eq!(
        (status, health["data"]["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    // Eight wrong passwords, then the right one: nothing is counted without an address.
    for _ in 0..8 {
        let (status, _, _) = send(
            &login,
            "POST",
            "/api/auth/login",
            None,
            None,
            wrong("alice"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = send(
        &login,
        "POST",
        "/api/auth/login",
        None,
        None,
        right("alice"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, health) =
        send(&routes, "GET", "/api/token/health", None, None, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["data"]["status"], "degraded", "{health}");
    assert_eq!(
        health["data"]["warnings"],
        json!(["client_address_missing"]),
        "{health}"
    );
    let text = logs.text();
    assert_eq!(
        text.matches("into_make_service_with_connect_info").count(),
        2,
        "one warning when it happens, one when health first reports it: {text}"
    );
    // With the address, the same wiring locks the guesser out at the sixth attempt.
    for _ in 0..5 {
        send(
            &login,
            "POST",
            "/api/auth/login",
            Some([198, 51, 100, 7]),
            None,
            wrong("bob"),
        )
        .await;
    }
    let (status, _, _) = send(
        &login,
        "POST",
        "/api/auth/login",
        Some([198, 51, 100, 7]),
        None,
        right("bob"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// A refresh hook that finds the user gone ends every session of the user, everywhere, and the
/// refresh answers 401; one that finds the user answers fresh roles.
#[tokio::test]
async fn a_refresh_hook_ends_a_gone_users_sessions() {
    let gone = Arc::new(Mutex::new(Vec::<String>::new()));
    let users = gone.clone();
    let manager = SessionManager::builder(config_for("memory"))
        .refresh_hook(move |context: RefreshContext| {
            let users = users.clone();
            async move {
                let deleted = users.lock().unwrap().contains(&context.user_id);
                Ok::<_, HookError>(if deleted {
                    Refreshed::user_gone()
                } else {
                    Refreshed::new(&["user", "fresh"])
                })
            }
        })
        .connect()
        .await
        .unwrap();
    let first = manager
        .create_session(tower_jwt_session::manager::NewSession::new("mallory").roles(&["user"]))
        .await
        .unwrap();
    let second = manager
        .create_session(tower_jwt_session::manager::NewSession::new("mallory").roles(&["user"]))
        .await
        .unwrap();
    let refreshed = manager.refresh(&first.refresh_token).await.unwrap();
    let session = manager
        .verify_access_token(&refreshed.access_token)
        .await
        .unwrap();
    assert!(session.has_role("fresh"));

    gone.lock().unwrap().push("mallory".to_owned());
    let routes = TokenRoutes::new(&manager);
    let (status, _, body) = send(
        &routes,
        "POST",
        "/api/token/refresh",
        Some([192, 0, 2, 1]),
        None,
        json!({"refreshToken": refreshed.refresh_token}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "token_revoked");
    assert!(manager.sessions("mallory").await.unwrap().is_empty());
    assert!(
        manager
            .verify_access_token(&second.access_token)
            .await
            .is_err()
    );
    assert!(matches!(
        manager.refresh(&second.refresh_token).await,
        Err(SessionError::Revoked)
    ));
}

/// An app that logs in with an e-mail address and a one-time code: its own credential type,
/// counted by the lock-out under the address.
#[tokio::test]
async fn credentials_of_the_apps_own_shape() {
    #[derive(serde::Deserialize)]
    struct EmailLogin {
        email: String,
        password: String,
        otp: String,
    }
    impl LoginCredentials for EmailLogin {
        fn login_name(&self) -> &str {
            &self.email
        }
    }
    let manager = SessionManager::builder(config_for("memory"))
        .connect()
        .await
        .unwrap();
    let login = LoginService::new(&manager, |c: EmailLogin| async move {
        let ok = c.email == "alice@example.com" && c.password == "pw" && c.otp == "123456";
        Ok(ok.then(|| Authenticated::new("alice", ["user"])))
    });
    let peer = Some([192, 0, 2, 1]);
    let good = json!({"email": "alice@example.com", "password": "pw", "otp": "123456"});
    let (status, _, body) = send(&login, "POST", "/api/auth/login", peer, None, good.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send(
        &login,
        "POST",
        "/api/auth/login",
        peer,
        None,
        json!({"email": "alice@example.com", "password": "pw"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("missing field `otp`"),
        "{body}"
    );
    for _ in 0..5 {
        let bad = json!({"email": "alice@example.com", "password": "pw", "otp": "000000"});
        let (status, _, _) = send(&login, "POST", "/api/auth/login", peer, None, bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = send(&login, "POST", "/api/auth/login", peer, None, good).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// `GET /api/token/sessions`: the caller's own sessions, the rows of `session-stats`.
#[tokio::test]
async fn the_callers_own_sessions() {
    let manager = SessionManager::builder(config_for("memory"))
        .connect()
        .await
        .unwrap();
    let routes = TokenRoutes::new(&manager);
    let laptop = manager
        .create_session(tower_jwt_session::manager::NewSession::new("alice").roles(&["user"]))
        .await
        .unwrap();
    manager
        .create_session(tower_jwt_session::manager::NewSession::new("alice").roles(&["user"]))
        .await
        .unwrap();
    manager
        .create_session(tower_jwt_session::manager::NewSession::new("bob").roles(&["user"]))
        .await
        .unwrap();
    let peer = Some([192, 0, 2, 1]);
    let (status, _, body) = send(
        &routes,
        "GET",
        "/api/token/sessions",
        peer,
        Some(&laptop.access_token),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, stats) = send(
        &routes,
        "GET",
        "/api/token/session-stats/alice",
        peer,
        Some(&laptop.access_token),
        Value::Null,
    )
    .await;
    assert_eq!(body["data"], stats["data"]);
    assert_eq!(body["data"]["activeSessions"], 2);
    let current: Vec<bool> = body["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current.iter().filter(|c| **c).count(), 1);
    let (status, _, _) = send(
        &routes,
        "GET",
        "/api/token/sessions",
        peer,
        None,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Log lines, for the warn-once check.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

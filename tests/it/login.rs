//! The login service in process (`oneshot`): content type, the Origin rule, the lock-out,
//! escaped logs, cookie-only delivery, and the answers of SPEC §5.
#![cfg(feature = "axum")]

use crate::common;

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_session::config::ManualClock;
use tower_jwt_session::login::{CheckError, CredentialCheck, Credentials};
use tower_jwt_session::{
    SessionConfig, SessionManager,
    config::SessionLimitPolicy,
    login::{Authenticated, LoginService},
    rate_limit::{AttemptConfig, AttemptTracker, ClientIp},
    routes::TokenRoutes,
};

const GOOD: &str = r#"{"username":"alice","password":"alice-password"}"#;

/// The demo users of `common::app::check_password`; counts the calls that reached it.
#[derive(Clone, Default)]
struct Users {
    calls: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl CredentialCheck for Users {
    type Error = CheckError;

    async fn check(&self, c: Credentials) -> Result<Option<Authenticated>, CheckError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        common::app::check_password(c).await
    }
}

fn config() -> SessionConfig {
    SessionConfig::new(common::SECRET).unwrap().with_cookies(
        tower_jwt_session::config::CookieSettings::default()
            .with_allowed_origins(["https://app.example.com"]),
    )
}

fn service(config: SessionConfig) -> (LoginService<Users>, Users) {
    let users = Users::default();
    let manager = SessionManager::new(config).unwrap();
    (LoginService::new(&manager, users.clone()), users)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A JSON login from 203.0.113.7 to host api.example.com.
fn post() -> http::request::Builder {
    Request::post("/api/auth/login")
        .header("host", "api.example.com")
        .header("content-type", "application/json")
        .extension(ClientIp(ip("203.0.113.7")))
}

fn build(builder: http::request::Builder, body: &str) -> Request<Full<Bytes>> {
    builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn error(&self, status: u16, code: &str) {
        common::assert_error(self.status.as_u16(), &self.body, status, code);
        assert_eq!(self.headers["cache-control"], "no-store");
    }
}

async fn send<C: CredentialCheck>(service: &LoginService<C>, req: Request<Full<Bytes>>) -> Reply {
    let res = service.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn a_login_answers_the_spec_body_with_the_cookie_and_no_store() {
    let (login, _) = service(config());
    let reply = send(&login, build(post(), GOOD)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["success"], true);
    assert_eq!(reply.body["message"], "Login successful");
    let data = &reply.body["data"];
    for field in ["accessToken", "refreshToken", "sessionId"] {
        assert!(
            data[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }
    assert_eq!(data["userId"], "alice");
    let expires_in = data["expiresIn"].as_u64().unwrap();
    assert!(
        (7_199_000..=7_200_000).contains(&expires_in),
        "{expires_in} ms"
    );
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.headers["content-type"], "application/json");
    let cookie = reply.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!(
            "tjs_refresh={};",
            data["refreshToken"].as_str().unwrap()
        )),
        "{cookie}"
    );
    assert!(cookie.contains("; Path=/api/token"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"));
}

#[tokio::test]
async fn cookie_only_delivery_keeps_the_refresh_token_out_of_the_body() {
    let (login, _) = service(config());
    let body =
        r#"{"username":"alice","password":"alice-password","refreshTokenDelivery":"cookie"}"#;
    let reply = send(&login, build(post(), body)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = reply.body["data"].as_object().unwrap();
    assert!(!data.contains_key("refreshToken"), "{data:?}");
    assert!(data["accessToken"].is_string());
    let cookie = reply.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("tjs_refresh=tjs1."), "{cookie}");
    assert_eq!(reply.headers["cache-control"], "no-store");

    // "body" is the default, said out loud; anything else is a bad request.
    let body = r#"{"username":"alice","password":"alice-password","refreshTokenDelivery":"body"}"#;
    let reply = send(&login, build(post(), body)).await;
    assert!(reply.body["data"]["refreshToken"].is_string());
    let body = r#"{"username":"alice","password":"alice-password","refreshTokenDelivery":"both"}"#;
    send(&login, build(post(), body))
        .await
        .error(400, "invalid_request");
}

#[tokio::test]
async fn refresh_routes_honour_cookie_only_delivery() {
    let manager = SessionManager::new(config()).unwrap();
    let pair = manager
        .create_session(tower_jwt_session::manager::NewSession::new("alice"))
        .await
        .unwrap();
    let refresh = |body: Value| {
        Request::post("/api/token/refresh")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    let token_routes = TokenRoutes::new(&manager);
    let res = token_routes
        .clone()
        .oneshot(refresh(json!({
            "refreshToken": pair.refresh_token,
            "refreshTokenDelivery": "cookie",
        })))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("tjs_refresh=tjs1.")
    );
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(body["data"]["accessToken"].is_string());
    assert!(body["data"].get("refreshToken").is_none(), "{body}");

    // Auto-refresh, when the access token is still fresh: nothing to echo either.
    let access = body["data"]["accessToken"].as_str().unwrap();
    let current = manager.refresh(&pair.refresh_token).await.unwrap(); // grace: same successor
    let req = Request::post("/api/token/auto-refresh")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({
                "accessToken": access,
                "refreshToken": current.refresh_token,
                "refreshTokenDelivery": "cookie",
            })
            .to_string(),
        )))
        .unwrap();
    let res = token_routes.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["data"]["refreshed"], false, "{body}");
    assert!(body["data"].get("refreshToken").is_none(), "{body}");
}

#[tokio::test]
async fn only_json_is_accepted() {
    let (login, users) = service(config());
    let form = "username=alice&password=alice-password";
    for (content_type, body) in [
        ("text/plain", GOOD),
        ("text/plain;charset=UTF-8", GOOD),
        ("application/x-www-form-urlencoded", form),
        ("multipart/form-data; boundary=x", GOOD),
        ("application/jsonx", GOOD),
    ] {
        let req = Request::post("/api/auth/login")
            .header("content-type", content_type)
            .extension(ClientIp(ip("203.0.113.7")));
        send(&login, build(req, body))
            .await
            .error(415, "unsupported_media_type");
    }
    // No Content-Type at all.
    let req = Request::post("/api/auth/login").extension(ClientIp(ip("203.0.113.7")));
    send(&login, build(req, GOOD))
        .await
        .error(415, "unsupported_media_type");
    assert_eq!(users.calls.load(Ordering::SeqCst), 0, "never checked");

    // Parameters are fine.
    let mut req = build(post(), GOOD);
    req.headers_mut().insert(
        "content-type",
        "Application/JSON; charset=utf-8".parse().unwrap(),
    );
    assert_eq!(send(&login, req).await.status, 200);
}

#[tokio::test]
async fn a_cross_site_form_post_cannot_log_the_victim_in() {
    // What the attacker's page sends: `<form enctype="text/plain">` gets 415 (above) and a
    // `fetch` with JSON from another origin carries that origin.
    let (login, users) = service(config());
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("sec-fetch-site", "same-site"),
            ("origin", "https://sub.example.com"),
        ],
        vec![("origin", "null")],
        vec![("origin", "http://api.example.com:8080")],
    ] {
        let mut req = post();
        for (name, value) in &headers {
            req = req.header(*name, *value);
        }
        let reply = send(&login, build(req, GOOD)).await;
        reply.error(403, "forbidden");
        assert!(!reply.headers.contains_key("set-cookie"), "{headers:?}");
    }
    assert_eq!(users.calls.load(Ordering::SeqCst), 0, "never checked");
}

#[tokio::test]
async fn same_origin_allowed_origins_and_no_origin_pass() {
    let (login, _) = service(config());
    for headers in [
        // The app's own page.
        vec![
            ("origin", "https://api.example.com"),
            ("sec-fetch-site", "same-origin"),
        ],
        vec![("origin", "https://api.example.com")],
        // A front end on an allowed origin, cross-site for the browser.
        vec![
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "same-site"),
        ],
        // curl, a server-to-server call: neither header.
        vec![],
        vec![("sec-fetch-site", "none")],
    ] {
        let mut req = post();
        for (name, value) in &headers {
            req = req.header(*name, *value);
        }
        let reply = send(&login, build(req, GOOD)).await;
        assert_eq!(reply.status, 200, "{headers:?}: {}", reply.body);
    }
}

#[tokio::test]
async fn wrong_credentials_are_401_whoever_the_user() {
    let (login, _) = service(config());
    for body in [
        r#"{"username":"alice","password":"wrong"}"#,
        r#"{"username":"mallory","password":"alice-password"}"#,
        r#"{"username":"","password":""}"#,
    ] {
        let reply = send(&login, build(post(), body)).await;
        reply.error(401, "invalid_credentials");
        assert_eq!(reply.body["message"], "wrong user name or password");
        assert!(!reply.headers.contains_key("set-cookie"));
    }
}

#[tokio::test]
async fn malformed_bodies_are_400_and_large_ones_413() {
    let (login, users) = service(config());
    for body in [
        "{not json",
        "",
        "[]",
        r#"{"username":"alice"}"#,
        r#"{"username":"alice","password":null}"#,
        r#"{"username":"alice","password":1}"#,
        r#"{"username":"alice","username":"bob","password":"x"}"#,
    ] {
        send(&login, build(post(), body))
            .await
            .error(400, "invalid_request");
    }
    let big = format!(
        r#"{{"username":"alice","password":"{}"}}"#,
        "a".repeat(17 * 1024)
    );
    let reply = send(&login, build(post(), &big)).await;
    reply.error(413, "payload_too_large");
    assert_eq!(reply.headers["connection"], "close");
    // Announced too large: refused before reading.
    let req = post().header("content-length", "100000");
    send(&login, build(req, "{}"))
        .await
        .error(413, "payload_too_large");
    assert_eq!(users.calls.load(Ordering::SeqCst), 0);
}

/// A NUL in the user name is bad input: 400 before the attempt tracker or the credential check
/// sees it (no store keeps a NUL in a name: on PostgreSQL it was a 503 and a store alert).
#[tokio::test]
async fn a_nul_in_the_user_name_is_400_before_anything_counts_it() {
    let (login, users) = tracked(config());
    for body in [
        r#"{"username":"ali\u0000ce","password":"alice-password"}"#,
        r#"{"username":"\u0000","password":"x"}"#,
    ] {
        let reply = send(&login, from("198.51.100.66", body)).await;
        reply.error(400, "invalid_request");
        assert!(
            reply.body["message"].as_str().unwrap().contains("NUL"),
            "{}",
            reply.body
        );
    }
    assert_eq!(users.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn other_methods_and_paths() {
    let (login, _) = service(config());
    let req = Request::get("/api/auth/login")
        .body(Full::default())
        .unwrap();
    let reply = send(&login, req).await;
    reply.error(405, "method_not_allowed");
    assert_eq!(reply.headers["allow"], "POST");
    let req = build(post().uri("/api/auth/other"), GOOD);
    send(&login, req).await.error(404, "not_found");
    // Nested under axum's `nest_service`, the path arrives stripped.
    let req = build(post().uri("/"), GOOD);
    assert_eq!(send(&login, req).await.status, 200);
    // Another path.
    let moved = login.clone().path("/login/");
    let req = build(post().uri("/login"), GOOD);
    assert_eq!(send(&moved, req).await.status, 200);
}

#[tokio::test]
async fn a_failing_check_is_503_and_no_session() {
    let manager = SessionManager::new(config()).unwrap();
    let login = LoginService::new(&manager, |_c: Credentials| async {
        Err(io::Error::other("user database unreachable").into())
    });
    let reply = send(&login, build(post(), GOOD)).await;
    reply.error(503, "unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    assert!(!reply.headers.contains_key("set-cookie"));
    assert!(manager.sessions("alice").await.unwrap().is_empty());
}

/// Claims from the credential check reach the access token; claims the rules refuse are the
/// app's bug: 500 `internal_error` without their details, no token, no session.
#[tokio::test]
async fn claims_from_the_check_reach_the_token_and_refused_ones_are_500() {
    let manager = SessionManager::new(config()).unwrap();
    let login = LoginService::new(&manager, |c: Credentials| async move {
        let claims = match c.username.as_str() {
            "alice" => json!({ "tenant": "acme" }),
            _ => json!({ "sub": "root", "tenant": "acme" }),
        };
        Ok(Some(
            Authenticated::new(c.username, ["user"]).with_claims(&claims),
        ))
    });
    let reply = send(&login, build(post(), GOOD)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.body["data"]["accessToken"].as_str().unwrap();
    let session = manager.verify_access_token(token).await.unwrap();
    assert_eq!(
        session.claims::<Value>().unwrap(),
        json!({ "tenant": "acme" })
    );

    let body = r#"{"username":"mallory","password":"x"}"#;
    let reply = send(&login, build(post(), body)).await;
    reply.error(500, "internal_error");
    assert!(!reply.body.to_string().contains("root"), "{}", reply.body);
    assert!(reply.body["data"].is_null());
    assert!(!reply.headers.contains_key("set-cookie"));
    assert!(manager.sessions("mallory").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_deny_policy_refuses_a_login_over_the_limit_with_403() {
    let (login, _) = service(
        config().with_rules(
            tower_jwt_session::config::SessionRules::default()
                .with_max_sessions(1)
                .with_limit_policy(SessionLimitPolicy::Deny),
        ),
    );
    assert_eq!(send(&login, build(post(), GOOD)).await.status, 200);
    let reply = send(&login, build(post(), GOOD)).await;
    reply.error(403, "forbidden");
    assert!(!reply.headers.contains_key("set-cookie"));
}

/// The demo users of `common::app::check_password`, behind a user database that can be down.
#[derive(Clone, Default)]
struct FlakyUsers {
    down: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl CredentialCheck for FlakyUsers {
    type Error = io::Error;

    async fn check(&self, c: Credentials) -> Result<Option<Authenticated>, io::Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(io::Error::other("user database unreachable"));
        }
        Ok(common::app::check_password(c).await.ok().flatten())
    }
}

#[tokio::test]
async fn a_failing_check_does_not_count_as_a_failed_guess() {
    let users = FlakyUsers::default();
    let tracker = AttemptTracker::new(
        AttemptConfig::new().clock(Arc::new(ManualClock::new(1_800_000_000_000))),
    );
    let login = LoginService::new(&SessionManager::new(config()).unwrap(), users.clone())
        .attempt_tracker(tracker);
    let client = "198.51.100.20";
    let wrong = |user: &str| format!(r#"{{"username":"{user}","password":"guess"}}"#);
    let good = |user: &str| format!(r#"{{"username":"{user}","password":"{user}-password"}}"#);
    // The user database is down for 50 attempts from one client (more than the 5 per
    // user+client and the 20 per client that lock out), at alice and at other users.
    users.down.store(true, Ordering::SeqCst);
    for i in 0..50 {
        let user = if i % 2 == 0 {
            "alice".to_owned()
        } else {
            format!("user{i}")
        };
        let reply = send(&login, from(client, &good(&user))).await;
        reply.error(503, "unavailable");
    }
    // Back up: that client is not locked out, for alice or anyone.
    users.down.store(false, Ordering::SeqCst);
    let reply = send(&login, from(client, &good("alice"))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Wrong passwords still count, and an outage between them clears none of them.
    for _ in 0..4 {
        send(&login, from(client, &wrong("bob")))
            .await
            .error(401, "invalid_credentials");
    }
    users.down.store(true, Ordering::SeqCst);
    for _ in 0..10 {
        send(&login, from(client, &wrong("bob")))
            .await
            .error(503, "unavailable");
    }
    users.down.store(false, Ordering::SeqCst);
    send(&login, from(client, &wrong("bob")))
        .await
        .error(401, "invalid_credentials");
    send(&login, from(client, &good("bob")))
        .await
        .error(429, "rate_limited");
    // Another client is not affected.
    let reply = send(&login, from("203.0.113.9", &good("bob"))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn tracked(config: SessionConfig) -> (LoginService<Users>, Users) {
    let clock = ManualClock::new(1_800_000_000_000);
    let tracker = AttemptTracker::new(AttemptConfig::new().clock(Arc::new(clock)));
    let (login, users) = service(config);
    (login.attempt_tracker(tracker), users)
}

fn from(addr: &str, body: &str) -> Request<Full<Bytes>> {
    let mut req = build(post(), body);
    req.extensions_mut().insert(ClientIp(ip(addr)));
    req
}

#[tokio::test]
async fn guessing_locks_the_guesser_out_but_not_the_victims_other_client() {
    let (login, users) = tracked(config());
    let wrong = r#"{"username":"alice","password":"guess"}"#;
    for i in 0..5 {
        let reply = send(&login, from("198.51.100.66", wrong)).await;
        reply.error(401, "invalid_credentials");
        assert_eq!(users.calls.load(Ordering::SeqCst), i + 1);
    }
    // The guesser is refused before its guess is checked, even with the right password.
    for body in [wrong, GOOD] {
        let reply = send(&login, from("198.51.100.66", body)).await;
        reply.error(429, "rate_limited");
        assert!(reply.headers.contains_key("retry-after"));
    }
    assert_eq!(users.calls.load(Ordering::SeqCst), 5);
    // Alice, from her own machine, logs in.
    let reply = send(&login, from("203.0.113.7", GOOD)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn parallel_guesses_cannot_all_slip_past_the_reservation() {
    // A check that takes a while, so every request is in flight at once.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let slow = move |_c: Credentials| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<Option<Authenticated>, tower_jwt_session::login::CheckError>(None)
        }
    };
    let tracker = AttemptTracker::new(
        AttemptConfig::new().clock(Arc::new(ManualClock::new(1_800_000_000_000))),
    );
    let login =
        LoginService::new(&SessionManager::new(config()).unwrap(), slow).attempt_tracker(tracker);
    let wrong = r#"{"username":"alice","password":"guess"}"#;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let login = login.clone();
        tasks.spawn(async move { send(&login, from("198.51.100.66", wrong)).await.status });
    }
    let statuses = tasks.join_all().await;
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, 5, "only the reserved attempts are checked");
    assert_eq!(refused, 35);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn a_failed_logins_typed_name_is_logged_as_a_fingerprint_only() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests on other threads run without a subscriber; a callsite they reached first
    // may have cached "never" before this one was set. Ask every callsite again.
    tracing::callsite::rebuild_interest_cache();

    let (login, _) = service(config());
    let forged = format!(
        "mallory\n2026-01-01T00:00:00.000000Z  INFO login succeeded user_id=admin\x1b[31m{}",
        "x".repeat(200)
    );
    let body = json!({"username": forged, "password": "guess"}).to_string();
    send(&login, build(post(), &body))
        .await
        .error(401, "invalid_credentials");

    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("login failed"), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no terminal escape reaches the log: {out:?}"
    );
    assert!(
        !out.lines()
            .any(|l| l.contains("INFO login succeeded") && !l.contains("mallory")),
        "no forged line: {out}"
    );
    // The typed name of a failed login may be a password in the wrong field: only its
    // fingerprint is written.
    assert!(out.contains("user_fingerprint="), "{out}");
    assert!(
        !out.contains("mallory"),
        "the typed name is not logged: {out}"
    );
    assert!(!out.contains("guess"), "no password in the log: {out}");
}

/// A hung Redis (DEBUG SLEEP on a private redis-server) must not turn login into a password
/// oracle: a right and a wrong password get the same answer. With the attempts counted in that
/// Redis, no password is even checked (fail closed); with them in memory, the check runs but a
/// wrong password waits on the store as a right one does.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_hung_store_answers_right_and_wrong_passwords_alike() {
    use tower_jwt_session::config::RedisSettings;
    use tower_jwt_session::rate_limit::RedisAttemptBackend;
    use tower_jwt_session::store::RedisStore;

    const WRONG: &str = r#"{"username":"alice","password":"not-her-password"}"#;
    let started = common::redis_server::start_private();
    let settings = RedisSettings::new(started.urls.clone())
        .with_key_prefix(common::redis_server::unique_prefix("hung-login"))
        .with_timeout(Duration::from_millis(300));
    let store = RedisStore::connect(&settings).await.unwrap();
    let counted_in_redis = AttemptTracker::with_backend(
        AttemptConfig::new(),
        Arc::new(RedisAttemptBackend::new(store.connection())),
    );
    let manager = SessionManager::builder(config())
        .store(store)
        .build()
        .unwrap();
    let users = Users::default();
    let in_redis = LoginService::new(&manager, users.clone()).attempt_tracker(counted_in_redis);
    // The manager's own tracker is in Redis too now: an in-memory one, given explicitly.
    let in_memory =
        LoginService::new(&manager, users.clone()).attempt_tracker(AttemptTracker::default());
    assert_eq!(send(&in_redis, build(post(), GOOD)).await.status, 200);
    assert_eq!(send(&in_redis, build(post(), WRONG)).await.status, 401);

    let port = started.ports[0];
    let sleeper = std::thread::spawn(move || common::redis_server::command(port, "DEBUG SLEEP 4"));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let checked = users.calls.load(Ordering::SeqCst);
    let right = send(&in_redis, build(post(), GOOD)).await;
    let wrong = send(&in_redis, build(post(), WRONG)).await;
    right.error(503, "unavailable");
    assert_eq!((right.status, &right.body), (wrong.status, &wrong.body));
    assert_eq!(
        right.headers.get("retry-after"),
        wrong.headers.get("retry-after")
    );
    assert_eq!(
        users.calls.load(Ordering::SeqCst),
        checked,
        "no password is checked while attempts cannot be counted"
    );

    let right = send(&in_memory, build(post(), GOOD)).await;
    let wrong = send(&in_memory, build(post(), WRONG)).await;
    right.error(503, "unavailable");
    assert_eq!((right.status, &right.body), (wrong.status, &wrong.body));
    assert_eq!(users.calls.load(Ordering::SeqCst), checked + 2);
    sleeper.join().unwrap();
}

/// A login records the device: the label from the `User-Agent`, the address the rate limiter
/// resolved (else the peer's), kept as `SESSION_DEVICE_IP` says.
#[tokio::test]
async fn a_login_records_the_device_as_configured() {
    use tower_jwt_session::config::{DeviceIp, DeviceSettings};
    use tower_jwt_session::rate_limit::PeerAddr;
    const UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15";
    for (policy, want_ip) in [
        (None, Some("203.0.113.0/24")),
        (Some(DeviceIp::Full), Some("203.0.113.7")),
        (Some(DeviceIp::Off), None),
    ] {
        let mut config = config();
        if let Some(policy) = policy {
            config = config.with_device(DeviceSettings::default().with_ip(policy));
        }
        let manager = SessionManager::new(config).unwrap();
        let login = LoginService::new(&manager, Users::default());
        let reply = send(&login, build(post().header("user-agent", UA), GOOD)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let sessions = manager.sessions("alice").await.unwrap();
        assert_eq!(sessions[0].device.label(), "Safari on macOS");
        assert_eq!(sessions[0].device.ip(), want_ip, "{policy:?}");
    }
    // Without the rate limiter in front: the peer address; without a User-Agent: no label.
    let manager = SessionManager::new(config()).unwrap();
    let login = LoginService::new(&manager, Users::default());
    let req = Request::post("/api/auth/login")
        .header("host", "api.example.com")
        .header("content-type", "application/json")
        .extension(PeerAddr("[2001:db8:1:2::9]:4000".parse().unwrap()));
    let reply = send(&login, build(req, GOOD)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sessions = manager.sessions("alice").await.unwrap();
    assert_eq!(sessions[0].device.label(), "");
    assert_eq!(sessions[0].device.ip(), Some("2001:db8:1::/48"));
}

//! End-to-end: an axum app with `RateLimitLayer`, an `AttemptTracker` in its login handler and
//! a `RequireRole` route, served over TCP with `ConnectInfo` and driven with reqwest.
#![cfg(feature = "axum")]

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_jwt_session::{
    AttemptTracker, ClientIp, RateLimitConfig, RateLimitLayer, SessionConfig, SessionManager,
    require_role,
};

const SECRET: &str = "rate-limit-e2e-secret-rate-limit-e2e-secret";

#[derive(Clone)]
struct App {
    manager: SessionManager,
    attempts: AttemptTracker,
}

/// The login handler shape the example server uses: check, verify, record.
async fn login(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    Json(body): Json<Value>,
) -> Response {
    let user = body["username"].as_str().unwrap_or_default();
    let password = body["password"].as_str().unwrap_or_default();
    if let Err(locked) = app.attempts.check(Some(user), ip).await {
        return locked.into_response();
    }
    let roles = match (user, password) {
        ("alice", "alice-password") => vec!["user".to_owned()],
        ("admin", "admin-password") => vec!["user".to_owned(), "admin".to_owned()],
        _ => {
            app.attempts.record_failure(Some(user), ip).await;
            let body = json!({"success": false, "message": "wrong user name or password", "error": "invalid_credentials"});
            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        }
    };
    app.attempts.record_success(user).await;
    let pair = app.manager.create_session(user, &roles).await.unwrap();
    Json(json!({"success": true, "data": {"accessToken": pair.access_token, "clientIp": ip.to_string()}}))
        .into_response()
}

struct Server {
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn start(max_requests: u32) -> Self {
        let config = SessionConfig::new(SECRET)
            .unwrap()
            .rate_limit_max_requests(max_requests);
        let manager = SessionManager::new(config.clone()).unwrap();
        let app_state = App {
            manager: manager.clone(),
            attempts: AttemptTracker::default(),
        };
        let limit = RateLimitLayer::new(RateLimitConfig::from_session_config(&config));
        let limited = Router::new()
            .route("/api/auth/login", post(login))
            .nest_service("/api/token", manager.refresh_service())
            .layer(limit);
        let admin = Router::new()
            .route("/api/admin", get(|| async { "admin area" }))
            .route_layer(require_role("admin"))
            .route_layer(manager.layer());
        let app = Router::new()
            .route("/", get(|| async { "not limited" }))
            .merge(limited)
            .merge(admin)
            .with_state(app_state);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
        }
    }

    async fn login(&self, user: &str, password: &str, xff: Option<&str>) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({"username": user, "password": password}));
        if let Some(xff) = xff {
            req = req.header("x-forwarded-for", xff);
        }
        req.send().await.unwrap()
    }
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_limit_holds_over_http_and_spoofed_forwarded_for_does_not_help() {
    let s = Server::start(3).await;
    for (i, spoof) in [None, Some("1.2.3.4"), Some("5.6.7.8")]
        .into_iter()
        .enumerate()
    {
        let res = s.login("alice", "alice-password", spoof).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "ratelimit-limit"), "3");
        assert_eq!(header(&res, "ratelimit-remaining"), (2 - i).to_string());
        let reset: u64 = header(&res, "ratelimit-reset").parse().unwrap();
        assert!((899..=900).contains(&reset), "{reset}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["data"]["clientIp"], "127.0.0.1");
    }
    let res = s.login("alice", "alice-password", Some("9.9.9.9")).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((899..=900).contains(&retry), "{retry}");
    assert_eq!(header(&res, "ratelimit-remaining"), "0");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "rate_limited");

    // The token routes share the budget; routes outside the layer are not limited.
    let res = s
        .client
        .get(format!("{}/api/token/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let res = s.client.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("ratelimit-limit").is_none());
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_user_out() {
    let s = Server::start(100).await;
    for _ in 0..5 {
        let res = s.login("alice", "wrong", None).await;
        assert_eq!(res.status(), 401);
    }
    // Even the right password is refused during the lock-out.
    let res = s.login("alice", "alice-password", None).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((899..=900).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // Another user from the same address is not locked.
    let res = s.login("admin", "admin-password", None).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn require_role_over_http() {
    let s = Server::start(100).await;
    let token = |res: Value| res["data"]["accessToken"].as_str().unwrap().to_owned();
    let alice = token(
        s.login("alice", "alice-password", None)
            .await
            .json()
            .await
            .unwrap(),
    );
    let admin = token(
        s.login("admin", "admin-password", None)
            .await
            .json()
            .await
            .unwrap(),
    );
    let url = format!("{}/api/admin", s.base);

    let res = s.client.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "admin area");

    let res = s.client.get(&url).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        header(&res, "www-authenticate"),
        r#"Bearer realm="api", error="insufficient_scope", error_description="the admin role is required""#
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");

    let res = s.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

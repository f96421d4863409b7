//! End-to-end: an axum app with `ClientRateLimitLayer`, an `AttemptTracker` in its own login
//! handler and on its token routes, and a `require_role` route, driven in process (`oneshot`,
//! through the client of `tests/common/app.rs`, which gives each request its peer address as
//! `ConnectInfo`). "Another client" is a request from another loopback address (127.0.0.2).
#![cfg(feature = "axum")]

use crate::common;

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::app::{Client, Response as Reply};
use serde_json::{Value, json};
use tower_jwt_session::{
    SessionConfig, SessionLayer, SessionManager,
    layer::{ClientRateLimitLayer, require_role},
    rate_limit::{AttemptTracker, ClientIp, RateLimitConfig},
    routes::TokenRoutes,
};

#[derive(Clone)]
struct App {
    manager: SessionManager,
    attempts: AttemptTracker,
}

/// A login handler on the tracker: reserve, wait the delay, verify, then release or keep.
async fn login(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    Json(body): Json<Value>,
) -> Response {
    let user = body["username"].as_str().unwrap_or_default();
    let password = body["password"].as_str().unwrap_or_default();
    let attempt = match app.attempts.begin_login(user, ip).await {
        Ok(attempt) => attempt,
        Err(locked) => return locked.into_response(),
    };
    tokio::time::sleep(attempt.delay()).await;
    let roles = match (user, password) {
        ("alice", "alice-password") => vec!["user".to_owned()],
        ("admin", "admin-password") => vec!["user".to_owned(), "admin".to_owned()],
        _ => {
            app.attempts.login_failed(attempt).await;
            let body = json!({"success": false, "message": "wrong user name or password", "error": "invalid_credentials"});
            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        }
    };
    app.attempts.login_succeeded(attempt).await;
    let pair = app
        .manager
        .create_session(tower_jwt_session::manager::NewSession::new(user).roles(&roles))
        .await
        .unwrap();
    Json(json!({"success": true, "data": {"accessToken": pair.access_token, "refreshToken": pair.refresh_token, "clientIp": ip.to_string()}}))
        .into_response()
}

struct Server {
    base: String,
    client: Client,
    /// A client on another loopback address: another client IP for the server.
    other: Client,
}

impl Server {
    async fn start(max_requests: u32) -> Self {
        let config = SessionConfig::new(common::SECRET).unwrap();
        let manager = SessionManager::new(config.clone()).unwrap();
        let attempts = AttemptTracker::default();
        let app_state = App {
            manager: manager.clone(),
            attempts: attempts.clone(),
        };
        let limit = ClientRateLimitLayer::new(RateLimitConfig::new().max_requests(max_requests));
        let limited = Router::new()
            .route("/api/auth/login", post(login))
            .nest_service(
                "/api/token",
                TokenRoutes::new(&manager).attempt_tracker(attempts),
            )
            .layer(limit);
        let admin = Router::new()
            .route("/api/admin", get(|| async { "admin area" }))
            .route_layer(require_role("admin"))
            .route_layer(SessionLayer::from_manager(&manager));
        let app = Router::new()
            .route("/", get(|| async { "not limited" }))
            .merge(limited)
            .merge(admin)
            .with_state(app_state);

        let client = Client::new(app);
        Self {
            base: "http://127.0.0.1:3000".to_owned(),
            other: client.with_address(IpAddr::from([127, 0, 0, 2])),
            client,
        }
    }

    async fn login(&self, user: &str, password: &str, xff: Option<&str>) -> Reply {
        self.login_from(&self.client, user, password, xff).await
    }

    async fn login_from(
        &self,
        client: &Client,
        user: &str,
        password: &str,
        xff: Option<&str>,
    ) -> Reply {
        let mut req = client
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({"username": user, "password": password}));
        if let Some(xff) = xff {
            req = req.header("x-forwarded-for", xff);
        }
        req.send().await.unwrap()
    }

    /// POSTs `body` to a token route; the status and the `error` code.
    async fn token_route(&self, route: &str, body: Value) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}/api/token/{route}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }
}

/// Logs `user` in from 127.0.0.1: (access token, refresh token).
async fn session(s: &Server, user: &str) -> (String, String) {
    let res = s.login(user, &format!("{user}-password"), None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let data = &body["data"];
    (
        data["accessToken"].as_str().unwrap().to_owned(),
        data["refreshToken"].as_str().unwrap().to_owned(),
    )
}

fn header(res: &Reply, name: &str) -> String {
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

    // The token routes share the budget (health excepted); routes outside the layer are not
    // limited.
    let (status, body) = s.token_route("validate", json!({"accessToken": "x"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited"))
    );
    let res = s
        .client
        .get(format!("{}/api/token/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = s.client.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("ratelimit-limit").is_none());
}

#[tokio::test]
async fn repeated_failed_logins_lock_that_client_out_never_the_user() {
    let s = Server::start(1000).await;
    for _ in 0..5 {
        let res = s.login("alice", "wrong", None).await;
        assert_eq!(res.status(), 401);
    }
    // The guessing client is refused for alice, even with the right password…
    let res = s.login("alice", "alice-password", None).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((899..=900).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // … but alice from another client is not, however often the attacker fails.
    for _ in 0..10 {
        let res = s
            .login_from(&s.other, "alice", "alice-password", None)
            .await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["data"]["clientIp"], "127.0.0.2");
        assert_eq!(s.login("alice", "wrong-again", None).await.status(), 429);
    }
    // Another user from the guessing client is not locked.
    let res = s.login("admin", "admin-password", None).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn parallel_guesses_get_exactly_the_limit_through() {
    let s = Server::start(1000).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (client, url) = (s.client.clone(), format!("{}/api/auth/login", s.base));
        set.spawn(async move {
            let body = json!({"username": "alice", "password": format!("guess-{i}")});
            client.post(url).json(&body).send().await.unwrap().status()
        });
    }
    let statuses = set.join_all().await;
    let wrong = statuses.iter().filter(|s| s.as_u16() == 401).count();
    let refused = statuses.iter().filter(|s| s.as_u16() == 429).count();
    assert_eq!((wrong, refused), (5, 45), "{statuses:?}");
}

#[tokio::test]
async fn forged_refresh_tokens_are_counted_on_every_refresh_route_until_429() {
    let s = Server::start(1000).await;
    let (access, refresh) = session(&s, "alice").await;
    // A valid refresh is never counted: thirty rotations.
    let mut refresh = refresh;
    for _ in 0..30 {
        let (status, body) = s
            .token_route("refresh", json!({"refreshToken": refresh}))
            .await;
        assert_eq!(status, 200, "{body}");
        refresh = body["data"]["refreshToken"].as_str().unwrap().to_owned();
    }
    // A MAC that does not verify, and tokens that do not parse, on /refresh…
    let forged = format!("{}AAAA", &refresh[..refresh.len() - 4]);
    for token in [forged.as_str(), "tjs1.x", "not-a-token", access.as_str()] {
        for _ in 0..2 {
            let (status, body) = s
                .token_route("refresh", json!({"refreshToken": token}))
                .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("invalid_token"))
            );
        }
    }
    // … and on /auto-refresh, with a valid access token and with an invalid one (which alone
    // is not a failed refresh).
    for access in [access.as_str(), "not-an-access-token"] {
        for token in [forged.as_str(), "tjs1.x", "not-a-token"] {
            for _ in 0..2 {
                let (status, body) = s
                    .token_route(
                        "auto-refresh",
                        json!({"accessToken": access, "refreshToken": token}),
                    )
                    .await;
                assert_eq!(
                    (status, body["error"].as_str()),
                    (401, Some("invalid_token"))
                );
            }
        }
    }
    // 8 + 12 = 20: the address is now refused on both routes, even with a valid token…
    for (route, body) in [
        ("refresh", json!({"refreshToken": refresh})),
        (
            "auto-refresh",
            json!({"accessToken": "x", "refreshToken": refresh}),
        ),
    ] {
        let (status, body) = s.token_route(route, body).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (429, Some("rate_limited")),
            "{route}"
        );
    }
    // … but its logins are a separate bucket.
    session(&s, "admin").await;
}

#[tokio::test]
async fn an_invalid_access_token_on_auto_refresh_is_not_a_failed_refresh() {
    let s = Server::start(1000).await;
    let (_, mut refresh) = session(&s, "alice").await;
    for _ in 0..30 {
        let (status, body) = s
            .token_route(
                "auto-refresh",
                json!({"accessToken": "not-an-access-token", "refreshToken": refresh}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["refreshed"], true);
        refresh = body["data"]["refreshToken"].as_str().unwrap().to_owned();
    }
}

#[tokio::test]
async fn revoked_refresh_tokens_after_logout_do_not_lock_the_address() {
    let s = Server::start(1000).await;
    let (access, refresh) = session(&s, "alice").await;
    let res = s
        .client
        .post(format!("{}/api/token/logout", s.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A stale tab keeps trying its refresh token, on both routes.
    for i in 0..30 {
        let (route, body) = if i % 2 == 0 {
            ("refresh", json!({"refreshToken": refresh}))
        } else {
            (
                "auto-refresh",
                json!({"accessToken": access, "refreshToken": refresh}),
            )
        };
        let (status, body) = s.token_route(route, body).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("token_revoked")),
            "{i}"
        );
    }
    // The address may still log in and refresh.
    let (_, refresh) = session(&s, "alice").await;
    let (status, body) = s
        .token_route("refresh", json!({"refreshToken": refresh}))
        .await;
    assert_eq!(status, 200, "{body}");
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

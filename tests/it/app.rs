//! In process (`oneshot` on the library's router, `tests/common/app.rs`): every route and
//! error code of SPEC §5, the session limit, the rate limit and the lock-out. What only the
//! example does is in `tests/example.rs`, over real HTTP.
#![cfg(feature = "axum")]

use crate::common;
use crate::common::Harness as _;

use std::time::Duration;

use common::app::{App, read};
use common::assert_error;
use serde_json::json;

#[tokio::test]
async fn login_and_me() {
    let s = App::start(&[]);
    let res = s
        .client
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("tjs_refresh=tjs1."), "{cookie}");
    for attr in [
        "Path=/api/token",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let (status, body) = read(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    let data = &body["data"];
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

    let (status, me) = s
        .get_auth("/api/me", data["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["userId"], "alice");
    assert_eq!(me["data"]["sessionId"], data["sessionId"]);
    assert_eq!(me["data"]["roles"], json!(["user"]));
}

#[tokio::test]
async fn login_errors() {
    let s = App::start(&[]);
    let (status, body) = s
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": "wrong"}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = s
        .post(
            "/api/auth/login",
            json!({"username": "mallory", "password": "mallory-password"}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = s
        .post("/api/auth/login", json!({"username": "alice"}))
        .await;
    assert_error(status, &body, 400, "invalid_request");
    let res = s
        .client
        .post(s.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 400, "invalid_request");
    // What a cross-site `<form enctype="text/plain">` sends: refused before it is read.
    let res = s
        .client
        .post(s.url("/api/auth/login"))
        .header("content-type", "text/plain")
        .body(r#"{"username":"alice","password":"alice-password","x":"="}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 415, "unsupported_media_type");
    // JSON from a page on another origin: refused, no cookie.
    let res = s
        .client
        .post(s.url("/api/auth/login"))
        .header("origin", "https://evil.example")
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("set-cookie").is_none());
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "forbidden");
    // The demo page's own origin is fine.
    let res = s
        .client
        .post(s.url("/api/auth/login"))
        .header("origin", s.base.as_str())
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn protected_route_refusals_follow_rfc6750() {
    let s = App::start(&[]);
    let res = s.client.get(s.url("/api/me")).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
    let (status, body) = read(res).await;
    assert_error(status, &body, 401, "invalid_token");

    let res = s
        .client
        .get(s.url("/api/me"))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let (status, body) = read(res).await;
    assert_error(status, &body, 401, "invalid_token");

    // A token in the query string is ignored.
    let data = s.login("bob").await;
    let token = data["accessToken"].as_str().unwrap();
    let res = s
        .client
        .get(s.url(&format!("/api/me?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Two Authorization headers.
    let res = s
        .client
        .get(s.url("/api/me"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 400, "invalid_request");
}

#[tokio::test]
async fn refresh_rotates_and_detects_reuse() {
    let s = App::start(&[]);
    let login = s.login("alice").await;
    let rt0 = login["refreshToken"].as_str().unwrap().to_owned();

    let (status, body) = s
        .post("/api/token/refresh", json!({"refreshToken": rt0}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Token refreshed successfully");
    let rt1 = body["data"]["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt0);
    assert_eq!(body["data"]["sessionId"], login["sessionId"]);
    let at1 = body["data"]["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(s.get_auth("/api/me", &at1).await.0, 200);

    // A lost response: the parent again, within 10 s, yields the same successor.
    let (status, again) = s
        .post("/api/token/refresh", json!({"refreshToken": rt0}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["data"]["refreshToken"], rt1.as_str());

    let (_, body) = s
        .post("/api/token/refresh", json!({"refreshToken": rt1}))
        .await;
    let rt2 = body["data"]["refreshToken"].as_str().unwrap().to_owned();

    // The grandparent is theft: 401 refresh_token_reused, and the whole session ends.
    let (status, body) = s
        .post("/api/token/refresh", json!({"refreshToken": rt0}))
        .await;
    assert_error(status, &body, 401, "refresh_token_reused");
    let (status, body) = s
        .post("/api/token/refresh", json!({"refreshToken": rt2}))
        .await;
    assert_error(status, &body, 401, "token_revoked");
    let (status, body) = s.get_auth("/api/me", &at1).await;
    assert_error(status, &body, 401, "token_revoked");
}

#[tokio::test]
async fn refresh_errors() {
    let s = App::start(&[]);
    let (status, body) = s.post("/api/token/refresh", json!({})).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = s
        .post("/api/token/refresh", json!({"refreshToken": 12}))
        .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = s
        .post("/api/token/refresh", json!({"refreshToken": "forged"}))
        .await;
    assert_error(status, &body, 401, "invalid_token");
    let res = s
        .client
        .post(s.url("/api/token/refresh"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"refreshToken":"{}"}}"#, "a".repeat(20_000)))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 413, "payload_too_large");
    let res = s
        .client
        .get(s.url("/api/token/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let res = s.client.get(s.url("/api/token/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn refresh_through_the_cookie_needs_csrf_proof() {
    let s = App::start(&[]);
    let login = s.login("alice").await;
    let cookie = format!("tjs_refresh={}", login["refreshToken"].as_str().unwrap());

    let res = s
        .client
        .post(s.url("/api/token/refresh"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "forbidden");

    let res = s
        .client
        .post(s.url("/api/token/refresh"))
        .header("cookie", &cookie)
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    // The refresh token travels only in the HttpOnly cookie, never in the body.
    assert!(body["data"].get("refreshToken").is_none(), "{body}");
    assert!(body["data"]["accessToken"].is_string());
    assert!(set_cookie.starts_with("tjs_refresh=tjs1.") && set_cookie.contains("HttpOnly"));
}

#[tokio::test]
async fn validate_and_auto_refresh() {
    let s = App::start(&[
        ("JWT_ACCESS_TOKEN_EXPIRY", "4s"),
        ("JWT_AUTO_REFRESH_THRESHOLD", "2s"),
        ("JWT_LEEWAY", "0s"),
    ]);
    let login = s.login("alice").await;
    let at = login["accessToken"].as_str().unwrap();
    let rt = login["refreshToken"].as_str().unwrap();

    let (status, body) = s
        .post("/api/token/validate", json!({"accessToken": at}))
        .await;
    assert_eq!(status, 200);
    let d = &body["data"];
    assert_eq!(
        (
            d["isValid"].clone(),
            d["isExpired"].clone(),
            d["needsRefresh"].clone()
        ),
        (json!(true), json!(false), json!(false))
    );
    assert_eq!(d["userId"], "alice");
    assert!(d["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert!(d["timeUntilExpiry"].as_u64().unwrap() <= 4_000);

    let (status, body) = s
        .post("/api/token/validate", json!({"accessToken": "garbage"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["isValid"], false);
    assert_eq!(body["data"]["isExpired"], false);
    let (status, body) = s.post("/api/token/validate", json!({})).await;
    assert_error(status, &body, 400, "invalid_request");

    // Fresh: no refresh.
    let (status, body) = s
        .post(
            "/api/token/auto-refresh",
            json!({"accessToken": at, "refreshToken": rt}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["refreshed"], false);
    assert_eq!(body["data"]["accessToken"], at);

    // Within the threshold: the hint headers appear, and auto-refresh refreshes.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let res = s
        .client
        .get(s.url("/api/me"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-token-refresh"], "true");
    let left: u64 = res.headers()["x-token-expires-in"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(left <= 2, "{left}");
    let (status, body) = s
        .post(
            "/api/token/auto-refresh",
            json!({"accessToken": at, "refreshToken": rt}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["refreshed"], true);
    assert_ne!(body["data"]["accessToken"], at);
    assert_ne!(body["data"]["refreshToken"], rt);

    // Expired: validate says so.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (_, body) = s
        .post("/api/token/validate", json!({"accessToken": at}))
        .await;
    assert_eq!(body["data"]["isValid"], false);
    assert_eq!(body["data"]["isExpired"], true);
    assert_eq!(body["data"]["needsRefresh"], true);
    let (status, body) = s.get_auth("/api/me", at).await;
    assert_error(status, &body, 401, "token_expired");
}

#[tokio::test]
async fn refresh_token_and_session_expiry() {
    let s = App::start(&[
        ("JWT_ACCESS_TOKEN_EXPIRY", "2s"),
        ("JWT_LEEWAY", "0s"),
        ("JWT_AUTO_REFRESH_THRESHOLD", "1s"),
        ("JWT_REFRESH_TOKEN_EXPIRY", "1s"),
        ("JWT_SESSION_EXPIRY", "3s"),
    ]);
    let expiring = s.login("alice").await;
    let session = s.login("bob").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, body) = s
        .post(
            "/api/token/refresh",
            json!({"refreshToken": session["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut rt = body["data"]["refreshToken"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = s
        .post(
            "/api/token/refresh",
            json!({"refreshToken": expiring["refreshToken"]}),
        )
        .await;
    assert_error(status, &body, 401, "token_expired");

    // Keep refreshing bob's session until its absolute end: then session_expired.
    let mut last = None;
    for _ in 0..10 {
        let (status, body) = s
            .post("/api/token/refresh", json!({"refreshToken": rt}))
            .await;
        if status != 200 {
            last = Some((status, body));
            break;
        }
        rt = body["data"]["refreshToken"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = last.expect("the session ended");
    assert_error(status, &body, 401, "session_expired");
}

#[tokio::test]
async fn session_stats_health_and_logout() {
    let s = App::start(&[]);
    let a1 = s.login("alice").await;
    let a2 = s.login("alice").await;
    let bob = s.login("bob").await;
    let admin = s.login("admin").await;
    let at = a1["accessToken"].as_str().unwrap();

    let (status, body) = s.get_auth("/api/token/session-stats/alice", at).await;
    assert_eq!(status, 200, "{body}");
    let d = &body["data"];
    assert_eq!(d["userId"], "alice");
    assert_eq!(d["activeSessions"], 2);
    assert_eq!(d["maxSessions"], 10);
    let sessions = d["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    for entry in sessions {
        for field in ["sessionId", "createdAt", "lastRefreshedAt", "expiresAt"] {
            assert!(entry[field].is_string(), "{field} in {entry}");
        }
        assert_eq!(entry["current"], entry["sessionId"] == a1["sessionId"]);
    }

    let (status, body) = s
        .get_auth(
            "/api/token/session-stats/alice",
            bob["accessToken"].as_str().unwrap(),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = s
        .get_auth(
            "/api/token/session-stats/alice",
            admin["accessToken"].as_str().unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let res = s
        .client
        .get(s.url("/api/token/session-stats/alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let (status, body) = s.get("/api/token/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({"status": "ok", "store": "memory"}));

    // Logout ends this session only.
    let res = s
        .client
        .post(s.url("/api/token/logout"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, body) = read(res).await;
    assert_eq!((status, body["data"].clone()), (200, json!({})));
    let (status, body) = s.get_auth("/api/me", at).await;
    assert_error(status, &body, 401, "token_revoked");
    let a2_token = a2["accessToken"].as_str().unwrap();
    assert_eq!(s.get_auth("/api/me", a2_token).await.0, 200);
    let (status, body) = s.post_auth("/api/token/logout", at).await;
    assert_error(status, &body, 401, "token_revoked");

    // Logout-all ends every session of the caller, and nobody else's.
    let a3 = s.login("alice").await;
    let (status, body) = s.post_auth("/api/token/logout-all", a2_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["revoked"], 2);
    assert_eq!(
        s.get_auth("/api/me", a3["accessToken"].as_str().unwrap())
            .await
            .0,
        401
    );
    assert_eq!(
        s.get_auth("/api/me", bob["accessToken"].as_str().unwrap())
            .await
            .0,
        200
    );
    let res = s
        .client
        .post(s.url("/api/token/logout-all"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn session_limit_evicts_the_oldest() {
    let s = App::start(&[("JWT_MAX_CONCURRENT_SESSIONS", "2")]);
    let first = s.login("alice").await;
    let _second = s.login("alice").await;
    let third = s.login("alice").await;
    let (status, body) = s
        .get_auth("/api/me", first["accessToken"].as_str().unwrap())
        .await;
    assert_error(status, &body, 401, "token_revoked");
    assert_eq!(
        s.get_auth("/api/me", third["accessToken"].as_str().unwrap())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn session_limit_can_deny() {
    let s = App::start(&[
        ("JWT_MAX_CONCURRENT_SESSIONS", "1"),
        ("JWT_SESSION_LIMIT_POLICY", "deny"),
    ]);
    s.login("alice").await;
    let (status, body) = s
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": "alice-password"}),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn health_probes_are_never_rate_limited() {
    let s = App::start(&[("RATE_LIMIT_MAX_REQUESTS", "5")]);
    for i in 0..300 {
        let res = s
            .client
            .get(s.url("/api/token/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "probe {i}");
        assert!(res.headers().get("ratelimit-limit").is_none());
    }
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, _) = s
            .post("/api/token/validate", json!({"accessToken": "x"}))
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn auth_and_token_routes_are_rate_limited_per_ip() {
    let s = App::start(&[
        ("RATE_LIMIT_MAX_REQUESTS", "3"),
        ("RATE_LIMIT_WINDOW_MS", "60000"),
    ]);
    let login = s.login("alice").await;
    let token = login["accessToken"].as_str().unwrap();
    for remaining in ["1", "0"] {
        let res = s
            .client
            .post(s.url("/api/token/validate"))
            .json(&json!({"accessToken": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["ratelimit-limit"], "3");
        assert_eq!(res.headers()["ratelimit-remaining"], remaining);
    }
    let res = s
        .client
        .post(s.url("/api/token/validate"))
        .json(&json!({"accessToken": "x"}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(res.headers().contains_key("ratelimit-reset"));
    let (status, body) = read(res).await;
    assert_error(status, &body, 429, "rate_limited");
    // A spoofed X-Forwarded-For from an untrusted peer does not buy a new budget.
    let res = s
        .client
        .post(s.url("/api/token/validate"))
        .json(&json!({"accessToken": "x"}))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    // Protected application routes are not behind this limit, nor is the health check.
    assert_eq!(s.get_auth("/api/me", token).await.0, 200);
    assert_eq!(s.get("/api/token/health").await.0, 200);
}

#[tokio::test]
async fn repeated_failed_logins_lock_that_client_out_never_the_account() {
    let s = App::start(&[]);
    for _ in 0..5 {
        let (status, body) = s
            .post(
                "/api/auth/login",
                json!({"username": "bob", "password": "guess"}),
            )
            .await;
        assert_error(status, &body, 401, "invalid_credentials");
    }
    // The guessing client (127.0.0.1) is refused for bob, even with the right password…
    let res = s
        .client
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": "bob", "password": "bob-password"}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((899..=900).contains(&retry_after), "{retry_after}");
    let (status, body) = read(res).await;
    assert_error(status, &body, 429, "rate_limited");
    // … but bob on his own machine (another loopback address) is not: failures from one
    // client never refuse another client's correct password (issue 12, defect 3).
    let bobs_machine = s.client.with_address([127, 0, 0, 2]);
    let res = bobs_machine
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": "bob", "password": "bob-password"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["userId"], "bob");
    // Other users from the guessing client are not locked out either.
    s.login("alice").await;
}

#[tokio::test]
async fn auto_refresh_refuses_a_refresh_token_of_another_session() {
    let s = App::start(&[]);
    let mine = s.login("alice").await;
    let theirs = s.login("bob").await;
    for refresh in [json!("garbage"), theirs["refreshToken"].clone()] {
        let (status, body) = s
            .post(
                "/api/token/auto-refresh",
                json!({"accessToken": mine["accessToken"], "refreshToken": refresh}),
            )
            .await;
        assert_error(status, &body, 401, "invalid_token");
    }
}

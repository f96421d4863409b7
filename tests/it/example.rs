//! End-to-end: the example server (`examples/server.rs`) as a process over real HTTP, for
//! what only a real process and socket show: startup and its environment variables, one full
//! login → refresh → logout round trip through the example's own argon2 check, `/metrics` on
//! its own listener, the security headers and CORS, the demo page, and graceful shutdown.
//!
//! Every route and error code of the protocol is tested in process in `app.rs`; store outages
//! and several instances in `redis.rs`.
#![cfg(feature = "axum")]

use crate::common;
use crate::common::Harness as _;

use std::time::Duration;

use common::{Server, assert_error};
use serde_json::json;

#[tokio::test]
async fn login_refresh_and_logout_round_trip() {
    let s = Server::start(&[]);
    let login = s.login("alice").await;
    let token = login["accessToken"].as_str().unwrap();
    let (status, me) = s.get_auth("/api/me", token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["userId"], "alice");
    assert_eq!(me["data"]["roles"], json!(["user"]));
    assert_eq!(me["data"]["tenant"], "acme");

    let (status, body) = s
        .post(
            "/api/token/refresh",
            json!({"refreshToken": login["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["sessionId"], login["sessionId"]);
    let refreshed = body["data"]["accessToken"].as_str().unwrap();
    let successor = &body["data"]["refreshToken"];
    let (status, me) = s.get_auth("/api/me", refreshed).await;
    assert_eq!(
        (status, &me["data"]["tenant"]),
        (200, &json!("acme")),
        "carried over"
    );
    let admin = s.login("admin").await;
    let (_, me) = s
        .get_auth("/api/me", admin["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(me["data"]["tenant"], "ops");

    let (status, out) = s.post_auth("/api/token/logout", refreshed).await;
    assert_eq!((status, out["data"].clone()), (200, json!({})));
    let (status, me) = s.get_auth("/api/me", refreshed).await;
    assert_error(status, &me, 401, "token_revoked");
    let (status, again) = s
        .post("/api/token/refresh", json!({"refreshToken": successor}))
        .await;
    assert_error(status, &again, 401, "token_revoked");
    // A wrong password goes through the same argon2 check.
    let (status, body) = s
        .post(
            "/api/auth/login",
            json!({"username": "alice", "password": "wrong"}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
}

#[tokio::test]
async fn a_bad_configuration_stops_the_server_with_a_clear_message() {
    let output = common::run_to_exit(&[("JWT_SECRET", "too-short")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("JWT_SECRET") && stderr.contains("32 bytes"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("too-short"),
        "the secret is not echoed: {stderr}"
    );
}

#[tokio::test]
async fn the_demo_page_and_client_are_served() {
    let s = Server::start(&[]);
    for (path, kind) in [
        ("/", "text/html"),
        ("/client/token-manager.js", "text/javascript"),
    ] {
        let res = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let s = Server::start(&[]);
    let login = s.login("alice").await;
    let token = login["accessToken"].as_str().unwrap();
    assert_eq!(s.get_auth("/api/me", token).await.0, 200);
    assert_eq!(s.get_auth("/api/me", "bogus").await.0, 401);
    let (status, _) = s
        .post(
            "/api/token/refresh",
            json!({"refreshToken": login["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .post("/api/token/refresh", json!({"refreshToken": "tjs1.x"}))
        .await;
    assert_eq!(status, 401);

    // Never on the public port (issue 12, defect 5) ...
    let res = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    // ... but on the listener of METRICS_ADDR, a loopback address of its own.
    let metrics = s
        .metrics
        .as_deref()
        .expect("a `metrics on` line at startup");
    assert!(metrics.starts_with("http://127.0.0.1:"), "{metrics}");
    assert!(metrics.ends_with("/metrics"), "{metrics}");
    assert!(!metrics.starts_with(&format!("{}/", s.base)), "{metrics}");
    let res = s.client.get(metrics).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for line in [
        "tjs_sessions_created_total 1",
        "tjs_token_validations_total{outcome=\"valid\"} 1",
        "tjs_token_validations_total{outcome=\"invalid_token\"} 1",
        "tjs_refresh_total{outcome=\"success\"} 1",
        "tjs_refresh_total{outcome=\"invalid_token\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert!(text.contains("tjs_store_operation_seconds"), "{text}");
    assert!(text.contains("tjs_sessions_held 1"), "{text}");
}

#[tokio::test]
async fn metrics_addr_off_serves_no_metrics_and_a_bad_one_is_refused() {
    let s = Server::start(&[("METRICS_ADDR", "off")]);
    assert_eq!(s.metrics, None);
    let res = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(s.login("alice").await["userId"], "alice");

    let out = common::run_to_exit(&[("METRICS_ADDR", "0.0.0.0")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("METRICS_ADDR=\"0.0.0.0\"") && stderr.contains("IP:PORT"),
        "{stderr}"
    );
}

#[tokio::test]
async fn security_headers_and_cors_for_allowed_origins_only() {
    let s = Server::start(&[("ALLOWED_ORIGINS", "https://app.example.com")]);
    let res = s.client.get(s.url("/")).send().await.unwrap();
    let h = res.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(
        h.get("strict-transport-security").is_none(),
        "HSTS only behind HTTPS"
    );

    // Preflight from the allowed origin; the refresh hints are readable by its scripts.
    let res = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/token/refresh"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-requested-with",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let login = s.login("alice").await;
    let res = s
        .client
        .get(s.url("/api/me"))
        .header("origin", "https://app.example.com")
        .bearer_auth(login["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-token-refresh"), "{exposed}");

    // Another origin gets no CORS grant.
    let res = s
        .client
        .get(s.url("/api/token/health"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // And the same list lets cookie-only refresh through by Origin.
    let res = s
        .client
        .post(s.url("/api/token/refresh"))
        .header("origin", "https://app.example.com")
        .header(
            "cookie",
            format!("tjs_refresh={}", login["refreshToken"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    use std::io::{Read, Write};
    let mut s = Server::start(&[]);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let body = r#"{"username":"alice","password":"alice-password"}"#;
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // Half the body is on the wire when the server is told to stop: the request is in flight.
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    stream.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("accessToken"));
    assert!(
        s.wait_exit(Duration::from_secs(5)),
        "the server exits once idle"
    );
    // New connections are refused after shutdown.
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

/// The example's step-up: `/api/account/security` needs a password check within
/// `SESSION_STEP_UP_MAX_AGE`; a re-authentication through the example's own argon2 check
/// meets it on the same session. The demo page carries the dialog that asks for it.
#[tokio::test]
async fn the_security_page_asks_for_a_recent_password_and_reauthentication_meets_it() {
    // auth_time is in whole seconds: up to a second older than the login, so 3 s, not 1.
    let s = Server::start(&[("SESSION_STEP_UP_MAX_AGE", "3s")]);
    let login = s.login("alice").await;
    let token = login["accessToken"].as_str().unwrap();
    let (status, body) = s.get_auth("/api/account/security", token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["amr"], json!(["pwd"]));
    tokio::time::sleep(Duration::from_millis(4_100)).await;
    let res = s
        .client
        .get(s.url("/api/account/security"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"api\", error=\"insufficient_user_authentication\", \
         error_description=\"a more recent authentication is required\", max_age=3"
    );
    let (status, body) = common::read(res).await;
    assert_error(status, &body, 401, "insufficient_user_authentication");

    let res = s
        .client
        .post(s.url("/api/auth/reauthenticate"))
        .bearer_auth(token)
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    let (status, body) = common::read(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["sessionId"], login["sessionId"]);
    let fresh = body["data"]["accessToken"].as_str().unwrap();
    let (status, body) = s.get_auth("/api/account/security", fresh).await;
    assert_eq!(status, 200, "{body}");

    // A bad value is refused at startup, naming the variable.
    let out = common::run_to_exit(&[("SESSION_STEP_UP_MAX_AGE", "soon")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SESSION_STEP_UP_MAX_AGE"));

    let page = s
        .client
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("stepup-dialog") && page.contains("Confirm your password"));
}

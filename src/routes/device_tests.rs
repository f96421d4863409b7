//! The devices routes (`DELETE sessions/{id}`, `logout-others`) and the device fields of
//! session stats: the rules on the memory store, and on Redis across two instances; and a
//! refresh racing the end of its session.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::SessionConfig;
use crate::session::SessionId;
use crate::store::DeviceInfo;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// `method path` with a bearer token: the status, the headers and the JSON body.
async fn send(
    service: &TokenRoutes,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let res = service.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

fn assert_error(got: (StatusCode, HeaderMap, Value), status: u16, code: &str) {
    let (got_status, _, body) = got;
    assert_eq!(got_status, status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn device(label: &str, ip: &str) -> DeviceInfo {
    DeviceInfo::new(label, Some(ip))
}

/// Polls until `manager` refuses `token` as revoked, for at most a second (every
/// instance within one second; the Redis push takes milliseconds).
async fn refused_within_a_second(manager: &SessionManager, token: &str) {
    let start = Instant::now();
    loop {
        match manager.verify_access_token(token).await {
            Err(AuthError::Revoked) => return,
            other => assert!(
                start.elapsed() < Duration::from_secs(1),
                "still accepted after a second: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The rules, with `a` and `b` two instances on one store (the same one twice for memory).
async fn devices_rules(a: &SessionManager, b: &SessionManager) {
    let (ra, rb) = (TokenRoutes::new(a), TokenRoutes::new(b));
    let user = format!("alice-{}", SessionId::random());
    let laptop = a
        .create_session(
            crate::manager::NewSession::new(&user)
                .roles(&["user"])
                .device(device("Firefox on Linux", "203.0.113.0/24")),
        )
        .await
        .unwrap();
    let phone = b
        .create_session(
            crate::manager::NewSession::new(&user)
                .roles(&["user"])
                .device(device("Safari on iOS", "198.51.100.0/24")),
        )
        .await
        .unwrap();
    let tablet = b
        .create_session(crate::manager::NewSession::new(&user).roles(&["user"]))
        .await
        .unwrap();
    let bob = b
        .create_session(
            crate::manager::NewSession::new(format!("bob-{}", SessionId::random()))
                .roles(&["user"]),
        )
        .await
        .unwrap();
    let admin = a
        .create_session(
            crate::manager::NewSession::new(format!("admin-{}", SessionId::random()))
                .roles(&["user", "admin"]),
        )
        .await
        .unwrap();
    // Every instance has seen (and cached as active) every session.
    for pair in [&laptop, &phone, &tablet, &bob] {
        a.verify_access_token(&pair.access_token).await.unwrap();
        b.verify_access_token(&pair.access_token).await.unwrap();
    }

    // Stats: device, address as stored, last activity; the caller's row marked.
    let stats_path = format!("/api/token/session-stats/{user}");
    let (status, _, stats) = send(&ra, Method::GET, &stats_path, Some(&laptop.access_token)).await;
    assert_eq!(status, 200, "{stats}");
    let rows = stats["data"]["sessions"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    // Sessions made in one millisecond are listed in no particular order: look each up.
    let row = |pair: &TokenPair| {
        rows.iter()
            .find(|r| r["sessionId"] == pair.session_id.to_string())
            .unwrap_or_else(|| panic!("{stats}"))
    };
    assert_eq!(row(&laptop)["device"], "Firefox on Linux");
    assert_eq!(row(&laptop)["ip"], "203.0.113.0/24");
    assert_eq!(row(&laptop)["current"], true);
    assert_eq!(row(&phone)["device"], "Safari on iOS");
    assert_eq!(row(&phone)["current"], false);
    assert_eq!(row(&tablet)["device"], "");
    assert_eq!(row(&tablet)["ip"], Value::Null);
    assert_eq!(row(&tablet)["current"], false);
    for row in rows {
        assert!(
            row["lastActiveAt"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{row}"
        );
    }

    // Another user's session, an unknown one and a malformed id: the same 404.
    let end = |id: &str| format!("/api/token/sessions/{id}");
    for id in [
        bob.session_id.to_string(),
        admin.session_id.to_string(),
        SessionId::random().to_string(),
        "not-an-id".to_owned(),
        "%00".to_owned(),
    ] {
        assert_error(
            send(&ra, Method::DELETE, &end(&id), Some(&laptop.access_token)).await,
            404,
            "not_found",
        );
    }
    a.verify_access_token(&bob.access_token).await.unwrap();
    b.verify_access_token(&admin.access_token).await.unwrap();
    // No token: 401; another method: 405; no id: 404.
    assert_error(
        send(
            &ra,
            Method::DELETE,
            &end(&phone.session_id.to_string()),
            None,
        )
        .await,
        401,
        "invalid_token",
    );
    let (status, headers, _) = send(
        &ra,
        Method::GET,
        &end(&phone.session_id.to_string()),
        Some(&laptop.access_token),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[ALLOW], "DELETE");
    assert_error(
        send(
            &ra,
            Method::DELETE,
            "/api/token/sessions/",
            Some(&laptop.access_token),
        )
        .await,
        404,
        "not_found",
    );
    let listed = a.sessions(&user).await.unwrap();
    assert_eq!(listed.len(), 3, "nothing refused ended anything");

    // One of the caller's own, ended on a: refused on b at once, its refresh token too.
    let (status, headers, body) = send(
        &ra,
        Method::DELETE,
        &end(&phone.session_id.to_string()),
        Some(&laptop.access_token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert!(
        headers.get(SET_COOKIE).is_none(),
        "not the caller's own session"
    );
    refused_within_a_second(b, &phone.access_token).await;
    assert!(matches!(
        b.refresh(&phone.refresh_token).await,
        Err(SessionError::Revoked)
    ));
    assert_error(
        send(
            &rb,
            Method::DELETE,
            &end(&phone.session_id.to_string()),
            Some(&laptop.access_token),
        )
        .await,
        404,
        "not_found",
    );
    a.verify_access_token(&laptop.access_token).await.unwrap();

    // An administrator ends anyone's.
    let (status, _, body) = send(
        &rb,
        Method::DELETE,
        &end(&bob.session_id.to_string()),
        Some(&admin.access_token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    refused_within_a_second(a, &bob.access_token).await;
    assert_error(
        send(
            &rb,
            Method::DELETE,
            &end(&bob.session_id.to_string()),
            Some(&admin.access_token),
        )
        .await,
        404,
        "not_found",
    );

    // Logout-others on b: the tablet ends everywhere, the caller's session stays.
    let fresh = a.refresh(&laptop.refresh_token).await.unwrap();
    let (status, _, body) = send(
        &rb,
        Method::POST,
        "/api/token/logout-others",
        Some(&fresh.access_token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["revoked"], 1, "{body}");
    refused_within_a_second(a, &tablet.access_token).await;
    a.verify_access_token(&fresh.access_token).await.unwrap();
    b.verify_access_token(&fresh.access_token).await.unwrap();
    assert!(a.refresh(&fresh.refresh_token).await.is_ok());
    let (status, _, stats) = send(&rb, Method::GET, &stats_path, Some(&fresh.access_token)).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["data"]["activeSessions"], 1);
    assert_eq!(stats["data"]["sessions"][0]["current"], true);
    let (_, _, again) = send(
        &ra,
        Method::POST,
        "/api/token/logout-others",
        Some(&fresh.access_token),
    )
    .await;
    assert_eq!(again["data"]["revoked"], 0, "{again}");
    assert_error(
        send(&ra, Method::POST, "/api/token/logout-others", None).await,
        401,
        "invalid_token",
    );

    // Ending one's own current session is a logout: the cookie is cleared too.
    let (status, headers, _) = send(
        &ra,
        Method::DELETE,
        &end(&laptop.session_id.to_string()),
        Some(&fresh.access_token),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get(SET_COOKIE).is_some());
    refused_within_a_second(b, &fresh.access_token).await;
}

/// The end of a session racing its refresh: whichever wins, once both have answered the
/// session is over everywhere, and whatever the refresh handed out is refused.
async fn ending_races_refresh(a: &SessionManager, b: &SessionManager) {
    let user = format!("race-{}", SessionId::random());
    let keep = a
        .create_session(crate::manager::NewSession::new(&user).roles(&["user"]))
        .await
        .unwrap();
    let keeper = a.verify_access_token(&keep.access_token).await.unwrap();
    for round in 0..24 {
        let pair = b
            .create_session(crate::manager::NewSession::new(&user).roles(&["user"]))
            .await
            .unwrap();
        let (ender, refresher) = if round % 2 == 0 { (a, b) } else { (b, a) };
        let refresh = {
            let refresher = refresher.clone();
            let token = pair.refresh_token.clone();
            tokio::spawn(async move { refresher.refresh(&token).await })
        };
        let end = {
            let (ender, keeper, user) = (ender.clone(), keeper.clone(), user.clone());
            let sid = pair.session_id;
            tokio::spawn(async move {
                if round % 4 < 2 {
                    ender
                        .revoke(crate::manager::Revoke::OwnSession(&user, sid))
                        .await
                } else {
                    ender.revoke(crate::manager::Revoke::Others(&keeper)).await
                }
            })
        };
        let refreshed = refresh.await.unwrap();
        assert_eq!(end.await.unwrap().unwrap(), 1, "round {round}");
        for manager in [a, b] {
            refused_within_a_second(manager, &pair.access_token).await;
            if let Ok(next) = &refreshed {
                refused_within_a_second(manager, &next.access_token).await;
                assert!(manager.refresh(&next.refresh_token).await.is_err());
            }
            assert!(manager.refresh(&pair.refresh_token).await.is_err());
        }
        let live = a.sessions(&user).await.unwrap();
        assert_eq!(
            live.len(),
            1,
            "round {round}: only the kept session is live"
        );
    }
    a.verify_access_token(&keep.access_token).await.unwrap();
}

fn memory_manager() -> SessionManager {
    SessionManager::new(SessionConfig::new(SECRET).unwrap()).unwrap()
}

#[tokio::test]
async fn the_devices_routes_follow_their_rules_on_memory() {
    let m = memory_manager();
    devices_rules(&m, &m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ending_a_session_racing_its_refresh_never_resurrects_it_on_memory() {
    let m = memory_manager();
    ending_races_refresh(&m, &m).await;
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crate::config::RedisSettings;
    use crate::store::RedisStore;
    use crate::store::redis::redis_server;

    /// Two managers (two instances) on one Redis prefix, sealed or not.
    async fn two_instances(sealed: bool) -> (SessionManager, SessionManager) {
        let url = redis_server::single().urls[0].clone();
        let prefix = redis_server::unique_prefix("devices");
        let mut settings = RedisSettings::new([url]).with_key_prefix(&prefix);
        if sealed {
            settings = settings
                .with_encryption_key(&[7u8; 32])
                .expect("a 32-byte key");
        }
        let config = SessionConfig::new(SECRET)
            .unwrap()
            .with_redis(settings.clone());
        let mut managers = Vec::new();
        for _ in 0..2 {
            let store = RedisStore::connect(&settings).await.unwrap();
            managers.push(
                SessionManager::builder(config.clone())
                    .store(store)
                    .build()
                    .unwrap(),
            );
        }
        let b = managers.pop().unwrap();
        (managers.pop().unwrap(), b)
    }

    #[tokio::test]
    async fn the_devices_routes_follow_their_rules_across_two_redis_instances() {
        let (a, b) = two_instances(false).await;
        devices_rules(&a, &b).await;
    }

    #[tokio::test]
    async fn the_devices_routes_follow_their_rules_across_two_sealed_redis_instances() {
        let (a, b) = two_instances(true).await;
        devices_rules(&a, &b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ending_a_session_racing_its_refresh_never_resurrects_it_on_redis() {
        let (a, b) = two_instances(false).await;
        ending_races_refresh(&a, &b).await;
        let (a, b) = two_instances(true).await;
        ending_races_refresh(&a, &b).await;
    }
}

//! Several example-server instances on one Redis, as behind a load balancer without sticky
//! sessions; and what happens when Redis goes away and comes back.
#![cfg(feature = "redis")]

use crate::common;
use crate::common::Harness as _;

use std::time::{Duration, Instant};

use common::redis_server;
use common::{Server, assert_error};
use serde_json::json;

fn instance(redis_url: &str, prefix: &str, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("REDIS_URL", redis_url), ("REDIS_KEY_PREFIX", prefix)];
    env.extend_from_slice(extra);
    Server::start(&env)
}

fn pair(extra: &[(&str, &str)]) -> (Server, Server) {
    let url = redis_server::single().urls[0].clone();
    let prefix = redis_server::unique_prefix("e2e");
    (
        instance(&url, &prefix, extra),
        instance(&url, &prefix, extra),
    )
}

#[tokio::test]
async fn a_session_made_on_one_instance_works_on_the_other() {
    let (a, b) = pair(&[]);
    let (status, health) = b.post("/api/token/health", json!({})).await;
    assert_eq!(status, 405, "{health}");
    let (_, refreshed) = common::a_session_crosses_instances(&a, &b, "redis").await;
    let next = refreshed["accessToken"].as_str().unwrap();
    assert_eq!(a.get_auth("/api/me", next).await.0, 200);

    // Session stats see sessions made on both instances.
    b.login("alice").await;
    let (status, stats) = a.get_auth("/api/token/session-stats/alice", next).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["data"]["activeSessions"], 2);
}

#[tokio::test]
async fn a_logout_on_one_instance_is_enforced_on_the_other_within_the_bound() {
    let (a, b) = pair(&[]);
    common::a_logout_reaches_the_other_instance(&a, &b, "").await;
}

#[tokio::test]
async fn concurrent_refreshes_split_across_instances_agree_on_one_successor() {
    let (a, b) = pair(&[]);
    let login = a.login("alice").await;
    let token = login["refreshToken"].as_str().unwrap().to_owned();
    let servers = [&a, &b];
    let requests = (0..32).map(|i| {
        let server = servers[i % 2];
        let token = token.clone();
        async move {
            server
                .post("/api/token/refresh", json!({"refreshToken": token}))
                .await
        }
    });
    let results = futures_join_all(requests).await;
    let mut successors = std::collections::HashSet::new();
    for (status, body) in results {
        assert_eq!(status, 200, "{body}");
        successors.insert(body["data"]["refreshToken"].as_str().unwrap().to_owned());
    }
    assert_eq!(successors.len(), 1, "{successors:?}");
    let successor = successors.into_iter().next().unwrap();
    let (status, body) = b
        .post("/api/token/refresh", json!({"refreshToken": successor}))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Runs the futures concurrently on this task (no extra dependency for `join_all`).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut pending = handles;
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(out) => outputs[i] = Some(out),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("completed")).collect()
}

#[tokio::test]
async fn redis_down_means_503_and_nobody_wrongly_let_in_then_recovery() {
    let mut redis = redis_server::start_private();
    let url = redis.urls[0].clone();
    let s = instance(&url, "fault", &[("JWT_MAX_CONCURRENT_SESSIONS", "100")]);

    let kept = s.login("alice").await;
    let kept_token = kept["accessToken"].as_str().unwrap().to_owned();
    let revoked = s.login("alice").await;
    let revoked_token = revoked["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(
        s.post_auth("/api/token/logout", &revoked_token).await.0,
        200
    );

    redis.stop();
    // Past the cache's 1 s lifetime for "active", every answer needs Redis.
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    let (status, body) = s
        .post(
            "/api/auth/login",
            json!({"username": "bob", "password": "bob-password"}),
        )
        .await;
    assert_error(status, &body, 503, "unavailable");
    let (status, body) = s
        .post(
            "/api/token/refresh",
            json!({"refreshToken": kept["refreshToken"]}),
        )
        .await;
    assert_error(status, &body, 503, "unavailable");
    let (status, body) = s.get("/api/token/health").await;
    assert_error(status, &body, 503, "unavailable");
    // Fail closed on a cache miss; the revoked session stays refused.
    let (status, body) = s.get_auth("/api/me", &kept_token).await;
    assert_error(status, &body, 503, "unavailable");
    let (status, _) = s.get_auth("/api/me", &revoked_token).await;
    assert_ne!(
        status, 200,
        "a revoked session was let in while Redis was down"
    );

    // Redis comes back (empty, as after a crash without persistence): no restart needed.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = s
            .client
            .get(s.url("/api/token/health"))
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the instance did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = s.login("bob").await;
    assert_eq!(
        s.get_auth("/api/me", fresh["accessToken"].as_str().unwrap())
            .await
            .0,
        200
    );
    // Sessions that Redis lost are refused, never silently accepted.
    let (status, body) = s.get_auth("/api/me", &kept_token).await;
    assert_error(status, &body, 401, "token_revoked");
}

#[tokio::test]
async fn the_cluster_serves_two_instances_too() {
    let urls = redis_server::cluster().urls.join(",");
    let prefix = redis_server::unique_prefix("cluster-e2e");
    let a = instance(&urls, &prefix, &[]);
    let b = instance(&urls, &prefix, &[]);
    let login = a.login("admin").await;
    let (status, refreshed) = b
        .post(
            "/api/token/refresh",
            json!({"refreshToken": login["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let token = refreshed["data"]["accessToken"].as_str().unwrap();
    assert_eq!(a.get_auth("/api/me", token).await.0, 200);
    assert_eq!(b.post_auth("/api/token/logout-all", token).await.0, 200);
    let start = Instant::now();
    while a.get_auth("/api/me", token).await.0 != 401 {
        assert!(start.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_rate_limit_and_lock_outs_hold_across_instances() {
    let limited = pair(&[
        ("RATE_LIMIT_MAX_REQUESTS", "4"),
        ("RATE_LIMIT_WINDOW_MS", "60000"),
    ]);
    let (a, b) = pair(&[]);
    common::the_limits_hold_across_instances((&limited.0, &limited.1), (&a, &b)).await;
}

/// A Redis that evicts keys when full can delete a logout: the server refuses to start on it,
/// naming the variable that accepts it; with that variable it starts, and health says
/// `degraded` with the reason code alone (no memory size, no policy: the route is public).
#[tokio::test]
async fn an_evicting_redis_is_refused_at_startup_unless_accepted() {
    let redis = redis_server::start_private();
    let port = redis.ports[0];
    assert_eq!(
        redis_server::command(port, "CONFIG SET maxmemory 100mb"),
        "+OK"
    );
    assert_eq!(
        redis_server::command(port, "CONFIG SET maxmemory-policy allkeys-lru"),
        "+OK"
    );
    let url = redis.urls[0].clone();
    let prefix = redis_server::unique_prefix("evicting");
    let out = common::run_expecting_exit(
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_KEY_PREFIX", prefix.as_str()),
        ],
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started on an evicting Redis: {stderr}"
    );
    assert!(stderr.contains("REDIS_ALLOW_EVICTION"), "{stderr}");
    assert!(stderr.contains("allkeys-lru"), "{stderr}");

    let s = instance(&url, &prefix, &[("REDIS_ALLOW_EVICTION", "true")]);
    let (status, health) = s.get("/api/token/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        health["data"],
        json!({"status": "degraded", "store": "redis", "warnings": ["store_evicts_keys"]})
    );
    let text = health.to_string();
    assert!(
        !text.contains("allkeys") && !text.contains("104857600"),
        "{text}"
    );
}

/// Health on a Redis Cluster answers 200 when every slot range answers (it used to read the
/// cluster's per-node `INFO` reply as one string, and answer 503 on every cluster).
#[tokio::test]
async fn health_is_ok_on_a_healthy_cluster() {
    let urls = redis_server::cluster().urls.join(",");
    let prefix = redis_server::unique_prefix("cluster-health");
    let s = instance(&urls, &prefix, &[]);
    let (status, health) = s.get("/api/token/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"], json!({"status": "ok", "store": "redis"}));
}

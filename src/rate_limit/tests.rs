use crate::layer::ClientRateLimitLayer;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::client_ip::X_FORWARDED_FOR;
use super::*;
use crate::clock::ManualClock;
use crate::guard::ResponseBody;

const T0: u64 = 1_800_000_000_000;

fn config(max: u32, window_secs: u64) -> (RateLimitConfig, ManualClock) {
    let clock = ManualClock::new(T0);
    let config = RateLimitConfig::new()
        .window(Duration::from_secs(window_secs))
        .max_requests(max)
        .clock(Arc::new(clock.clone()))
        .trusted_proxies(["10.0.0.0/8".parse().unwrap()])
        .unwrap();
    (config, clock)
}

fn layer(max: u32, window_secs: u64) -> (ClientRateLimitLayer, ManualClock) {
    let (config, clock) = config(max, window_secs);
    (ClientRateLimitLayer::new(config), clock)
}

/// An inner service that answers with the client address it was given, and counts its calls.
fn echo(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let ip = req
            .extensions()
            .get::<ClientIp>()
            .map(|c| c.to_string())
            .unwrap_or_default();
        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(ip)))) }
    })
}

fn from(peer: &str, xff: &[&str]) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::default());
    let peer: SocketAddr = format!("{peer}:40000")
        .parse()
        .unwrap_or_else(|_| format!("[{peer}]:40000").parse().expect("an IP address"));
    req.extensions_mut().insert(PeerAddr(peer));
    for v in xff {
        req.headers_mut()
            .append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
    }
    req
}

fn headers<B>(res: &Response<B>) -> (String, String, String) {
    let h = |name: &HeaderName| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (
        h(&RATELIMIT_LIMIT),
        h(&RATELIMIT_REMAINING),
        h(&RATELIMIT_RESET),
    )
}

fn triple(limit: u32, remaining: u32, reset: u64) -> (String, String, String) {
    (limit.to_string(), remaining.to_string(), reset.to_string())
}

async fn body(res: Response<ResponseBody<Full<Bytes>>>) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

async fn send<S>(svc: &mut S, req: Request<Full<Bytes>>) -> Response<ResponseBody<Full<Bytes>>>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResponseBody<Full<Bytes>>>>,
    S::Error: std::fmt::Debug,
{
    svc.ready().await.unwrap().call(req).await.unwrap()
}

#[tokio::test]
async fn the_limit_is_reached_and_resets_with_exact_headers() {
    the_limit_is_reached_and_resets_with_exact_headers_on(layer(3, 60)).await;
}

/// The same through the layer on the PostgreSQL backend, which counts on the layer's clock.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_limit_is_reached_and_resets_with_exact_headers_on_postgres() {
    use crate::config::PostgresSettings;
    use crate::store::PostgresStore;
    use crate::store::postgres::pg_server::TestDb;
    let db = TestDb::create().await;
    let store = PostgresStore::connect(&PostgresSettings::new(&db.url))
        .await
        .expect("connect to the test PostgreSQL");
    let (config, clock) = config(3, 60);
    let backend = Arc::new(PostgresRateLimitBackend::new(store.connection()));
    the_limit_is_reached_and_resets_with_exact_headers_on((
        ClientRateLimitLayer::with_backend(config, backend),
        clock,
    ))
    .await;
}

async fn the_limit_is_reached_and_resets_with_exact_headers_on(
    (layer, clock): (ClientRateLimitLayer, ManualClock),
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(echo(calls.clone()));

    let res = send(&mut svc, from("203.0.113.7", &[])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(headers(&res), triple(3, 2, 60));
    assert_eq!(&body(res).await[..], b"203.0.113.7");

    clock.advance(Duration::from_millis(10_500));
    let res = send(&mut svc, from("203.0.113.7", &[])).await;
    assert_eq!(headers(&res), triple(3, 1, 50), "49.5 s round up to 50");
    let res = send(&mut svc, from("203.0.113.7", &[])).await;
    assert_eq!(
        (res.status(), headers(&res)),
        (StatusCode::OK, triple(3, 0, 50))
    );

    clock.advance(Duration::from_secs(20));
    let res = send(&mut svc, from("203.0.113.7", &[])).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers(&res), triple(3, 0, 30));
    assert_eq!(res.headers()[header::RETRY_AFTER], "30");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a refusal never reaches the inner service"
    );

    // Another client has its own budget.
    let res = send(&mut svc, from("198.51.100.1", &[])).await;
    assert_eq!(headers(&res), triple(3, 2, 60));

    // At the end of the window the budget is full again.
    clock.advance(Duration::from_millis(29_499));
    let res = send(&mut svc, from("203.0.113.7", &[])).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    clock.advance(Duration::from_millis(1));
    let res = send(&mut svc, from("203.0.113.7", &[])).await;
    assert_eq!(
        (res.status(), headers(&res)),
        (StatusCode::OK, triple(3, 2, 60))
    );
}

#[tokio::test]
async fn the_429_answer() {
    let (layer, _) = layer(1, 900);
    let mut svc = layer.layer(echo(Arc::default()));
    send(&mut svc, from("203.0.113.7", &[])).await;
    let res = send(&mut svc, from("203.0.113.7", &[])).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "900");
    assert_eq!(headers(&res), triple(1, 0, 900));
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let decision = *res.extensions().get::<RateDecision>().unwrap();
    assert!(!decision.allowed);
    let json: serde_json::Value = serde_json::from_slice(&body(res).await).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "success": false,
            "message": "too many requests; try again in 900 seconds",
            "error": "rate_limited",
        })
    );
}

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key() {
    let (layer, _) = layer(2, 60);
    let mut svc = layer.layer(echo(Arc::default()));
    let mut remaining = Vec::new();
    for spoof in ["1.1.1.1", "2.2.2.2, 10.0.0.1", "3.3.3.3"] {
        let res = send(&mut svc, from("203.0.113.7", &[spoof])).await;
        remaining.push((res.status(), headers(&res).1));
        if res.status() == StatusCode::OK {
            assert_eq!(&body(res).await[..], b"203.0.113.7");
        }
    }
    assert_eq!(
        remaining,
        [
            (StatusCode::OK, "1".to_owned()),
            (StatusCode::OK, "0".to_owned()),
            (StatusCode::TOO_MANY_REQUESTS, "0".to_owned()),
        ]
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_chain_the_client_is_the_right_most_untrusted_hop() {
    let (layer, _) = layer(1, 60);
    let mut svc = layer.layer(echo(Arc::default()));
    // The client claims 6.6.6.6; the edge proxy 10.0.0.2 appends the real address; the inner
    // proxy 10.0.0.3 (our peer) appends the edge proxy.
    let chain = ["6.6.6.6, 198.51.100.4", "10.0.0.2"];
    let res = send(&mut svc, from("10.0.0.3", &chain)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(&body(res).await[..], b"198.51.100.4");
    // The same client through the same proxies, claiming something else: same key.
    let res = send(
        &mut svc,
        from("10.0.0.3", &["7.7.7.7, 198.51.100.4, 10.0.0.2"]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client through the same proxies: its own budget.
    let res = send(&mut svc, from("10.0.0.3", &["198.51.100.5, 10.0.0.2"])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(&body(res).await[..], b"198.51.100.5");
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64() {
    let (layer, _) = layer(1, 60);
    let mut svc = layer.layer(echo(Arc::default()));
    let res = send(&mut svc, from("2001:db8:1:2::1", &[])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        &body(res).await[..],
        b"2001:db8:1:2::1",
        "ClientIp keeps the address"
    );
    let res = send(&mut svc, from("2001:db8:1:2:ffff::9", &[])).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = send(&mut svc, from("2001:db8:1:3::1", &[])).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn no_peer_address_is_a_500_never_a_shared_bucket() {
    let (layer, _) = layer(100, 60);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(echo(calls.clone()));
    let mut req = Request::new(Full::default());
    req.headers_mut()
        .insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
    let res = send(&mut svc, req).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get(RATELIMIT_LIMIT).is_none());
    let json: serde_json::Value = serde_json::from_slice(&body(res).await).unwrap();
    assert_eq!(json["success"], false);
    // A wiring mistake: the code agrees with the 500 (it said `unavailable`, a 503's code).
    assert_eq!(json["error"], "internal_error");
    let message = json["message"].as_str().unwrap();
    assert!(
        message.contains("no peer address") && message.contains("PeerAddr"),
        "{message}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_connect_info_is_a_peer_address() {
    let (layer, _) = layer(1, 60);
    let mut svc = layer.layer(echo(Arc::default()));
    let mut req = Request::new(Full::default());
    let peer: SocketAddr = "203.0.113.9:1234".parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let res = send(&mut svc, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(&body(res).await[..], b"203.0.113.9");
}

/// A backend that must be awaited, or that fails.
#[derive(Debug)]
struct Remote {
    inner: MemoryBackend,
    fail: bool,
}

#[async_trait::async_trait]
impl RateLimitBackend for Remote {
    async fn hit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        max: u32,
    ) -> Result<RateDecision, BackendError> {
        tokio::task::yield_now().await;
        if self.fail {
            return Err(BackendError::new("connection refused"));
        }
        Ok(self.inner.hit_now(key, now_ms, window, max))
    }
}

#[tokio::test]
async fn an_awaited_backend_is_obeyed_and_a_failing_one_fails_open() {
    let clock = ManualClock::new(T0);
    let config = RateLimitConfig::new()
        .window(Duration::from_secs(60))
        .max_requests(1)
        .clock(Arc::new(clock));
    let remote = Arc::new(Remote {
        inner: MemoryBackend::new(10),
        fail: false,
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc =
        ClientRateLimitLayer::with_backend(config.clone(), remote).layer(echo(calls.clone()));
    let res = send(&mut svc, from("203.0.113.7", &[])).await;
    assert_eq!(
        (res.status(), headers(&res)),
        (StatusCode::OK, triple(1, 0, 60))
    );
    let res = send(&mut svc, from("203.0.113.7", &[])).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let failing = Arc::new(Remote {
        inner: MemoryBackend::new(10),
        fail: true,
    });
    let mut svc = ClientRateLimitLayer::with_backend(config, failing).layer(echo(calls.clone()));
    for _ in 0..3 {
        let res = send(&mut svc, from("203.0.113.7", &[])).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().get(RATELIMIT_LIMIT).is_none());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn memory_stays_bounded_with_many_distinct_clients() {
    let clock = ManualClock::new(T0);
    let backend = Arc::new(MemoryBackend::new(1_000));
    let config = RateLimitConfig::new()
        .window(Duration::from_millis(300))
        .max_requests(5)
        .clock(Arc::new(clock));
    let mut svc =
        ClientRateLimitLayer::with_backend(config, backend.clone()).layer(echo(Arc::default()));
    for i in 0..20_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0xc633_0000 + i));
        let res = send(&mut svc, from(&ip.to_string(), &[])).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    backend.run_pending_tasks();
    let held = backend.entry_count();
    assert!(held <= 1_000, "{held} entries for a bound of 1000");
    // moka's timer wheel works in ticks of about one second.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while backend.entry_count() != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        backend.run_pending_tasks();
    }
    assert_eq!(backend.entry_count(), 0, "expired with their window");
}

#[test]
fn the_layer_and_its_service_are_cheap_to_clone_and_send() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>(_: &T) {}
    let (layer, _) = layer(1, 1);
    assert_send_sync_clone(&layer);
    let svc = layer.layer(echo(Arc::default()));
    assert_send_sync_clone(&svc);
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&svc.clone().oneshot(from("203.0.113.7", &[])));
}

fn to(path: &str, peer: &str) -> Request<Full<Bytes>> {
    let mut req = from(peer, &[]);
    *req.uri_mut() = path.parse().unwrap();
    req
}

#[tokio::test]
async fn health_probes_are_never_limited_nor_counted() {
    let (layer, _) = layer(100, 60);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(echo(calls.clone()));

    // A load balancer probing from one address, far beyond the budget.
    for i in 0..300 {
        let res = send(&mut svc, to("/api/token/health", "10.9.9.9")).await;
        assert_eq!(res.status(), StatusCode::OK, "probe {i}");
        assert!(res.headers().get(RATELIMIT_LIMIT).is_none(), "not counted");
        assert_eq!(
            &body(res).await[..],
            b"10.9.9.9",
            "the client IP is still resolved"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 300);

    // The probes drew nothing from that address's budget; other routes are limited as ever.
    for i in 0..100 {
        let res = send(&mut svc, to("/api/token/refresh", "10.9.9.9")).await;
        assert_eq!(res.status(), StatusCode::OK, "request {i}");
    }
    for path in [
        "/api/token/refresh",
        "/api/auth/login",
        "/api/token/health/",
        "/health",
    ] {
        let res = send(&mut svc, to(path, "10.9.9.9")).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    let res = send(&mut svc, to("/api/token/health?deep=1", "10.9.9.9")).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the query is not part of the path"
    );
    // A probe without a peer address is not the wiring mistake a counted request would be.
    let mut req = Request::new(Full::default());
    *req.uri_mut() = "/api/token/health".parse().unwrap();
    assert_eq!(send(&mut svc, req).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_exemption_list_is_the_users() {
    let clock = ManualClock::new(T0);
    let config = RateLimitConfig::new()
        .max_requests(1)
        .clock(Arc::new(clock))
        .exempt_paths(["/health"]);
    let mut svc = ClientRateLimitLayer::new(config).layer(echo(Arc::default()));
    for _ in 0..5 {
        let res = send(&mut svc, to("/health", "203.0.113.7")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = send(&mut svc, to("/api/token/health", "203.0.113.7")).await;
    assert_eq!(res.status(), StatusCode::OK, "the first counted request");
    let res = send(&mut svc, to("/api/token/health", "203.0.113.7")).await;
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the list replaces the default"
    );
}

/// The shape of the module docs and of the example: one layer around the login route and the
/// nested token routes, the real `TokenRoutes` behind it.
#[cfg(feature = "axum")]
#[tokio::test]
async fn health_through_an_axum_router_with_the_token_routes_nested() {
    use axum::Router;
    use axum::routing::post;

    let config = crate::SessionConfig::new("0123456789abcdef0123456789abcdef").unwrap();
    let manager = crate::SessionManager::new(config.clone()).unwrap();
    let app = Router::new()
        .route("/api/auth/login", post(|| async { "logged in" }))
        .nest_service("/api/token", crate::routes::TokenRoutes::new(&manager))
        .layer(ClientRateLimitLayer::new(RateLimitConfig::new()));
    let request = |method: &str, path: &str| {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from("{}"))
            .unwrap();
        req.extensions_mut()
            .insert(PeerAddr("198.51.100.20:5555".parse().unwrap()));
        req
    };
    for i in 0..300 {
        let res = app
            .clone()
            .oneshot(request("GET", "/api/token/health"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "probe {i}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["data"]["status"], "ok", "{body}");
    }
    let mut statuses = Vec::new();
    for _ in 0..101 {
        let res = app
            .clone()
            .oneshot(request("POST", "/api/token/validate"))
            .await
            .unwrap();
        statuses.push(res.status());
    }
    assert!(
        statuses[..100]
            .iter()
            .all(|s| *s != StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(statuses[100], StatusCode::TOO_MANY_REQUESTS);
    let res = app
        .clone()
        .oneshot(request("POST", "/api/auth/login"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = app
        .oneshot(request("GET", "/api/token/health"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "still healthy when limited");
}

//! Per-request cost of the same HS256 check through tower-jwt-session and its peers, and the
//! cost of the session operations, in one run (issue 7).
//!
//! ```text
//! cd bench && cargo bench --bench peers            # or: bash bench/run.sh (everything)
//! ```
//!
//! Every layer is driven as a tower service with a pre-built request and a trivial inner
//! service, polled once with a no-op waker (no runtime): each of them is ready at once.
//!
//! Besides criterion's own report, an interleaved pass times the layers in alternation (round
//! after round, the same pre-built requests) and writes the medians to
//! `$TJS_RESULTS/interleaved.json`: on a shared machine, a slow minute then hits every contender
//! alike instead of whichever criterion happened to be measuring.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion};
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Layer, Service, service_fn};

use tjs_bench::{AsyncJwtCheck, Claims, JwtCheck, SECRET, session_config, validate_fn};
use tower_jwt_session::{
    SessionManager,
    layer::ClientRateLimitLayer,
    rate_limit::{PeerAddr, RateLimitConfig},
};

/// Polls a future that is expected to be ready at once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("this path should not wait"),
    }
}

type Req = Request<Empty<Bytes>>;

fn request(bearer: &str) -> Req {
    let mut req = Request::builder()
        .uri("/api/me")
        .header("authorization", bearer)
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    req
}

fn results_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("TJS_RESULTS")
        .map(Into::into)
        .unwrap_or_else(|| std::path::PathBuf::from("target/results"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A contender of the interleaved pass: handles one pre-built request.
type Contender<'a> = (&'static str, Box<dyn FnMut(Req) -> u16 + 'a>);

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let manager = SessionManager::new(session_config()).unwrap();
    let pair = rt
        .block_on(
            manager.create_session(
                tower_jwt_session::manager::NewSession::new("alice")
                    .roles(&["user".to_owned(), "admin".to_owned()]),
            ),
        )
        .unwrap();
    let token = pair.access_token.clone();
    let bearer = format!("Bearer {token}");

    // ---------------------------------------------------------------- the check itself
    let key12 = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let validation12 = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let key9 = jsonwebtoken9::DecodingKey::from_secret(SECRET.as_bytes());
    let validation9 = jsonwebtoken9::Validation::new(jsonwebtoken9::Algorithm::HS256);
    assert!(jsonwebtoken::decode::<Claims>(&token, &key12, &validation12).is_ok());
    assert!(jsonwebtoken9::decode::<Claims>(&token, &key9, &validation9).is_ok());
    {
        let mut g = c.benchmark_group("decode");
        g.bench_function("jsonwebtoken12", |b| {
            b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &key12, &validation12))
        });
        g.bench_function("jsonwebtoken9", |b| {
            b.iter(|| jsonwebtoken9::decode::<Claims>(black_box(&token), &key9, &validation9))
        });
        g.finish();
    }

    // ---------------------------------------------------------------- the layers
    let inner =
        service_fn(|_req: Req| async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) });
    // jwt-authorizer answers refusals with axum 0.7's response type, so its inner service
    // returns that (an empty body: no allocation).
    let inner07 = service_fn(|_req: Req| async {
        Ok::<_, Infallible>(axum07::response::Response::new(axum07::body::Body::empty()))
    });

    let mut session = tower_jwt_session::SessionLayer::from_manager(&manager).layer(inner);
    let authorizer = rt
        .block_on(
            jwt_authorizer::JwtAuthorizer::<Claims>::from_secret(SECRET)
                .validation(
                    jwt_authorizer::Validation::new().algs(vec![jsonwebtoken9::Algorithm::HS256]),
                )
                .build(),
        )
        .unwrap();
    let mut jwt_auth = jwt_authorizer::IntoLayer::into_layer(authorizer).layer(inner07);
    let mut async_require =
        tower_http::auth::AsyncRequireAuthorizationLayer::new(AsyncJwtCheck::<Empty<Bytes>>::new())
            .layer(inner);
    let mut validate_header =
        tower_http::validate_request::ValidateRequestHeaderLayer::custom(validate_fn::<
            Empty<Bytes>,
            Empty<Bytes>,
        >(JwtCheck::new()))
        .layer(inner);
    let mut bare_inner = inner;

    // Each one accepts the token (and the session layer's cache is warm).
    assert_eq!(ready(session.call(request(&bearer))).unwrap().status(), 200);
    assert_eq!(
        ready(jwt_auth.call(request(&bearer))).unwrap().status(),
        200
    );
    assert_eq!(
        ready(async_require.call(request(&bearer)))
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        ready(validate_header.call(request(&bearer)))
            .unwrap()
            .status(),
        200
    );
    // … and refuses a forged one.
    let forged = format!("Bearer {}x", &token[..token.len() - 1]);
    assert_eq!(ready(session.call(request(&forged))).unwrap().status(), 401);
    assert_eq!(
        ready(jwt_auth.call(request(&forged))).unwrap().status(),
        401
    );
    assert_eq!(
        ready(async_require.call(request(&forged)))
            .unwrap()
            .status(),
        401
    );

    {
        let mut g = c.benchmark_group("layer");
        g.bench_function("inner_only", |b| {
            b.iter_batched(
                || request(&bearer),
                |req| ready(bare_inner.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("session_layer", |b| {
            b.iter_batched(
                || request(&bearer),
                |req| ready(session.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("jwt_authorizer", |b| {
            b.iter_batched(
                || request(&bearer),
                |req| ready(jwt_auth.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("tower_http_async_require_authorization", |b| {
            b.iter_batched(
                || request(&bearer),
                |req| ready(async_require.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("tower_http_validate_request_header", |b| {
            b.iter_batched(
                || request(&bearer),
                |req| ready(validate_header.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }

    // ---------------------------------------------------------------- rate limiter
    let mut limited = ClientRateLimitLayer::new(
        RateLimitConfig::new()
            .window(Duration::from_secs(3600))
            .max_requests(u32::MAX),
    )
    .layer(inner);
    assert_eq!(ready(limited.call(request(&bearer))).unwrap().status(), 200);
    {
        let mut g = c.benchmark_group("rate_limit");
        g.bench_function("inner_only", |b| {
            b.iter_batched(
                || request(&bearer),
                |req| ready(bare_inner.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("memory_backend", |b| {
            b.iter_batched(
                || request(&bearer),
                |req| ready(limited.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }

    // ---------------------------------------------------------------- interleaved pass
    {
        let check = JwtCheck::new();
        let mut contenders: Vec<Contender<'_>> = vec![
            (
                "jsonwebtoken12_decode",
                Box::new(|req: Req| {
                    let value = req.headers()["authorization"].to_str().unwrap();
                    let token = value.strip_prefix("Bearer ").unwrap();
                    jsonwebtoken::decode::<Claims>(token, &key12, &validation12)
                        .map(|_| 200)
                        .unwrap_or(401)
                }),
            ),
            (
                "hand_written_check",
                Box::new(|req: Req| check.check(req.headers()).map(|_| 200).unwrap_or(401)),
            ),
            (
                "session_layer",
                Box::new(|req| ready(session.call(req)).unwrap().status().as_u16()),
            ),
            (
                "jwt_authorizer",
                Box::new(|req| ready(jwt_auth.call(req)).unwrap().status().as_u16()),
            ),
            (
                "tower_http_async_require_authorization",
                Box::new(|req| ready(async_require.call(req)).unwrap().status().as_u16()),
            ),
            (
                "rate_limit_memory",
                Box::new(|req| ready(limited.call(req)).unwrap().status().as_u16()),
            ),
            (
                "inner_only",
                Box::new(|req| ready(bare_inner.call(req)).unwrap().status().as_u16()),
            ),
        ];
        const BATCH: usize = 2_000;
        let rounds: usize = std::env::var("TJS_INTERLEAVED_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(40);
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
        for round in 0..rounds {
            // Rotate the order too, so no contender always runs right after the same one.
            for k in 0..contenders.len() {
                let i = (k + round) % contenders.len();
                let batch: Vec<Req> = (0..BATCH).map(|_| request(&bearer)).collect();
                let run = &mut contenders[i].1;
                let start = Instant::now();
                for req in batch {
                    assert_eq!(black_box(run(black_box(req))), 200);
                }
                samples[i].push(start.elapsed().as_nanos() as f64 / BATCH as f64);
            }
        }
        let mut out = serde_json::Map::new();
        println!("interleaved ({rounds} rounds of {BATCH} requests), median ns per request:");
        for ((name, _), mut s) in contenders.iter().zip(samples) {
            s.sort_by(f64::total_cmp);
            let median = s[s.len() / 2];
            println!("  {name:<42} {median:>8.1}");
            out.insert((*name).to_owned(), serde_json::json!(median));
        }
        std::fs::write(
            results_dir().join("interleaved.json"),
            serde_json::to_vec_pretty(&out).unwrap(),
        )
        .unwrap();
    }

    // ---------------------------------------------------------------- session operations
    let roles = vec!["user".to_owned()];
    {
        // 10 000 users, default limit (10 per user, evict): the store fills to 100 000 live
        // sessions and then evicts one per creation, like a long-running server.
        let memory = SessionManager::new(session_config()).unwrap();
        let mut g = c.benchmark_group("memory");
        let mut i = 0u64;
        g.bench_function("create", |b| {
            b.iter(|| {
                i += 1;
                rt.block_on(
                    memory.create_session(
                        tower_jwt_session::manager::NewSession::new(&format!(
                            "user-{}",
                            i % 10_000
                        ))
                        .roles(&roles),
                    ),
                )
                .unwrap()
            })
        });
        let mut current = rt
            .block_on(memory.create_session(
                tower_jwt_session::manager::NewSession::new("refresher").roles(&roles),
            ))
            .unwrap();
        g.bench_function("refresh", |b| {
            b.iter(|| {
                let next = rt.block_on(memory.refresh(&current.refresh_token)).unwrap();
                std::mem::replace(&mut current, next)
            })
        });
        g.finish();
    }

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("tjsbench{}", std::process::id());
    match rt.block_on(tower_jwt_session::store::RedisStore::connect(
        &tower_jwt_session::config::RedisSettings::new([url.clone()])
            .with_key_prefix(prefix.clone())
            .with_timeout(Duration::from_secs(2)),
    )) {
        Err(e) => eprintln!("Redis at {url} unavailable ({e}): no Redis figures"),
        Ok(store) => {
            let redis = SessionManager::builder(session_config())
                .store(store)
                .build()
                .unwrap();
            let mut g = c.benchmark_group("redis");
            g.sample_size(30).measurement_time(Duration::from_secs(4));
            let mut i = 0u64;
            g.bench_function("create", |b| {
                b.iter(|| {
                    i += 1;
                    rt.block_on(
                        redis.create_session(
                            tower_jwt_session::manager::NewSession::new(&format!(
                                "user-{}",
                                i % 10_000
                            ))
                            .roles(&roles),
                        ),
                    )
                    .unwrap()
                })
            });
            let mut current = rt
                .block_on(redis.create_session(
                    tower_jwt_session::manager::NewSession::new("refresher").roles(&roles),
                ))
                .unwrap();
            g.bench_function("refresh", |b| {
                b.iter(|| {
                    let next = rt.block_on(redis.refresh(&current.refresh_token)).unwrap();
                    std::mem::replace(&mut current, next)
                })
            });
            g.finish();
            drop(redis);
            rt.block_on(delete_prefix(&url, &prefix));
        }
    }

    c.final_summary();
}

/// Deletes every key this run wrote (SCAN, not KEYS: the server may be shared).
async fn delete_prefix(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cursor: u64 = 0;
    let mut deleted = 0usize;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            deleted += keys.len();
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    eprintln!("deleted {deleted} Redis keys under {prefix}:");
}

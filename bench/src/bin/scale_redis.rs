//! Refresh latency on the Redis store as the number of live sessions grows.
//!
//! ```text
//! scale_redis <redis-url> <size>...      # e.g. redis://127.0.0.1:16399 10000 100000 1000000
//! ```
//!
//! Fills the store in steps (64 creations in flight, five sessions per user), and at each size
//! refreshes the same 2 000 sessions, spread over the whole store, once each, one at a time,
//! timing each call through `SessionManager::refresh`. Prints one line per size:
//! `sessions  p50_us  p99_us  bytes_per_session` (the growth of Redis's `used_memory` since the
//! start, divided by the sessions: meant for a Redis of its own, as bench/scale.sh starts). Deletes
//! its keys at the end. `TJS_BENCH_DEVICE=1` gives every session a login's device metadata
//! ([`tjs_bench::bench_device`]); `TJS_BENCH_CLAIMS=1` a 200-byte custom claims object
//! ([`tjs_bench::bench_claims`]); `TJS_BENCH_SEAL=1` seals the records (a fixed test key).

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tower_jwt_session::manager::NewSession;
use tower_jwt_session::store::RedisStore;
use tower_jwt_session::{SessionConfig, SessionManager};

const SAMPLE: usize = 2_000;
const IN_FLIGHT: usize = 64;

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: scale_redis <redis-url> <size>...");
    let sizes: Vec<usize> = args.map(|a| a.parse().expect("a size")).collect();
    let prefix = format!("tjsscale{}", std::process::id());
    let mut settings = tower_jwt_session::config::RedisSettings::new([url.clone()])
        .with_key_prefix(prefix.clone())
        .with_timeout(Duration::from_secs(5));
    if std::env::var("TJS_BENCH_SEAL").is_ok_and(|v| v == "1") {
        settings = settings
            .with_encryption_key(&[0x5e; 32])
            .expect("a 32-byte key");
    }
    let store = RedisStore::connect(&settings).await.expect("Redis");
    let device = tjs_bench::bench_device();
    let manager = SessionManager::builder(SessionConfig::new(tjs_bench::SECRET).unwrap())
        .store(store)
        .build()
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let base = used_memory(&mut conn).await;

    // Every refresh token so far, by creation order; the sample is drawn from all of them.
    let mut tokens: Vec<String> = Vec::new();
    let roles = vec!["user".to_owned()];
    let claims = tjs_bench::bench_claims();
    for n in sizes {
        let mut tasks = JoinSet::new();
        let mut next = tokens.len();
        let mut created: Vec<(usize, String)> = Vec::with_capacity(n.saturating_sub(next));
        while next < n || !tasks.is_empty() {
            while next < n && tasks.len() < IN_FLIGHT {
                let manager = manager.clone();
                let roles = roles.clone();
                let device = device.clone();
                let claims = tower_jwt_session::session::CustomClaims::from_json(claims.as_json())
                    .expect("claims");
                let i = next;
                tasks.spawn(async move {
                    let pair = manager
                        .create_session(
                            NewSession::new(format!("user-{}", i / 5))
                                .roles(&roles)
                                .device(device)
                                .custom_claims(claims),
                        )
                        .await
                        .expect("create");
                    (i, pair.refresh_token)
                });
                next += 1;
            }
            if let Some(done) = tasks.join_next().await {
                created.push(done.unwrap());
            }
        }
        created.sort_unstable_by_key(|(i, _)| *i);
        tokens.extend(created.into_iter().map(|(_, t)| t));
        let bytes = used_memory(&mut conn).await.saturating_sub(base) as f64 / n as f64;

        let step = (tokens.len() / SAMPLE).max(1);
        let mut samples = Vec::with_capacity(SAMPLE);
        for k in (0..tokens.len()).step_by(step).take(SAMPLE) {
            let start = Instant::now();
            let pair = manager.refresh(&tokens[k]).await.expect("refresh");
            samples.push(start.elapsed());
            tokens[k] = pair.refresh_token;
        }
        samples.sort();
        println!(
            "{n}\t{:.1}\t{:.1}\t{bytes:.0}",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
    }

    // Clean up (SCAN, not KEYS).
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(5000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
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
}

//! Session creation and refresh latency (median, p99) and memory per session in `MemoryStore`,
//! at 10 thousand, 100 thousand and 1 million live sessions.
//!
//! ```text
//! cargo bench --bench sessions                             # memory store, all sizes
//! cargo bench --bench sessions -- 100000                   # one size
//! cargo bench --bench sessions --features redis -- redis   # Redis at $REDIS_URL (default
//!                                                          # redis://127.0.0.1:6379)
//! ```
//!
//! For Redis, memory per session is `MEMORY USAGE` of a session's record plus its share of the
//! user's index; each run plain and sealed, without and with the device metadata a login
//! records.
//!
//! Latencies are per call through `SessionManager` (token signing included), measured with
//! `Instant` around each call on a current-thread runtime. Memory is the growth of the process's
//! resident set while the store fills, divided by the number of sessions.
//!
//! `TJS_BENCH_CLAIMS=1` gives every session a 200-byte custom claims object (a tenant, an org,
//! a plan, an email, five permissions), for the cost of custom claims per session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_jwt_session::manager::NewSession;
use tower_jwt_session::session::CustomClaims;
use tower_jwt_session::store::{MemoryStore, SessionStore};
use tower_jwt_session::{SessionConfig, SessionManager, manager::TokenPair};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "median {:>7.2} µs  p99 {:>7.2} µs",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6
    )
}

/// The claims of every session: 200 bytes with `TJS_BENCH_CLAIMS=1`, none otherwise.
fn claims() -> CustomClaims {
    if std::env::var("TJS_BENCH_CLAIMS").is_ok_and(|v| v == "1") {
        let claims = CustomClaims::new(&serde_json::json!({
            "tenant": "acme",
            "org": "org_4f9c2a7e1b",
            "plan": "enterprise",
            "email": "alice.example@acme-corporation.example.com",
            "permissions": ["billing:read", "billing:write", "users:read", "users:invite", "reports:x"],
        }))
        .expect("an object without reserved names");
        assert_eq!(claims.len(), 200);
        claims
    } else {
        CustomClaims::default()
    }
}

/// A login of `user` with `roles` and a copy of `claims` of its own, as each login of an app
/// serializes its own (a clone would share one allocation among every session).
fn login(user: String, roles: &[String], claims: &CustomClaims) -> NewSession {
    let own = CustomClaims::from_json(claims.as_json()).expect("claims read back");
    NewSession::new(user).roles(roles).custom_claims(own)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::args().any(|a| a == "redis") {
        #[cfg(feature = "redis")]
        rt.block_on(redis_bench());
        #[cfg(not(feature = "redis"))]
        eprintln!("build with --features redis for the Redis figures");
        return;
    }
    let sizes: Vec<usize> = match std::env::args().skip(1).find_map(|a| a.parse().ok()) {
        Some(n) => vec![n],
        None => vec![10_000, 100_000, 1_000_000],
    };
    println!("sessions   bytes/session   create                               refresh");
    for n in sizes {
        rt.block_on(run(n));
    }
}

async fn run(n: usize) {
    let store = Arc::new(MemoryStore::new());
    let manager = SessionManager::builder(
        SessionConfig::new("bench-secret-bench-secret-bench-secret!!")
            .expect("secret")
            // Keep the revocation cache small, so the figure is the store's own.
            .with_revocation_cache(
                tower_jwt_session::config::RevocationCacheSettings::default().with_capacity(1_000),
            ),
    )
    .shared_store(store.clone() as Arc<dyn SessionStore>)
    .build()
    .expect("manager");
    let roles = vec!["user".to_owned()];
    let claims = claims();

    // Fill: five sessions per user, like a user with a few devices.
    let before = rss_bytes();
    let mut sample: Vec<TokenPair> = Vec::with_capacity(10_000);
    let keep_every = (n / 10_000).max(1);
    for i in 0..n {
        let pair = manager
            .create_session(login(format!("user-{}", i / 5), &roles, &claims))
            .await
            .expect("create");
        if i % keep_every == 0 && sample.len() < 10_000 {
            sample.push(pair);
        }
    }
    let per_session = (rss_bytes().saturating_sub(before)) as f64 / n as f64;
    assert_eq!(store.len(), n);

    // Creation latency at this size (new users, so no eviction skews it).
    let mut create = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let user = format!("fresh-{i}");
        let start = Instant::now();
        let pair = manager
            .create_session(login(user, &roles, &claims))
            .await
            .expect("create");
        create.push(start.elapsed());
        std::hint::black_box(pair);
    }

    // Refresh latency: each sampled session once, spread over the whole store.
    let mut refresh = Vec::with_capacity(sample.len());
    for pair in &sample {
        let start = Instant::now();
        let next = manager.refresh(&pair.refresh_token).await.expect("refresh");
        refresh.push(start.elapsed());
        std::hint::black_box(next);
    }
    println!(
        "{n:>9}   {per_session:>13.0}   {}   {}",
        summary(create),
        summary(refresh)
    );
}

#[cfg(feature = "redis")]
async fn redis_bench() {
    // Plain records, then records sealed with SESSION_ENCRYPTION_KEY: the difference is the cost
    // of sealing and opening. Each without and with the device metadata a login records.
    for sealed in [false, true] {
        for device in [false, true] {
            redis_run(sealed, device).await;
        }
    }
}

/// What a login from a desktop Chrome records by default: `Chrome on Windows`, its /24.
#[cfg(feature = "redis")]
fn login_device() -> tower_jwt_session::store::DeviceInfo {
    tower_jwt_session::store::DeviceInfo::capture(
        Some(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
        ),
        Some(std::net::IpAddr::from([203, 0, 113, 77])),
        tower_jwt_session::config::DeviceIp::Truncated,
    )
}

// One scripted run (connect, fill, measure, read memory, clean up): its steps share the
// connection and the figures they print.
#[cfg(feature = "redis")]
async fn redis_run(sealed: bool, device: bool) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    // As short as the default `tjs`, so the bytes per session are what a deployment sees.
    let prefix = format!(
        "b{}{}{}",
        std::process::id() % 100,
        u8::from(sealed),
        u8::from(device)
    );
    // The key is the base64 of 32 bytes of 42: a bench value, never a real one.
    let config = SessionConfig::from_lookup(|name| match name {
        "JWT_SECRET" => Some("bench-secret-bench-secret-bench-secret!!".to_owned()),
        "REDIS_URL" => Some(url.clone()),
        "REDIS_KEY_PREFIX" => Some(prefix.clone()),
        "SESSION_ENCRYPTION_KEY" if sealed => {
            Some("KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".to_owned())
        }
        _ => None,
    })
    .expect("config");
    let manager = SessionManager::builder(config)
        .connect()
        .await
        .expect("Redis at REDIS_URL");
    assert_eq!(manager.store_kind(), "redis");
    let roles = vec!["user".to_owned()];
    let metadata = if device {
        login_device()
    } else {
        tower_jwt_session::store::DeviceInfo::default()
    };
    let claims = claims();
    let n = 10_000;
    let mut create = Vec::with_capacity(n);
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let pair = manager
            .create_session(
                login(format!("user-{}", i / 5), &roles, &claims).device(metadata.clone()),
            )
            .await
            .expect("create");
        create.push(start.elapsed());
        pairs.push(pair);
    }
    let mut refresh = Vec::with_capacity(n);
    for pair in &pairs {
        let start = Instant::now();
        let next = manager.refresh(&pair.refresh_token).await.expect("refresh");
        refresh.push(start.elapsed());
        std::hint::black_box(next);
    }
    let (client, keys, bytes) = memory_usage(&url, &prefix).await;
    println!(
        "Redis at {url}, {n} sessions, 5 per user, records {}, {}",
        if sealed {
            "sealed (SESSION_ENCRYPTION_KEY)"
        } else {
            "plain"
        },
        if device {
            "with device metadata (Chrome on Windows, 203.0.113.0/24)"
        } else {
            "without device metadata"
        }
    );
    println!("  create    {}", summary(create));
    println!("  refresh   {}", summary(refresh));
    println!(
        "  memory    {:.0} bytes per session ({} keys)",
        bytes as f64 / n as f64,
        keys.len()
    );
    if !keys.is_empty() {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

/// MEMORY USAGE of the records and indexes a run wrote under `prefix`: the client, the keys,
/// and their bytes.
#[cfg(feature = "redis")]
async fn memory_usage(url: &str, prefix: &str) -> (redis::Client, Vec<String>, u64) {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut bytes = 0u64;
    for key in &keys {
        let used: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .expect("MEMORY USAGE");
        bytes += used.unwrap_or(0);
    }
    (client, keys, bytes)
}

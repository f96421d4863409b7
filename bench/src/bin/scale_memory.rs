//! Memory per session and refresh latency in `MemoryStore` at one size (one process per size,
//! so no size inherits memory another one freed).
//!
//! ```text
//! scale_memory <sessions>
//! ```
//!
//! The same workload as the crate's `cargo bench --bench sessions -- N` (five sessions per user,
//! revocation cache capped at 1 000 entries so the figure is the store's), with one difference:
//! the refresh tokens kept for the latency sample go into a buffer allocated and touched
//! *before* the first RSS reading, so the growth of the resident set is the store's alone (the
//! crate's bench keeps up to 10 000 whole `TokenPair`s during the fill, which at 10 000 sessions
//! is a pair per session inside the figure).
//!
//! Prints `sessions bytes_per_session create_p50_us create_p99_us refresh_p50_us refresh_p99_us`
//! (tab-separated). `TJS_BENCH_DEVICE=1` gives every session a login's device metadata
//! ([`tjs_bench::bench_device`]); `TJS_BENCH_CLAIMS=1` a 200-byte custom claims object
//! ([`tjs_bench::bench_claims`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_jwt_session::manager::NewSession;
use tower_jwt_session::session::CustomClaims;
use tower_jwt_session::store::{MemoryStore, SessionStore};
use tower_jwt_session::{SessionConfig, SessionManager};

const SAMPLE: usize = 10_000;
const TOKEN_SLOT: usize = 256;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: scale_memory <sessions>");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(MemoryStore::new());
        let manager = SessionManager::builder(
            SessionConfig::new(tjs_bench::SECRET)
                .unwrap()
                .with_revocation_cache(
                    tower_jwt_session::config::RevocationCacheSettings::default()
                        .with_capacity(1_000),
                ),
        )
        .shared_store(store.clone() as Arc<dyn SessionStore>)
        .build()
        .unwrap();
        let roles = vec!["user".to_owned()];
        let device = tjs_bench::bench_device();
        let claims = tjs_bench::bench_claims();
        let login = |user: &str| {
            NewSession::new(user)
                .roles(&roles)
                .device(device.clone())
                // A copy of its own, as each login serializes its own (a clone shares one).
                .custom_claims(CustomClaims::from_json(claims.as_json()).expect("claims"))
        };
        let user_ids: Vec<String> = (0..n.div_ceil(5)).map(|u| format!("user-{u}")).collect();

        // The sample's storage, allocated and touched before the first reading.
        let keep_every = (n / SAMPLE).max(1);
        let slots = n.div_ceil(keep_every).min(SAMPLE);
        let mut buffer = vec![1u8; slots * TOKEN_SLOT];
        let mut lens = vec![0usize; slots];
        let mut kept = 0;

        let before = tjs_bench::rss_bytes();
        for i in 0..n {
            let pair = manager
                .create_session(login(&user_ids[i / 5]))
                .await
                .expect("create");
            if i % keep_every == 0 && kept < slots {
                let token = pair.refresh_token.as_bytes();
                assert!(
                    token.len() <= TOKEN_SLOT,
                    "refresh token longer than its slot"
                );
                buffer[kept * TOKEN_SLOT..kept * TOKEN_SLOT + token.len()].copy_from_slice(token);
                lens[kept] = token.len();
                kept += 1;
            }
        }
        let per_session = tjs_bench::rss_bytes().saturating_sub(before) as f64 / n as f64;
        assert_eq!(store.len(), n);

        // Creation latency at this size (new users: no eviction).
        let mut create = Vec::with_capacity(10_000);
        for i in 0..10_000 {
            let user = format!("fresh-{i}");
            let start = Instant::now();
            let pair = manager.create_session(login(&user)).await.expect("create");
            create.push(start.elapsed());
            std::hint::black_box(pair);
        }

        // Refresh latency: each sampled session once, spread over the whole store.
        let mut refresh = Vec::with_capacity(kept);
        for k in 0..kept {
            let token = std::str::from_utf8(&buffer[k * TOKEN_SLOT..k * TOKEN_SLOT + lens[k]])
                .unwrap()
                .to_owned();
            let start = Instant::now();
            let next = manager.refresh(&token).await.expect("refresh");
            refresh.push(start.elapsed());
            std::hint::black_box(next);
        }
        create.sort();
        refresh.sort();
        println!(
            "{n}\t{per_session:.0}\t{:.2}\t{:.2}\t{:.2}\t{:.2}",
            percentile(&create, 0.5),
            percentile(&create, 0.99),
            percentile(&refresh, 0.5),
            percentile(&refresh, 0.99)
        );
    });
}

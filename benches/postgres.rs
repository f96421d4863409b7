//! Session creation and refresh latency (median, p99) on PostgreSQL, and bytes per session
//! (`pg_total_relation_size` of the sessions table, indexes and TOAST included, over its rows)
//! at a given number of live sessions (default 100,000; 5 sessions a user).
//!
//! ```text
//! cargo bench --bench postgres --features postgres                  # 100k sessions
//! cargo bench --bench postgres --features postgres -- 10000 sealed  # 10k, sealed records
//! cargo bench --bench postgres --features postgres -- async         # synchronous_commit off
//! ```
//!
//! Each create and refresh commits once, so on a server with `synchronous_commit = on` (the
//! default) its latency includes one WAL flush of the server's disk. `async` turns that off for
//! the bench's database, which leaves the store's own cost (round trips, locks, signing).
//!
//! The server is the one at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! a user that may create databases); the bench makes a database of its own and drops it at the
//! end. Latencies are per call through `SessionManager` (token signing included), sequential,
//! on loopback, measured with `Instant` around each call.

#[path = "../tests/common/pg_server.rs"]
mod pg_server;

use std::time::{Duration, Instant};

use tower_jwt_session::config::PostgresSettings;
use tower_jwt_session::store::PostgresStore;
use tower_jwt_session::{SessionConfig, SessionManager};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "median {:>7.1} µs  p99 {:>7.1} µs",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6
    )
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let sealed = std::env::args().any(|a| a == "sealed");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(pg_server::TestDb::create());
    if std::env::args().any(|a| a == "async") {
        rt.block_on(async {
            let mut conn = db.connect().await;
            sqlx::query(&format!(
                "ALTER DATABASE {} SET synchronous_commit = off",
                db.name
            ))
            .execute(&mut conn)
            .await
            .expect("synchronous_commit off");
        });
    }
    rt.block_on(run(&db, n, sealed));
    rt.block_on(async { drop(db) });
}

async fn run(db: &pg_server::TestDb, n: usize, sealed: bool) {
    let mut config = SessionConfig::new("bench-secret-bench-secret-bench-secret!!")
        .expect("secret")
        .max_sessions_per_user(10);
    if sealed {
        config = config.encryption_key(&[7; 32]).expect("key");
    }
    let settings = PostgresSettings::new(&db.url)
        .with_max_connections(16)
        .with_timeout(Duration::from_secs(10));
    let store = PostgresStore::connect(&settings).await.expect("connect");
    let manager = SessionManager::builder(config)
        .store(store)
        .build()
        .expect("manager");

    // Fill: n sessions, 5 a user, 16 at a time.
    let started = Instant::now();
    let workers = 16;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let manager = manager.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                manager
                    .create_session(&format!("user-{}", i / 5), &["user"])
                    .await
                    .expect("create");
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.expect("fill");
    }
    let fill = started.elapsed();

    let mut conn = db.connect().await;
    // Measure in a steady state, not during the checkpoint and autovacuum the fill set off.
    for settle in ["CHECKPOINT", "VACUUM ANALYZE tjs_sessions"] {
        if let Err(error) = sqlx::query(settle).execute(&mut conn).await {
            eprintln!("{settle}: {error} (measuring anyway)");
        }
    }
    let (bytes, rows): (i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('tjs_sessions'), (SELECT count(*) FROM tjs_sessions)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("size");

    // Latency at n live sessions: sequential creates (new users), then refreshes of them.
    let samples = 2_000;
    let mut creates = Vec::with_capacity(samples);
    let mut pairs = Vec::with_capacity(samples);
    for i in 0..samples {
        let user = format!("bench-{i}");
        let t = Instant::now();
        let pair = manager
            .create_session(&user, &["user"])
            .await
            .expect("create");
        creates.push(t.elapsed());
        pairs.push(pair);
    }
    let mut refreshes = Vec::with_capacity(samples);
    for pair in &pairs {
        let t = Instant::now();
        manager.refresh(&pair.refresh_token).await.expect("refresh");
        refreshes.push(t.elapsed());
    }
    println!(
        "postgres{}{}: {rows} sessions (filled in {fill:.1?}, {:.0}/s with 16 tasks)",
        if sealed { " sealed" } else { "" },
        if std::env::args().any(|a| a == "async") {
            " synchronous_commit=off"
        } else {
            ""
        },
        n as f64 / fill.as_secs_f64()
    );
    println!(
        "  bytes/session (pg_total_relation_size / rows): {}",
        bytes / rows.max(1)
    );
    println!("  create  {}", summary(creates));
    println!("  refresh {}", summary(refreshes));
}

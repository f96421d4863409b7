//! The PostgreSQL backends on the real server: the same answers as the memory backends on
//! random operation sequences, exact counts under concurrency from two instances, lock-outs
//! seen across instances, bounded tables, no user id or address in clear when sealed, and
//! failures as errors. Each test makes and drops a database of its own.

use std::collections::HashSet;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::*;
use crate::config::PostgresSettings;
use crate::rate_limit::{MemoryAttemptBackend, MemoryBackend};
use crate::store::PostgresStore;
use crate::store::postgres::pg_server::TestDb;

const T0: u64 = 1_800_000_000_000;
const MINUTE: Duration = Duration::from_secs(60);

fn settings(db: &TestDb) -> PostgresSettings {
    PostgresSettings::new(&db.url).with_timeout(Duration::from_secs(5))
}

/// `n` instances on `db`: each a store with a pool of its own.
async fn instances(n: usize, settings: PostgresSettings) -> Vec<PostgresStore> {
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(PostgresStore::connect(&settings).await.expect("connect"));
    }
    stores
}

async fn rows(db: &TestDb, table: &str) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn policy(max_failures: u32) -> AttemptPolicy {
    AttemptPolicy {
        max_failures,
        window: Duration::from_secs(900),
        lockout: Duration::from_secs(900),
    }
}

#[tokio::test]
async fn counts_within_a_window_and_starts_over_after_it() {
    let db = TestDb::create().await;
    let store = &instances(1, settings(&db)).await[0];
    let b = PostgresRateLimitBackend::new(store.connection());
    for (i, remaining) in [(0, 2), (1, 1), (2, 0)] {
        let d = b.hit("k", T0 + i * 1000, MINUTE, 3).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, remaining);
        assert_eq!(d.reset_after, MINUTE - Duration::from_secs(i));
    }
    let d = b.hit("k", T0 + 59_999, MINUTE, 3).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.reset_after, Duration::from_millis(1));
    assert!(
        b.hit("other", T0 + 59_999, MINUTE, 3)
            .await
            .unwrap()
            .allowed
    );
    let d = b.hit("k", T0 + 60_000, MINUTE, 3).await.unwrap();
    assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 2, MINUTE));
    // A clock that moves back stays in the current window.
    let d = b.hit("k", T0, MINUTE, 3).await.unwrap();
    assert_eq!((d.remaining, d.reset_after), (1, MINUTE));
}

/// A sweep keeps rows that ended less than its grace ago: an instance whose clock is behind
/// (or steps back) still counts in that window instead of starting a fresh one.
#[tokio::test]
async fn a_sweep_keeps_what_a_clock_a_little_behind_still_counts() {
    let db = TestDb::create().await;
    let store = &instances(1, settings(&db)).await[0];
    let b = PostgresRateLimitBackend::new(store.connection());
    assert!(b.hit("k", T0, MINUTE, 1).await.unwrap().allowed);
    // Enough writes one second after the window's end for a sweep to run.
    for i in 0..=SWEEP_EVERY {
        b.hit(&format!("other-{i}"), T0 + 61_000, MINUTE, 1)
            .await
            .unwrap();
    }
    let d = b.hit("k", T0 + 30_000, MINUTE, 1).await.unwrap();
    assert_eq!((d.allowed, d.reset_after), (false, MINUTE / 2));
    // Past the grace, the row goes.
    for i in 0..=SWEEP_EVERY {
        b.hit(&format!("late-{i}"), T0 + 121_000, MINUTE, 1)
            .await
            .unwrap();
    }
    let mut conn = db.connect().await;
    let ended: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tjs_rate_limits WHERE window_end <= $1")
            .bind((T0 + 60_000) as i64)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(ended, 0);
}

/// The memory backends' durations are real time (moka expires their entries), so the random
/// sequences step in units of ten seconds: no entry a step still needs expires within a case.
const UNIT: u64 = 10_000;
const GRACE: u64 = SWEEP_GRACE_MS as u64;

#[derive(Debug, Clone)]
enum RateOp {
    Hit(usize),
    Advance(u64),
    Back,
}

fn rate_ops() -> impl Strategy<Value = (u64, u32, Vec<RateOp>)> {
    let op = prop_oneof![
        6 => (0..3usize).prop_map(RateOp::Hit),
        3 => (0..4u64).prop_map(RateOp::Advance),
        1 => Just(RateOp::Back),
    ];
    (1..4u64, 0..5u32, prop::collection::vec(op, 1..60))
}

/// Random hits, clock steps forward and back: the PostgreSQL backend answers exactly what the
/// memory backend answers.
#[test]
fn rate_limit_answers_as_the_memory_backend_does() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::create());
    let store = rt.block_on(PostgresStore::connect(&settings(&db))).unwrap();
    let pg = PostgresRateLimitBackend::new(store.connection());
    let cases = std::sync::atomic::AtomicU64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&rate_ops(), |(window_units, max, ops)| {
            let case = cases.fetch_add(1, Ordering::Relaxed);
            let memory = MemoryBackend::new(100);
            let window = Duration::from_millis(window_units * UNIT);
            let mut now = T0;
            rt.block_on(async {
                let mut high = now;
                for (step, op) in ops.iter().enumerate() {
                    match op {
                        RateOp::Advance(units) => {
                            now += units * UNIT;
                            high = high.max(now);
                        }
                        // Back, but not past the sweep's grace behind the latest time
                        // seen: rows ended before that may have been deleted, which only
                        // matters to a clock that goes back further than instances differ.
                        RateOp::Back => {
                            now = now
                                .saturating_sub(UNIT)
                                .max(high.saturating_sub(GRACE))
                                .max(T0)
                        }
                        RateOp::Hit(k) => {
                            let key = format!("203.0.113.{k}/{case}");
                            let want = memory.hit(&key, now, window, max).await.unwrap();
                            let got = pg.hit(&key, now, window, max).await.unwrap();
                            prop_assert_eq!(got, want, "step {}: {:?}", step, op);
                        }
                    }
                }
                Ok::<(), TestCaseError>(())
            })
        })
        .unwrap();
}

#[derive(Debug, Clone)]
enum AttemptOp {
    Reserve(usize),
    Fail(usize),
    Release(usize),
    State(usize),
    Clear(usize),
    Advance(u64),
}

fn attempt_ops() -> impl Strategy<Value = (AttemptPolicy, Vec<AttemptOp>)> {
    // Two keys, so that one key's steps do not reach the other's; small maximums and short
    // steps, so that sequences cross lock-outs and windows often and act inside them.
    let key = prop_oneof![4 => Just(0usize), 1 => Just(1usize)];
    let op = prop_oneof![
        5 => key.clone().prop_map(AttemptOp::Reserve),
        4 => key.clone().prop_map(AttemptOp::Fail),
        3 => key.clone().prop_map(AttemptOp::Release),
        2 => key.clone().prop_map(AttemptOp::State),
        1 => key.prop_map(AttemptOp::Clear),
        4 => prop_oneof![3 => Just(1u64), 1 => Just(0), 1 => Just(3)].prop_map(AttemptOp::Advance),
    ];
    let max = prop_oneof![1 => Just(0u32), 6 => 1..4u32];
    let policy = (max, 1..5u64, 0..6u64).prop_map(|(max, window, lockout)| AttemptPolicy {
        max_failures: max,
        window: Duration::from_millis(window * UNIT),
        lockout: Duration::from_millis(lockout * UNIT),
    });
    (policy, prop::collection::vec(op, 1..120))
}

/// Random reservations, releases, failures, reads and clears over windows and lock-outs: the
/// PostgreSQL backend answers exactly what the memory backend answers (the rules of the Redis
/// scripts).
#[test]
fn attempts_answer_as_the_memory_backend_does() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::create());
    let store = rt.block_on(PostgresStore::connect(&settings(&db))).unwrap();
    let pg = PostgresAttemptBackend::new(store.connection());
    let cases = std::sync::atomic::AtomicU64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&attempt_ops(), |(policy, ops)| {
            let case = cases.fetch_add(1, Ordering::Relaxed);
            let memory = MemoryAttemptBackend::new(100);
            let mut now = T0;
            let key = |k: &usize| format!("login:uc:user{k}|198.51.100.1/{case}");
            rt.block_on(async {
                for (step, op) in ops.iter().enumerate() {
                    match op {
                        AttemptOp::Advance(units) => now += units * UNIT,
                        AttemptOp::Reserve(k) => prop_assert_eq!(
                            pg.reserve(&key(k), now, policy).await.unwrap(),
                            memory.reserve(&key(k), now, policy).await.unwrap(),
                            "step {}: {:?}",
                            step,
                            op
                        ),
                        AttemptOp::Fail(k) => prop_assert_eq!(
                            pg.record_failure(&key(k), now, policy).await.unwrap(),
                            memory.record_failure(&key(k), now, policy).await.unwrap(),
                            "step {}: {:?}",
                            step,
                            op
                        ),
                        AttemptOp::Release(k) => {
                            pg.release(&key(k), now).await.unwrap();
                            memory.release(&key(k), now).await.unwrap();
                        }
                        AttemptOp::State(k) => prop_assert_eq!(
                            pg.state(&key(k), now).await.unwrap(),
                            memory.state(&key(k), now).await.unwrap(),
                            "step {}: {:?}",
                            step,
                            op
                        ),
                        AttemptOp::Clear(k) => {
                            pg.clear(&key(k)).await.unwrap();
                            memory.clear(&key(k)).await.unwrap();
                        }
                    }
                }
                Ok::<(), TestCaseError>(())
            })
        })
        .unwrap();
}

/// 64 concurrent hits on one client, half through each of two instances (two pools): counted
/// exactly, so exactly the limit is allowed and every count is handed out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_hits_from_two_instances_count_exactly() {
    let db = TestDb::create().await;
    let stores = instances(2, settings(&db)).await;
    let backends: Vec<_> = stores
        .iter()
        .map(|s| PostgresRateLimitBackend::new(s.connection()))
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (backend, barrier) = (backends[i % 2].clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            backend.hit("203.0.113.7", T0, MINUTE, 40).await.unwrap()
        });
    }
    let decisions = tasks.join_all().await;
    assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 40);
    let remaining: HashSet<u32> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    assert_eq!(remaining, (0..40).collect(), "each count handed out once");
    let next = backends[0]
        .hit("203.0.113.7", T0, MINUTE, 100)
        .await
        .unwrap();
    assert_eq!(next.remaining, 100 - 65);
}

/// 64 concurrent reservations of one key through two instances: exactly the limit pass, and
/// the rest are refused with the one lock-out the first refusal started.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_reservations_from_two_instances_let_exactly_the_limit_through() {
    let db = TestDb::create().await;
    let stores = instances(2, settings(&db)).await;
    let backends: Vec<_> = stores
        .iter()
        .map(|s| PostgresAttemptBackend::new(s.connection()))
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (backend, barrier) = (backends[i % 2].clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            backend
                .reserve("login:uc:alice|203.0.113.7", T0 + i as u64, policy(5))
                .await
                .unwrap()
        });
    }
    let answers = tasks.join_all().await;
    assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 5);
    let lock_ends: HashSet<u64> = answers.iter().filter_map(|a| a.err()).collect();
    assert_eq!(lock_ends.len(), 1, "one lock-out: {lock_ends:?}");
    let state = backends[1]
        .state("login:uc:alice|203.0.113.7", T0 + 64)
        .await
        .unwrap();
    assert_eq!(state.count, 5);
    assert_eq!(state.locked_until_ms, lock_ends.into_iter().next());
}

/// Failures recorded through one instance lock the key out on the other; a success through the
/// other gives its reservation back to both; clearing on one clears for both.
#[tokio::test]
async fn a_lock_out_set_by_one_instance_is_seen_by_the_other() {
    let db = TestDb::create().await;
    let stores = instances(2, settings(&db)).await;
    let a = PostgresAttemptBackend::new(stores[0].connection());
    let b = PostgresAttemptBackend::new(stores[1].connection());
    let key = "login:ip:203.0.113.7";
    for i in 1..=3 {
        assert_eq!(a.record_failure(key, T0, policy(3)).await.unwrap(), i);
    }
    let until = T0 + 900_000;
    assert_eq!(b.reserve(key, T0 + 1, policy(3)).await.unwrap(), Err(until));
    assert_eq!(
        b.state(key, T0 + 1).await.unwrap(),
        AttemptState {
            count: 3,
            locked_until_ms: Some(until)
        }
    );
    assert_eq!(
        a.reserve(key, until - 1, policy(3)).await.unwrap(),
        Err(until)
    );
    assert_eq!(a.reserve(key, until, policy(3)).await.unwrap(), Ok(()));
    // A reservation taken on one instance and given back on the other.
    b.release(key, until).await.unwrap();
    assert_eq!(a.state(key, until).await.unwrap().count, 0);
    a.record_failure(key, until, policy(3)).await.unwrap();
    b.clear(key).await.unwrap();
    assert_eq!(a.state(key, until).await.unwrap(), AttemptState::default());

    // And the rate limit: a budget spent on one instance is spent on the other.
    let (ra, rb) = (
        PostgresRateLimitBackend::new(stores[0].connection()),
        PostgresRateLimitBackend::new(stores[1].connection()),
    );
    assert!(ra.hit("203.0.113.7", T0, MINUTE, 1).await.unwrap().allowed);
    assert!(!rb.hit("203.0.113.7", T0, MINUTE, 1).await.unwrap().allowed);
}

/// A flood of distinct clients, window after window: rows of ended windows and lock-outs are
/// deleted as new ones come, so the tables hold about one window's keys, not every key seen.
#[tokio::test]
async fn ended_rows_are_deleted_so_the_tables_stay_bounded() {
    let db = TestDb::create().await;
    let store = &instances(1, settings(&db)).await[0];
    let rate = PostgresRateLimitBackend::new(store.connection());
    let attempts = PostgresAttemptBackend::new(store.connection());
    const KEYS: u64 = 1_000;
    let short = AttemptPolicy {
        max_failures: 1,
        window: MINUTE,
        lockout: MINUTE,
    };
    // Rounds two minutes apart: a round's rows (a minute long) have ended more than the
    // sweep's grace before the next round.
    for round in 0..4u64 {
        let now = T0 + round * (2 * 60_000 + 1_000);
        for i in 0..KEYS {
            let client = format!("10.{round}.{}.{}", i / 256, i % 256);
            rate.hit(&client, now, MINUTE, 10).await.unwrap();
            // The first failure of each key locks it out for a minute.
            attempts
                .record_failure(&format!("login:ip:{client}"), now, short)
                .await
                .unwrap();
        }
        let bound = (KEYS + SWEEP_EVERY) as i64;
        let held = (
            rows(&db, "tjs_rate_limits").await,
            rows(&db, "tjs_attempts").await,
        );
        assert!(
            held.0 >= KEYS as i64 && held.0 <= bound,
            "round {round}: {held:?}"
        );
        assert!(
            held.1 >= KEYS as i64 && held.1 <= bound,
            "round {round}: {held:?}"
        );
    }
}

/// With a sealing key the tables hold keyed hashes: no client address, no user id.
#[tokio::test]
async fn sealed_keys_leak_no_user_or_address() {
    let db = TestDb::create().await;
    let sealed = settings(&db).with_encryption_key(&[7; 32]).unwrap();
    let store = &instances(1, sealed).await[0];
    let attempts = PostgresAttemptBackend::new(store.connection());
    let key = "login:uc:alice@example.com|203.0.113.7";
    assert_eq!(
        attempts.record_failure(key, T0, policy(5)).await.unwrap(),
        1
    );
    assert_eq!(attempts.state(key, T0).await.unwrap().count, 1);
    PostgresRateLimitBackend::new(store.connection())
        .hit("203.0.113.7", T0, MINUTE, 10)
        .await
        .unwrap();
    let mut conn = db.connect().await;
    let dumped: Vec<String> = sqlx::query_scalar(
        "SELECT t::text FROM tjs_rate_limits t UNION ALL SELECT t::text FROM tjs_attempts t",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(dumped.len(), 2, "{dumped:?}");
    for row in &dumped {
        assert!(!row.contains("203.0.113"), "{row}");
        assert!(!row.contains("alice"), "{row}");
    }
    // Without a key, the keys are stored as given (as in Redis).
    let plain = settings(&db).with_table_prefix("plain").unwrap();
    let plain = &instances(1, plain).await[0];
    PostgresRateLimitBackend::new(plain.connection())
        .hit("198.51.100.9", T0, MINUTE, 10)
        .await
        .unwrap();
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM plain_rate_limits")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(keys.contains(&"198.51.100.9".to_owned()), "{keys:?}");
}

/// A row held by a stuck transaction: the decision is an error within the timeout (the
/// callers fail open, or closed for logins, as documented), then works once the lock goes.
#[tokio::test]
async fn a_stuck_row_is_an_error_within_the_timeout() {
    let db = TestDb::create().await;
    let quick = settings(&db).with_timeout(Duration::from_millis(300));
    let store = &instances(1, quick).await[0];
    let rate = PostgresRateLimitBackend::new(store.connection());
    let attempts = PostgresAttemptBackend::new(store.connection());
    rate.hit("203.0.113.7", T0, MINUTE, 10).await.unwrap();
    attempts
        .record_failure("login:ip:203.0.113.7", T0, policy(5))
        .await
        .unwrap();
    let mut conn = db.connect().await;
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    sqlx::query("SELECT 1 FROM tjs_rate_limits FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT 1 FROM tjs_attempts FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(rate.hit("203.0.113.7", T0, MINUTE, 10).await.is_err());
    let reserve = attempts
        .reserve("login:ip:203.0.113.7", T0, policy(5))
        .await;
    assert!(reserve.is_err(), "{reserve:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    tx.rollback().await.unwrap();
    assert_eq!(
        rate.hit("203.0.113.7", T0, MINUTE, 10)
            .await
            .unwrap()
            .remaining,
        8
    );
}

/// p50 and p99 of `samples` (sorted here), in microseconds.
fn percentiles(samples: &mut [Duration]) -> (u128, u128) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50).as_micros(), at(0.99).as_micros())
}

/// Latency of one rate-limit hit and one attempt reservation, one after the other on one
/// connection's worth of load, sweeps included; then the same hit on a logged table, for
/// comparison. Every call must also decide right (each client's hits counted, every
/// reservation under a generous policy granted). A short run in the suite; the measurement:
/// `TJS_PG_LIMIT_SAMPLES=5000 cargo test --release --features postgres --lib rate_limit::postgres::tests::latency -- --nocapture`
#[tokio::test]
async fn latency_of_one_hit_and_one_reservation() {
    let n: usize = std::env::var("TJS_PG_LIMIT_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let db = TestDb::create().await;
    let store = &instances(1, settings(&db)).await[0];
    let rate = PostgresRateLimitBackend::new(store.connection());
    let attempts = PostgresAttemptBackend::new(store.connection());
    let generous = AttemptPolicy {
        max_failures: u32::MAX,
        window: Duration::from_secs(900),
        lockout: Duration::from_secs(900),
    };
    let now = crate::clock::unix_ms(std::time::SystemTime::now());
    // Warm the pool and the statement caches.
    for i in 0..200 {
        rate.hit(&format!("warm{i}"), now, MINUTE, 100)
            .await
            .unwrap();
        attempts
            .reserve(&format!("login:ip:warm{i}"), now, generous)
            .await
            .unwrap()
            .unwrap();
    }
    let mut report = Vec::new();
    for logged in [false, true] {
        if logged {
            let mut conn = db.connect().await;
            for table in ["tjs_rate_limits", "tjs_attempts"] {
                sqlx::query(&format!("ALTER TABLE {table} SET LOGGED"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
        let label = if logged { "logged" } else { "unlogged" };
        // A hit of a client seen before (an update), of 1 000 clients in turn.
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let key = format!("10.0.{}.{}/{label}", (i % 1000) / 256, i % 256);
            let started = std::time::Instant::now();
            let decision = rate
                .hit(&key, now, Duration::from_secs(900), u32::MAX)
                .await
                .unwrap();
            samples.push(started.elapsed());
            // The clients take turns, so this is the client's (i / 1000 + 1)-th hit.
            assert_eq!(
                u64::from(u32::MAX - decision.remaining),
                (i / 1000 + 1) as u64
            );
        }
        report.push((
            format!("rate-limit hit, {label}"),
            percentiles(&mut samples),
        ));
        // A hit of a new client (an insert).
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let key = format!("198.51.{}.{}/{label}", i / 256, i % 256);
            let started = std::time::Instant::now();
            let decision = rate
                .hit(&key, now, Duration::from_secs(900), 100)
                .await
                .unwrap();
            samples.push(started.elapsed());
            assert_eq!(decision.remaining, 99, "a new client's first hit");
        }
        report.push((
            format!("rate-limit hit of a new client, {label}"),
            percentiles(&mut samples),
        ));
        // A reservation (and its release, not timed) of 1 000 keys in turn.
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let key = format!("login:uc:user{}|203.0.113.7", i % 1000);
            let started = std::time::Instant::now();
            attempts
                .reserve(&key, now, generous)
                .await
                .unwrap()
                .unwrap();
            samples.push(started.elapsed());
            attempts.release(&key, now).await.unwrap();
        }
        report.push((
            format!("attempt reserve, {label}"),
            percentiles(&mut samples),
        ));
    }
    for (what, (p50, p99)) in report {
        println!("{what}: p50 {p50} µs, p99 {p99} µs ({n} samples)");
    }
}

/// A user name with a NUL (which a `text` key cannot hold) is counted like any other through
/// the tracker, not a backend failure: a client cannot make logins fail closed, or raise
/// store alerts, by typing one.
#[tokio::test]
async fn a_nul_in_a_user_name_is_counted_not_a_backend_failure() {
    use crate::rate_limit::{AttemptConfig, AttemptTracker};
    let db = TestDb::create().await;
    let store = &instances(1, settings(&db)).await[0];
    let tracker = AttemptTracker::with_backend(
        AttemptConfig::new(),
        std::sync::Arc::new(PostgresAttemptBackend::new(store.connection())),
    );
    let ip = "203.0.113.7".parse().unwrap();
    let attempt = tracker
        .begin_login("ali\0ce", ip)
        .await
        .expect("reserved, not refused as unavailable");
    tracker.login_failed(attempt).await;
    // Counted under its own key: not under the name without the NUL.
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM tjs_attempts ORDER BY key")
        .fetch_all(&mut db.connect().await)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| !k.contains('\0') && !k.contains("alice")),
        "{keys:?}"
    );
}

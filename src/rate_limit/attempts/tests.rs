//! Tests of the attempt tracker and its backends.

use http::{StatusCode, header};
use std::time::Instant;

use super::*;
use crate::clock::ManualClock;

const T0: u64 = 1_800_000_000_000;
const MINUTE: Duration = Duration::from_secs(60);

fn tracker_with(config: AttemptConfig) -> (AttemptTracker, ManualClock) {
    let clock = ManualClock::new(T0);
    let config = config.clock(Arc::new(clock.clone()));
    (AttemptTracker::new(config), clock)
}

fn tracker() -> (AttemptTracker, ManualClock) {
    tracker_with(AttemptConfig::new())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn fail(t: &AttemptTracker, user: &str, from: IpAddr) {
    let attempt = t.begin_login(user, from).await.expect("not locked");
    t.login_failed(attempt).await;
}

async fn succeed(t: &AttemptTracker, user: &str, from: IpAddr) -> Duration {
    let attempt = t.begin_login(user, from).await.expect("not locked");
    let delay = attempt.delay();
    t.login_succeeded(attempt).await;
    delay
}

/// The lock-out a login of `user` from `from` is refused with; panics when it is not refused.
async fn locked_out(t: &AttemptTracker, user: &str, from: IpAddr) -> LockedOut {
    t.begin_login(user, from)
        .await
        .unwrap_err()
        .locked_out()
        .copied()
        .expect("locked out")
}

#[tokio::test]
async fn a_lock_out_aimed_at_a_victim_does_not_refuse_her_other_client() {
    a_lock_out_aimed_at_a_victim_does_not_refuse_her_other_client_on(tracker()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_lock_out_aimed_at_a_victim_does_not_refuse_her_other_client_on_postgres() {
    let pg = postgres_tracker(AttemptConfig::new()).await;
    a_lock_out_aimed_at_a_victim_does_not_refuse_her_other_client_on((
        pg.tracker.clone(),
        pg.clock.clone(),
    ))
    .await;
}

async fn a_lock_out_aimed_at_a_victim_does_not_refuse_her_other_client_on(
    (t, clock): (AttemptTracker, ManualClock),
) {
    let attacker = ip("203.0.113.7");
    let laptop = ip("198.51.100.20");
    // The attacker fails as often as he is let, again and again.
    for round in 0..4 {
        for _ in 0..5 {
            fail(&t, "alice", attacker).await;
        }
        let locked = locked_out(&t, "alice", attacker).await;
        assert_eq!(
            locked.retry_after,
            Duration::from_secs(900),
            "round {round}"
        );
        // Alice's right password from her own laptop is never refused.
        succeed(&t, "alice", laptop).await;
        clock.advance(Duration::from_secs(900));
    }
    // And the attacker's client is refused for alice only, while other users' logins
    // from it go on (until its own, per-client, limit).
    for _ in 0..5 {
        fail(&t, "alice", attacker).await;
    }
    assert!(t.begin_login("alice", attacker).await.is_err());
    succeed(&t, "bob", attacker).await;
}

#[tokio::test]
async fn a_client_is_refused_for_everyone_after_twenty_failures_across_users() {
    let (t, clock) = tracker();
    let from = ip("2001:db8:1:2::1");
    for i in 0..20 {
        fail(&t, &format!("user{i}"), from).await;
    }
    // The /64 is one client; the next attempt is refused and starts the lock-out.
    let locked = t
        .begin_login("fresh", ip("2001:db8:1:2::ffff"))
        .await
        .unwrap_err()
        .locked_out()
        .copied()
        .expect("locked out");
    assert_eq!(locked.retry_after_secs(), 900);
    clock.advance(MINUTE);
    assert_eq!(
        locked_out(&t, "fresh", from).await.retry_after,
        Duration::from_secs(840)
    );
    // Another /64 is another client.
    succeed(&t, "fresh", ip("2001:db8:1:3::5")).await;
    // A refusal by the client key reserves nothing on the user+client key.
    clock.advance(Duration::from_secs(840));
    for _ in 0..5 {
        fail(&t, "fresh", from).await;
    }
}

/// 50 concurrent attempts on a multi-threaded runtime: exactly the limit pass.
async fn race(t: &AttemptTracker, users: impl Fn(usize) -> String) -> usize {
    let mut set = tokio::task::JoinSet::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    for i in 0..50 {
        let (t, barrier, user) = (t.clone(), barrier.clone(), users(i));
        set.spawn(async move {
            barrier.wait().await;
            match t.begin_login(&user, ip("203.0.113.7")).await {
                Ok(attempt) => {
                    t.login_failed(attempt).await;
                    1
                }
                Err(_) => 0,
            }
        });
    }
    set.join_all().await.into_iter().sum()
}

async fn parallel_reservations_let_exactly_the_limit_through(t: AttemptTracker) {
    assert_eq!(race(&t, |_| "alice".to_owned()).await, 5, "per user+client");
    assert_eq!(
        race(&t, |i| format!("user{i}")).await,
        20 - 5,
        "per client: 5 of its 20 already spent on alice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_reservations_let_exactly_the_limit_through_in_memory() {
    parallel_reservations_let_exactly_the_limit_through(AttemptTracker::default()).await;
}

#[cfg(feature = "redis")]
async fn redis_tracker() -> AttemptTracker {
    use crate::config::RedisSettings;
    use crate::store::redis::{RedisStore, redis_server};
    let settings = RedisSettings::new(redis_server::single().urls.clone())
        .with_key_prefix(redis_server::unique_prefix("attempts"))
        .with_timeout(Duration::from_secs(2));
    let store = RedisStore::connect(&settings)
        .await
        .expect("connect to the test Redis");
    AttemptTracker::with_backend(
        AttemptConfig::new(),
        Arc::new(super::super::RedisAttemptBackend::new(store.connection())),
    )
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_reservations_let_exactly_the_limit_through_on_redis() {
    parallel_reservations_let_exactly_the_limit_through(redis_tracker().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_redis_backend_follows_the_same_rules() {
    a_shared_backend_follows_the_same_rules(redis_tracker().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_postgres_backend_follows_the_same_rules() {
    let pg = postgres_tracker(AttemptConfig::new()).await;
    a_shared_backend_follows_the_same_rules(pg.tracker.clone()).await;
}

/// A shared backend on the system clock: lock-outs, releases on success, the user delay and
/// the refresh bucket, as in memory.
#[cfg(any(feature = "redis", feature = "postgres"))]
async fn a_shared_backend_follows_the_same_rules(t: AttemptTracker) {
    let (attacker, laptop) = (ip("203.0.113.7"), ip("198.51.100.20"));
    for _ in 0..5 {
        fail(&t, "alice", attacker).await;
    }
    let locked = locked_out(&t, "alice", attacker).await;
    assert!((899..=900).contains(&locked.retry_after_secs()));
    // Success clears the user+client count and releases the client's reservation.
    for _ in 0..30 {
        succeed(&t, "alice", laptop).await;
    }
    for _ in 0..4 {
        fail(&t, "bob", laptop).await;
    }
    succeed(&t, "bob", laptop).await;
    for _ in 0..5 {
        fail(&t, "bob", laptop).await;
    }
    assert!(t.begin_login("bob", laptop).await.is_err());
    // The user-alone count slows, never refuses: 10 failures of alice so far would be
    // needed; 5 from the attacker and none since.
    assert_eq!(succeed(&t, "alice", laptop).await, Duration::ZERO);
    for i in 0..5 {
        fail(&t, "alice", ip(&format!("192.0.2.{i}"))).await;
    }
    assert_eq!(
        succeed(&t, "alice", laptop).await,
        Duration::from_millis(250)
    );
    // The refresh bucket.
    for _ in 0..19 {
        t.record_refresh_failure(laptop).await;
    }
    assert!(t.check_refresh(laptop).await.is_ok());
    t.record_refresh_failure(laptop).await;
    assert!(t.check_refresh(laptop).await.is_err());
    assert!(t.check_refresh(attacker).await.is_ok());
}

/// A tracker on the PostgreSQL backend of a store on a database of its own, on a manual clock
/// (the backend takes its times from the tracker).
#[cfg(feature = "postgres")]
struct PostgresTracker {
    tracker: AttemptTracker,
    clock: ManualClock,
    _store: crate::store::PostgresStore,
    _db: crate::store::postgres::pg_server::TestDb,
}

#[cfg(feature = "postgres")]
async fn postgres_tracker(config: AttemptConfig) -> PostgresTracker {
    use crate::config::PostgresSettings;
    use crate::store::PostgresStore;
    use crate::store::postgres::pg_server::TestDb;
    let db = TestDb::create().await;
    let store = PostgresStore::connect(
        &PostgresSettings::new(&db.url).with_timeout(Duration::from_secs(5)),
    )
    .await
    .expect("connect to the test PostgreSQL");
    let clock = ManualClock::new(T0);
    let tracker = AttemptTracker::with_backend(
        config.clock(Arc::new(clock.clone())),
        Arc::new(super::super::PostgresAttemptBackend::new(
            store.connection(),
        )),
    );
    PostgresTracker {
        tracker,
        clock,
        _store: store,
        _db: db,
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_reservations_let_exactly_the_limit_through_on_postgres() {
    let pg = postgres_tracker(AttemptConfig::new()).await;
    parallel_reservations_let_exactly_the_limit_through(pg.tracker.clone()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn an_abandoned_attempt_is_given_back_on_postgres() {
    let pg = postgres_tracker(AttemptConfig::new()).await;
    an_abandoned_attempt_is_given_back_and_clears_nothing(pg.tracker.clone()).await;
}

/// An abandoned attempt (the check could not be made) gives both reservations back and
/// keeps the earlier failures; the user's delay count does not grow.
async fn an_abandoned_attempt_is_given_back_and_clears_nothing(t: AttemptTracker) {
    let from = ip("198.51.100.20");
    let abandon = async |user: &str| {
        let attempt = t.begin_login(user, from).await.expect("not locked");
        t.login_abandoned(attempt).await;
    };
    for _ in 0..50 {
        abandon("alice").await;
    }
    for i in 0..50 {
        abandon(&format!("user{i}")).await;
    }
    // Four wrong guesses, abandoned attempts between them: the fifth is still the last.
    for _ in 0..4 {
        fail(&t, "alice", from).await;
        abandon("alice").await;
    }
    fail(&t, "alice", from).await;
    assert!(t.begin_login("alice", from).await.is_err());
    // The client key holds those five: fifteen more failures at others exhaust it.
    for i in 0..15 {
        abandon(&format!("other{i}")).await;
        fail(&t, &format!("other{i}"), from).await;
    }
    assert!(t.begin_login("fresh", from).await.is_err());
    // The delay count of a user only grows with failures.
    let elsewhere = ip("192.0.2.1");
    for _ in 0..20 {
        let attempt = t.begin_login("carol", elsewhere).await.unwrap();
        assert_eq!(attempt.delay(), Duration::ZERO);
        t.login_abandoned(attempt).await;
    }
}

#[tokio::test]
async fn an_abandoned_attempt_is_given_back_in_memory() {
    an_abandoned_attempt_is_given_back_and_clears_nothing(tracker().0).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_abandoned_attempt_is_given_back_on_redis() {
    an_abandoned_attempt_is_given_back_and_clears_nothing(redis_tracker().await).await;
}

#[tokio::test]
async fn success_releases_the_reservation() {
    let (t, _) = tracker_with(AttemptConfig::new().max_failures_per_ip(3));
    let from = ip("198.51.100.1");
    // Four failures and a success: the user+client count starts over.
    let (t5, _) = tracker();
    for _ in 0..4 {
        fail(&t5, "alice", from).await;
    }
    succeed(&t5, "alice", from).await;
    for _ in 0..5 {
        fail(&t5, "alice", from).await;
    }
    assert!(t5.begin_login("alice", from).await.is_err());

    // The client's count keeps its failures but not the successes.
    fail(&t, "x", from).await;
    fail(&t, "y", from).await;
    for _ in 0..50 {
        succeed(&t, "alice", from).await;
    }
    fail(&t, "z", from).await;
    assert!(t.begin_login("alice", from).await.is_err());
    // A reservation held while others race counts against them until it is released.
    let (t, _) = tracker_with(AttemptConfig::new().max_failures_per_ip(2));
    let first = t.begin_login("alice", from).await.unwrap();
    let second = t.begin_login("bob", from).await.unwrap();
    t.login_succeeded(first).await;
    t.login_succeeded(second).await;
    succeed(&t, "carol", from).await;
    succeed(&t, "carol", from).await;
}

#[tokio::test]
async fn the_delay_grows_on_the_user_alone_and_never_refuses() {
    the_delay_grows_on_the_user_alone_and_never_refuses_on(tracker()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_delay_grows_on_the_user_alone_and_never_refuses_on_postgres() {
    let pg = postgres_tracker(AttemptConfig::new()).await;
    the_delay_grows_on_the_user_alone_and_never_refuses_on((pg.tracker.clone(), pg.clock.clone()))
        .await;
}

async fn the_delay_grows_on_the_user_alone_and_never_refuses_on(
    (t, clock): (AttemptTracker, ManualClock),
) {
    let laptop = ip("198.51.100.20");
    let ms = Duration::from_millis;
    // One failure from each of many clients: none of them is locked out, but alice's
    // logins, from anywhere, are slowed.
    for k in 1..=14 {
        fail(&t, "alice", ip(&format!("192.0.2.{k}"))).await;
        let want = match k {
            ..=9 => 0,
            10 => 250,
            11 => 500,
            12 => 1000,
            _ => 2000,
        };
        assert_eq!(succeed(&t, "alice", laptop).await, ms(want), "after {k}");
    }
    // Other users are not slowed.
    assert_eq!(succeed(&t, "bob", laptop).await, Duration::ZERO);
    // A hundred more failures from a hundred clients: still only a delay, capped.
    for i in 0..100 {
        fail(&t, "alice", ip(&format!("10.1.0.{i}"))).await;
    }
    assert_eq!(succeed(&t, "alice", laptop).await, ms(2000));
    // The window ends: no delay.
    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(succeed(&t, "alice", laptop).await, Duration::ZERO);
}

#[test]
fn the_delay_schedule() {
    let c = AttemptConfig::new();
    let ms = |n| super::user_delay(&c, n).as_millis();
    assert_eq!(
        [0, 9, 10, 11, 12, 13, 14, 1000, u32::MAX].map(ms),
        [0, 0, 250, 500, 1000, 2000, 2000, 2000, 2000]
    );
    assert_eq!(
        super::user_delay(&AttemptConfig::new().user_delay_after(0), 1000),
        Duration::ZERO
    );
    let c = AttemptConfig::new().max_user_delay(Duration::from_millis(300));
    assert_eq!(super::user_delay(&c, 12), Duration::from_millis(300));
}

#[tokio::test]
async fn windows_and_lock_outs_expire_on_the_clock() {
    windows_and_lock_outs_expire_on_the_clock_on(tracker()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn windows_and_lock_outs_expire_on_the_clock_on_postgres() {
    let pg = postgres_tracker(AttemptConfig::new()).await;
    windows_and_lock_outs_expire_on_the_clock_on((pg.tracker.clone(), pg.clock.clone())).await;
}

async fn windows_and_lock_outs_expire_on_the_clock_on((t, clock): (AttemptTracker, ManualClock)) {
    let from = ip("198.51.100.1");
    // Four failures, then the window ends: they do not add up with the next ones.
    for _ in 0..4 {
        fail(&t, "alice", from).await;
        clock.advance(MINUTE);
    }
    clock.advance(Duration::from_secs(11 * 60));
    for _ in 0..5 {
        fail(&t, "alice", from).await;
    }
    // The sixth starts a lock-out of 15 minutes, which further attempts do not extend.
    assert_eq!(
        locked_out(&t, "alice", from).await.retry_after,
        Duration::from_secs(900)
    );
    clock.advance(Duration::from_secs(899));
    assert_eq!(
        locked_out(&t, "alice", from).await.retry_after,
        Duration::from_secs(1)
    );
    clock.advance(Duration::from_secs(1));
    // After the lock-out the count starts from zero.
    for _ in 0..5 {
        fail(&t, "alice", from).await;
    }
    assert!(t.begin_login("alice", from).await.is_err());
}

#[tokio::test]
async fn refresh_failures_have_their_own_bucket() {
    refresh_failures_have_their_own_bucket_on(tracker()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn refresh_failures_have_their_own_bucket_on_postgres() {
    let pg = postgres_tracker(AttemptConfig::new()).await;
    refresh_failures_have_their_own_bucket_on((pg.tracker.clone(), pg.clock.clone())).await;
}

async fn refresh_failures_have_their_own_bucket_on((t, clock): (AttemptTracker, ManualClock)) {
    let from = ip("198.51.100.1");
    for _ in 0..19 {
        t.record_refresh_failure(from).await;
    }
    assert!(t.check_refresh(from).await.is_ok());
    t.record_refresh_failure(from).await;
    let locked = t.check_refresh(from).await.unwrap_err();
    assert_eq!(locked.retry_after_secs(), 900);
    // Logins from that client are not refused, and failed logins do not touch refreshes.
    succeed(&t, "alice", from).await;
    let other = ip("198.51.100.2");
    for i in 0..20 {
        fail(&t, &format!("user{i}"), other).await;
    }
    assert!(t.check_refresh(other).await.is_ok());
    clock.advance(Duration::from_secs(900));
    assert!(t.check_refresh(from).await.is_ok());
}

#[tokio::test]
async fn zero_disables_a_limit_and_long_user_ids_are_hashed() {
    let (t, _) = tracker_with(
        AttemptConfig::new()
            .max_failures_per_ip(0)
            .max_failures_per_user_client(2)
            .max_refresh_failures_per_ip(0),
    );
    let from = ip("198.51.100.1");
    let long = "x".repeat(10_000);
    for i in 0..50 {
        fail(&t, &format!("u{i}"), from).await;
        t.record_refresh_failure(from).await;
    }
    assert!(t.check_refresh(from).await.is_ok());
    fail(&t, &long, from).await;
    fail(&t, &long, from).await;
    assert!(t.begin_login(&long, from).await.is_err());
    let keys = LoginKeys::new(&long, from, 64);
    assert_eq!(
        keys.user_client,
        format!("login:uc#{}|198.51.100.1", &user_part(&long).1)
    );
    assert_eq!(keys.user.len(), "login:user#".len() + 64);
    assert_eq!(
        LoginKeys::new("a|b", ip("2001:db8::1"), 64).user_client,
        "login:uc:a|b|2001:db8::/64"
    );
    assert_eq!(loggable(&long).len(), MAX_LOGGED_USER_LEN);
    assert_eq!(loggable(&"é".repeat(40)).len(), 64);
}

#[tokio::test]
async fn the_lock_out_answer_is_a_429_with_retry_after() {
    let locked = LockedOut {
        retry_after: Duration::from_millis(61_500),
    };
    let res = locked.to_response();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "62");
    assert_eq!(res.extensions().get::<LockedOut>(), Some(&locked));
    let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(
        body["message"],
        "too many failed attempts; try again in 62 seconds"
    );
}

#[test]
fn entries_expire_when_their_window_ends_and_locked_ones_stay() {
    let b = MemoryAttemptBackend::new(1_000);
    let policy = AttemptPolicy {
        max_failures: 2,
        window: Duration::from_millis(100),
        lockout: Duration::from_secs(60),
    };
    for i in 0..100 {
        assert_eq!(b.reserve_now(&format!("login:ip:{i}"), T0, policy), Ok(()));
    }
    assert_eq!(b.reserve_now("login:ip:0", T0, policy), Ok(()));
    assert!(b.reserve_now("login:ip:0", T0, policy).is_err());
    b.run_pending_tasks();
    assert_eq!(b.entry_count(), 100);
    // moka's timer wheel works in ticks of about one second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.entry_count() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        b.run_pending_tasks();
    }
    assert_eq!(b.entry_count(), 1, "only the locked key is still needed");
    assert!(b.state_now("login:ip:0", T0).locked_until_ms.is_some());
}

#[tokio::test]
async fn a_flood_of_distinct_clients_keeps_memory_bounded() {
    let backend = Arc::new(MemoryAttemptBackend::new(1_000));
    let t = AttemptTracker::with_backend(AttemptConfig::new(), backend.clone());
    for i in 0..20_000u32 {
        let [_, a, b, c] = i.to_be_bytes();
        let from = IpAddr::from([10, a, b, c]);
        fail(&t, &format!("user{i}"), from).await;
        t.record_refresh_failure(from).await;
    }
    backend.run_pending_tasks();
    assert!(backend.entry_count() <= 1_000, "{}", backend.entry_count());
}

//! Two instances (two managers) on one store, racing on a multi-threaded runtime.
//!
//! The answers of racing operations depend on the interleaving, so these tests check the
//! invariants rather than a model's answers: one successor per refresh token; an ended session
//! never answers active again (at once on the instance that ended it, within the propagation
//! bound on the other); never more live sessions than the limit; records within the bound.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tower_jwt_session::config::ManualClock;
use tower_jwt_session::{
    SessionError, SessionManager, manager::TokenPair, response::AuthError, session::SessionId,
};

use crate::model::reference::{Limits, Policy};
use crate::model::{Backend, StoreKind, env_number};

const LIMITS: Limits = Limits {
    access: 2_000,
    leeway: 1_000,
    refresh: 6_000,
    session: 15_000,
    reuse: 500,
    max: 3,
    policy: Policy::Evict,
};

/// Two instances on one store, on one manual clock.
struct Instances {
    backend: Backend,
    managers: [SessionManager; 2],
    clock: ManualClock,
    /// How long after a revocation the other instance may still accept the session's tokens.
    bound: Duration,
}

async fn instances(kind: StoreKind, limits: Limits) -> Instances {
    let backend = Backend::open(kind, &limits).await;
    // The memory store has no pub/sub: the other instance learns of a revocation when its cached
    // "active" answer expires, so keep that short. Redis pushes revocations to every instance;
    // its bound is SPEC §3's second, with the default cache lifetime.
    let (config, bound) = match kind {
        StoreKind::Memory => (
            backend.config.clone().with_revocation_cache(
                tower_jwt_session::config::RevocationCacheSettings::default()
                    .with_ttl(Duration::from_millis(100)),
            ),
            Duration::from_millis(100 + 400),
        ),
        #[cfg(any(feature = "redis", feature = "postgres"))]
        _ => (backend.config.clone(), Duration::from_secs(1)),
    };
    let clock = ManualClock::new(kind.clock_start());
    let second = backend.second_instance().await;
    let build = |store| {
        SessionManager::builder(config.clone())
            .shared_store(store)
            .clock(clock.clone())
            .build()
            .expect("manager")
    };
    let managers = [build(backend.store.clone()), build(second)];
    Instances {
        backend,
        managers,
        clock,
        bound,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A small deterministic generator (xorshift64*), seeded from `TJS_MODEL_SEED` or the time.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn seeded() -> (Self, u64) {
        let seed = std::env::var("TJS_MODEL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        (Rng(seed | 1), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Any number of concurrent refreshes of one token, split over both instances, agree on one
/// successor; repeated down a chain of rotations.
async fn refreshes_agree(kind: StoreKind) {
    let mut it = instances(kind, LIMITS).await;
    let login = it.managers[0]
        .create_session(
            tower_jwt_session::manager::NewSession::new("racer").roles(&["user".to_owned()]),
        )
        .await
        .unwrap();
    let mut token = login.refresh_token;
    for round in 0..10 {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let manager = it.managers[i % 2].clone();
                let token = token.clone();
                tokio::spawn(async move { manager.refresh(&token).await })
            })
            .collect();
        let mut successors = HashSet::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(pair) => {
                    successors.insert(pair.refresh_token);
                }
                Err(e) => panic!(
                    "{} round {round}: a racing refresh failed: {e:?}",
                    kind.name()
                ),
            }
        }
        assert_eq!(
            successors.len(),
            1,
            "{} round {round}: 64 racing refreshes of one token got {} successors",
            kind.name(),
            successors.len()
        );
        token = successors.into_iter().next().unwrap();
        it.clock.advance(Duration::from_millis(LIMITS.reuse + 1));
    }
    it.backend.cleanup().await;
}

/// Logout racing refresh: once the logout has returned, the session's newest tokens are refused
/// by the instance that logged out at once, and by the other within the propagation bound.
async fn logout_races_refresh(kind: StoreKind) {
    let mut it = instances(kind, LIMITS).await;
    let (mut rng, seed) = Rng::seeded();
    let rounds = env_number("TJS_RACE_ROUNDS", 100);
    let mut refreshed_first = 0;
    for round in 0..rounds {
        let (x, y) = (rng.below(2) as usize, rng.below(2) as usize);
        let login = it.managers[rng.below(2) as usize]
            .create_session(
                tower_jwt_session::manager::NewSession::new(format!("victim-{}", round % 3))
                    .roles(&["user".to_owned()]),
            )
            .await
            .unwrap();
        let sid = login.session_id;
        // Both instances have seen the session (and cached it as active).
        for m in &it.managers {
            m.verify_access_token(&login.access_token).await.unwrap();
        }
        let refresher = it.managers[x].clone();
        let token = login.refresh_token.clone();
        let refresh = tokio::spawn(async move { refresher.refresh(&token).await });
        if rng.below(2) == 0 {
            tokio::task::yield_now().await;
        }
        let revoker = it.managers[y].clone();
        let revoke = tokio::spawn(async move { revoker.revoke(sid).await });
        let revoked = revoke.await.unwrap().expect("logout");
        let ended = Instant::now();
        let refreshed = refresh.await.unwrap();
        assert_eq!(
            revoked, 1,
            "seed {seed} round {round}: the logout found the session not live"
        );
        let mut access = vec![login.access_token.clone()];
        match &refreshed {
            Ok(pair) => {
                refreshed_first += 1;
                access.push(pair.access_token.clone());
                for m in &it.managers {
                    match m.refresh(&pair.refresh_token).await {
                        Err(SessionError::Revoked) => {}
                        other => panic!(
                            "{} seed {seed} round {round}: the successor refresh token of a logged-out session answers {:?}",
                            kind.name(),
                            other.map(|p| p.session_id)
                        ),
                    }
                }
            }
            Err(SessionError::Revoked) => {}
            Err(e) => panic!(
                "{} seed {seed} round {round}: refresh racing logout: {e:?}",
                kind.name()
            ),
        }
        for token in &access {
            match it.managers[y].verify_access_token(token).await {
                Err(AuthError::Revoked) => {}
                other => panic!(
                    "{} seed {seed} round {round} (refresh on {x}, logout on {y}, refresh {}): the instance that logged out accepts the session's access token after the logout returned: {:?}",
                    kind.name(),
                    if refreshed.is_ok() { "won" } else { "lost" },
                    other.map(|s| s.session_id())
                ),
            }
            loop {
                match it.managers[1 - y].verify_access_token(token).await {
                    Err(AuthError::Revoked) => break,
                    Ok(_) if ended.elapsed() < it.bound => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    other => panic!(
                        "{} seed {seed} round {round}: the other instance still answers {:?} {:?} after the logout",
                        kind.name(),
                        other.map(|s| s.session_id()),
                        ended.elapsed()
                    ),
                }
            }
        }
        // Ending the session moves nothing in time: the next round's logins find room.
        it.clock.advance(Duration::from_millis(1));
    }
    // Every session of the race was logged out: ended sessions are deleted at once.
    let victims: Vec<String> = (0..3).map(|v| format!("victim-{v}")).collect();
    let held = it.backend.held(&victims).await;
    assert_eq!(
        held.total_records,
        0,
        "{}: records left after every session was logged out: {:?}",
        kind.name(),
        held.per_user
    );
    eprintln!(
        "race [{}]: {rounds} logout/refresh races, the refresh won {refreshed_first} (seed {seed})",
        kind.name()
    );
    it.backend.cleanup().await;
}

/// Logins racing at the limit, over both instances: never more live sessions than the limit;
/// under `deny` exactly the free places are granted.
async fn logins_race_at_the_limit(kind: StoreKind, policy: Policy) {
    let limits = Limits { policy, ..LIMITS };
    let mut it = instances(kind, limits).await;
    let (mut rng, seed) = Rng::seeded();
    for round in 0..20 {
        let user = format!("crowd-{round}");
        let already = rng.below(limits.max as u64 + 1) as usize;
        for _ in 0..already {
            it.managers[0]
                .create_session(
                    tower_jwt_session::manager::NewSession::new(&user).roles(&["user".to_owned()]),
                )
                .await
                .unwrap();
            it.clock.advance(Duration::from_millis(1));
        }
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let manager = it.managers[i % 2].clone();
                let user = user.clone();
                tokio::spawn(async move {
                    manager
                        .create_session(
                            tower_jwt_session::manager::NewSession::new(&user)
                                .roles(&["user".to_owned()]),
                        )
                        .await
                })
            })
            .collect();
        let mut granted = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => granted += 1,
                Err(SessionError::LimitReached) if policy == Policy::Deny => {}
                Err(e) => panic!("{} seed {seed}: a racing login failed: {e:?}", kind.name()),
            }
        }
        for m in &it.managers {
            let live = m.sessions(&user).await.unwrap().len();
            assert_eq!(
                live,
                limits.max,
                "{} {policy:?} seed {seed} round {round}: {live} live sessions after racing logins, limit {}",
                kind.name(),
                limits.max
            );
        }
        if policy == Policy::Deny {
            assert_eq!(
                granted,
                limits.max - already,
                "{} seed {seed}: deny granted",
                kind.name()
            );
        }
        let crowd: Vec<String> = (0..20).map(|r| format!("crowd-{r}")).collect();
        check_held(&mut it.backend, limits.max, &crowd).await;
    }
    it.backend.cleanup().await;
}

/// The store's records within the bound: per user (Redis) and in total over `users`.
async fn check_held(backend: &mut Backend, max: usize, users: &[String]) {
    let held = backend.held(users).await;
    let users = users.len();
    assert!(
        held.total_records <= users * 2 * max,
        "{} records held for {users} users with limit {max}",
        held.total_records
    );
    for (tag, records, members) in &held.per_user {
        assert!(
            *records <= 2 * max && *members <= 2 * max,
            "user {tag}: {records} records, {members} index members, limit {max}"
        );
    }
}

/// What both instances' tasks share in the random interleaving test.
#[derive(Default)]
struct Shared {
    /// Sessions as the clients hold them: newest refresh token and access tokens.
    sessions: Vec<Held>,
    /// Presented refresh token -> successor.
    successors: HashMap<String, String>,
    /// Ended sessions: when the operation that ended them returned, and on which instance.
    ended: HashMap<SessionId, (Instant, usize)>,
}

struct Held {
    sid: SessionId,
    user: usize,
    refresh: Vec<String>,
    access: Vec<String>,
    /// When the create returned.
    created: Instant,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records an Ok refresh: one successor per presented token.
fn record_refresh(
    shared: &Mutex<Shared>,
    i: usize,
    presented: &str,
    pair: &TokenPair,
) -> Result<(), String> {
    let mut s = lock(shared);
    if let Some(before) = s
        .successors
        .insert(presented.to_owned(), pair.refresh_token.clone())
        && before != pair.refresh_token
    {
        return Err("one refresh token got two different successors".into());
    }
    let held = &mut s.sessions[i];
    if !held.refresh.contains(&pair.refresh_token) {
        held.refresh.push(pair.refresh_token.clone());
    }
    held.access.push(pair.access_token.clone());
    Ok(())
}

/// One instance's share of the random interleaving.
async fn worker(
    me: usize,
    manager: SessionManager,
    clock: ManualClock,
    shared: Arc<Mutex<Shared>>,
    mut rng: Rng,
    ops: u64,
    bound: Duration,
) -> Result<(), String> {
    const USERS: usize = 3;
    let roles = ["user".to_owned()];
    for step in 0..ops {
        let pick = {
            let s = lock(&shared);
            // Mostly the newest sessions, where the races are.
            let n = s.sessions.len();
            (n > 0).then(|| n - 1 - rng.below(n.min(6) as u64) as usize)
        };
        let roll = rng.below(100);
        let context = |what: String| format!("instance {me} step {step}: {what}");
        match (roll, pick) {
            (0..=9, _) | (_, None) => {
                let user = rng.below(USERS as u64) as usize;
                match manager
                    .create_session(
                        tower_jwt_session::manager::NewSession::new(format!("mixed-{user}"))
                            .roles(&roles),
                    )
                    .await
                {
                    Ok(pair) => lock(&shared).sessions.push(Held {
                        sid: pair.session_id,
                        user,
                        refresh: vec![pair.refresh_token],
                        access: vec![pair.access_token],
                        created: Instant::now(),
                    }),
                    Err(e) => return Err(context(format!("login: {e:?}"))),
                }
            }
            (10..=59, Some(i)) => {
                // Refresh with the newest token, or replay an older one.
                let (token, sid, ended_before) = {
                    let s = lock(&shared);
                    let held = &s.sessions[i];
                    let back = if roll < 50 { 0 } else { rng.below(3) as usize };
                    let k = held.refresh.len() - 1 - back.min(held.refresh.len() - 1);
                    (
                        held.refresh[k].clone(),
                        held.sid,
                        s.ended.contains_key(&held.sid),
                    )
                };
                match manager.refresh(&token).await {
                    Ok(pair) => {
                        if ended_before {
                            return Err(context(format!("an ended session {sid} refreshed")));
                        }
                        record_refresh(&shared, i, &token, &pair).map_err(context)?;
                    }
                    Err(SessionError::TokenReused(_)) => {
                        lock(&shared).ended.insert(sid, (Instant::now(), me));
                    }
                    Err(
                        SessionError::Revoked
                        | SessionError::TokenExpired
                        | SessionError::SessionExpired,
                    ) => {}
                    Err(e) => return Err(context(format!("refresh: {e:?}"))),
                }
            }
            (60..=63, Some(i)) => {
                let sid = lock(&shared).sessions[i].sid;
                manager
                    .revoke(sid)
                    .await
                    .map_err(|e| context(format!("logout: {e:?}")))?;
                lock(&shared).ended.insert(sid, (Instant::now(), me));
            }
            (64..=65, _) => {
                let user = rng.below(USERS as u64) as usize;
                let started = Instant::now();
                manager
                    .revoke(tower_jwt_session::manager::Revoke::User(&format!(
                        "mixed-{user}"
                    )))
                    .await
                    .map_err(|e| context(format!("logout-all: {e:?}")))?;
                let done = Instant::now();
                let mut s = lock(&shared);
                let gone: Vec<SessionId> = s
                    .sessions
                    .iter()
                    .filter(|h| h.user == user && h.created < started)
                    .map(|h| h.sid)
                    .collect();
                // As ended elsewhere: logout-all tells this instance's cache of the sessions
                // that were live only, and an expired one's access token may still be in its
                // leeway, answered from a cached "active" until that expires.
                for sid in gone {
                    s.ended.entry(sid).or_insert((done, usize::MAX));
                }
            }
            (66..=89, Some(i)) => {
                let (token, sid, ended) = {
                    let s = lock(&shared);
                    let held = &s.sessions[i];
                    let k = rng.below(held.access.len() as u64) as usize;
                    (
                        held.access[k].clone(),
                        held.sid,
                        s.ended.get(&held.sid).copied(),
                    )
                };
                let checked = Instant::now();
                match manager.verify_access_token(&token).await {
                    Ok(_) => {
                        if let Some((at, by)) = ended
                            && (by == me || checked.duration_since(at) > bound)
                        {
                            return Err(context(format!(
                                "session {sid}, ended {:?} ago on instance {by}, answered active",
                                checked.duration_since(at)
                            )));
                        }
                    }
                    Err(AuthError::Expired | AuthError::Revoked) => {}
                    Err(e) => return Err(context(format!("verify: {e:?}"))),
                }
            }
            (90..=94, _) => {
                let user = rng.below(USERS as u64) as usize;
                let live = manager
                    .sessions(&format!("mixed-{user}"))
                    .await
                    .map_err(|e| context(format!("sessions: {e:?}")))?;
                if live.len() > LIMITS.max {
                    return Err(context(format!(
                        "{} live sessions, limit {}",
                        live.len(),
                        LIMITS.max
                    )));
                }
            }
            _ => {
                // Time moves: mostly a little, sometimes past a lifetime.
                let ms = match rng.below(10) {
                    0 => LIMITS.refresh + 1,
                    1 => LIMITS.access + LIMITS.leeway + 1,
                    _ => rng.below(LIMITS.reuse * 2),
                };
                clock.advance(Duration::from_millis(ms));
            }
        }
    }
    Ok(())
}

/// Both instances run random operations on shared sessions at the same time.
async fn random_interleaving(kind: StoreKind) {
    let mut it = instances(kind, LIMITS).await;
    let (mut rng, seed) = Rng::seeded();
    let ops = env_number("TJS_CONCURRENCY_OPS", 1_000);
    let shared = Arc::new(Mutex::new(Shared::default()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..2)
        .map(|me| {
            let rng = Rng(rng.next() | 1);
            tokio::spawn(worker(
                me,
                it.managers[me].clone(),
                it.clock.clone(),
                shared.clone(),
                rng,
                ops,
                it.bound,
            ))
        })
        .collect();
    for task in tasks {
        if let Err(e) = task.await.unwrap() {
            panic!(
                "{} two-instance run (TJS_MODEL_SEED={seed}): {e}",
                kind.name()
            );
        }
    }
    for user in 0..3 {
        for m in &it.managers {
            let live = m.sessions(&format!("mixed-{user}")).await.unwrap().len();
            assert!(live <= LIMITS.max, "{}: {live} live sessions", kind.name());
        }
    }
    let users: Vec<String> = (0..3).map(|u| format!("mixed-{u}")).collect();
    check_held(&mut it.backend, LIMITS.max, &users).await;
    let (sessions, refreshes, ended) = {
        let s = lock(&shared);
        (s.sessions.len(), s.successors.len(), s.ended.len())
    };
    eprintln!(
        "two instances [{}]: 2 x {ops} random operations in {:.1?}, {sessions} sessions, {refreshes} refreshes answered, {ended} ended (seed {seed})",
        kind.name(),
        started.elapsed(),
    );
    it.backend.cleanup().await;
}

/// Every two-instance check, on one store.
fn all(kind: StoreKind) {
    let rt = runtime();
    #[cfg(feature = "postgres")]
    let _db = matches!(kind, StoreKind::Postgres | StoreKind::SealedPostgres)
        .then(|| crate::model::PgRun::start(&rt));
    rt.block_on(refreshes_agree(kind));
    rt.block_on(logout_races_refresh(kind));
    rt.block_on(logins_race_at_the_limit(kind, Policy::Evict));
    rt.block_on(logins_race_at_the_limit(kind, Policy::Deny));
    rt.block_on(random_interleaving(kind));
}

#[test]
fn two_instances_memory() {
    all(StoreKind::Memory);
}

#[cfg(feature = "redis")]
#[test]
fn two_instances_redis() {
    all(StoreKind::Redis);
}

#[cfg(feature = "redis")]
#[test]
fn two_instances_cluster() {
    all(StoreKind::Cluster);
}

#[cfg(feature = "redis")]
#[test]
fn two_instances_sealed_redis() {
    all(StoreKind::Sealed);
}

#[cfg(feature = "postgres")]
#[test]
fn two_instances_postgres() {
    all(StoreKind::Postgres);
}

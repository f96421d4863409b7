//! Tests of the PostgreSQL store on the real server: the shared suite (plain and sealed), and
//! what only this store has (migrations, what the table holds, LISTEN/NOTIFY, purging,
//! time-outs, connections killed under it). Each test makes and drops a database of its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::pg_server::TestDb;
use super::*;
use crate::config::{PostgresSettings, SessionLimitPolicy};
use crate::session::SessionId;
use crate::store::{
    CreateOutcome, Lifetimes, RevocationEvent, RotateOutcome, RotateRequest, SessionLimit,
    SessionRecord, SessionStore, StoreError, suite,
};

const KEY_1: [u8; 32] = [7; 32];
const KEY_2: [u8; 32] = [9; 32];

fn settings(db: &TestDb) -> PostgresSettings {
    PostgresSettings::new(&db.url).with_timeout(Duration::from_secs(5))
}

/// A store on a database of its own, which goes when the store does.
#[derive(Debug)]
pub(super) struct TestStore {
    store: PostgresStore,
    db: Arc<TestDb>,
}

async fn test_store(sealed: bool) -> TestStore {
    let db = TestDb::create().await;
    let mut s = settings(&db);
    if sealed {
        s = s.with_encryption_key(&KEY_1).unwrap();
    }
    TestStore {
        store: PostgresStore::connect(&s).await.expect("connect"),
        db: Arc::new(db),
    }
}

#[async_trait]
impl SessionStore for TestStore {
    fn keeps_activity(&self) -> bool {
        self.store.keeps_activity()
    }
    async fn record_activity(
        &self,
        event: &crate::store::SecurityEvent,
        bounds: crate::store::ActivityBounds,
        now: u64,
    ) -> Result<(), StoreError> {
        self.store.record_activity(event, bounds, now).await
    }
    async fn activity(
        &self,
        user_id: &str,
        bounds: crate::store::ActivityBounds,
        now: u64,
    ) -> Result<Vec<crate::store::SecurityEvent>, StoreError> {
        self.store.activity(user_id, bounds, now).await
    }
    fn watch_revocations(&self, sink: crate::store::RevocationSink) {
        self.store.watch_revocations(sink);
    }
    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
        lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<CreateOutcome, StoreError> {
        self.store.create(record, limit, lifetimes, now).await
    }
    async fn rotate(&self, request: RotateRequest) -> Result<RotateOutcome, StoreError> {
        self.store.rotate(request).await
    }
    async fn get(&self, session_id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.store.get(session_id).await
    }
    async fn list(&self, user_id: &str, now: u64) -> Result<Vec<SessionRecord>, StoreError> {
        self.store.list(user_id, now).await
    }
    async fn revoke(&self, session_id: SessionId, now: u64) -> Result<bool, StoreError> {
        self.store.revoke(session_id, now).await
    }
    async fn revoke_all(&self, user_id: &str, now: u64) -> Result<Vec<SessionId>, StoreError> {
        self.store.revoke_all(user_id, now).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
    fn kind(&self) -> &'static str {
        self.store.kind()
    }
}

mod plain {
    crate::store_suite!(super::test_store(false).await);
}

mod sealed {
    crate::store_suite!(super::test_store(true).await);
}

fn l() -> Lifetimes {
    suite::lifetimes()
}

async fn create(store: &PostgresStore, user: &str, now: u64) -> SessionRecord {
    let r = suite::record(user, now, &l());
    let out = store
        .create(r.clone(), suite::limit(10), &l(), now)
        .await
        .unwrap();
    assert_eq!(out, CreateOutcome::Created { evicted: vec![] });
    r
}

fn rotate_req(sid: SessionId, generation: u64, now: u64) -> RotateRequest {
    RotateRequest {
        session_id: sid,
        generation,
        now,
        lifetimes: l(),
        update: None,
        deadline: None,
    }
}

#[test]
fn the_kind_is_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(test_store(false));
    assert_eq!(store.kind(), "postgres");
    runtime.block_on(async { drop(store) });
}

/// Eight instances starting at once on an empty database all come up, and the tables exist
/// once; starting again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_safe_from_several_instances() {
    let db = TestDb::create().await;
    let mut starts = Vec::new();
    for _ in 0..8 {
        let s = settings(&db);
        starts.push(tokio::spawn(
            async move { PostgresStore::connect(&s).await },
        ));
    }
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().expect("every instance starts"));
    }
    let again = PostgresStore::connect(&settings(&db)).await.unwrap();
    let mut conn = db.connect().await;
    let version: String =
        sqlx::query_scalar("SELECT value FROM tjs_meta WHERE name = 'schema_version'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(version, "4");
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT relname::text, relpersistence::text FROM pg_class \
         WHERE relkind = 'r' AND relname LIKE 'tjs\\_%' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let tables: Vec<(&str, &str)> = tables.iter().map(|(t, p)| (&**t, &**p)).collect();
    assert_eq!(
        tables,
        [
            ("tjs_activity", "p"),
            ("tjs_attempts", "u"),
            ("tjs_dpop_replay", "u"),
            ("tjs_meta", "p"),
            ("tjs_rate_limits", "u"),
            ("tjs_sessions", "p")
        ],
        "the sessions and the activity logged, the limits unlogged"
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'tjs_sessions' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            "tjs_sessions_pkey",
            "tjs_sessions_purge",
            "tjs_sessions_user"
        ]
    );
    let r = create(&again, "alice", 1_000).await;
    assert!(stores[0].get(r.session_id).await.unwrap().is_some());
}

/// Tables from a newer release are refused, not written over.
#[tokio::test]
async fn tables_of_a_newer_release_are_refused() {
    let db = TestDb::create().await;
    drop(PostgresStore::connect(&settings(&db)).await.unwrap());
    let mut conn = db.connect().await;
    sqlx::query("UPDATE tjs_meta SET value = '99' WHERE name = 'schema_version'")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = PostgresStore::connect(&settings(&db)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Misconfigured(m) if m.contains("newer release")),
        "{err:?}"
    );
}

/// Two prefixes on one database are two stores.
#[tokio::test]
async fn table_prefixes_keep_stores_apart() {
    let db = TestDb::create().await;
    let a = PostgresStore::connect(&settings(&db).with_table_prefix("app_a").unwrap())
        .await
        .unwrap();
    let b = PostgresStore::connect(&settings(&db).with_table_prefix("app_b").unwrap())
        .await
        .unwrap();
    let r = create(&a, "alice", 1_000).await;
    assert!(a.get(r.session_id).await.unwrap().is_some());
    assert!(b.get(r.session_id).await.unwrap().is_none());
    assert!(b.list("alice", 1_000).await.unwrap().is_empty());
}

/// All the table's text, every row and column.
async fn table_text(db: &TestDb) -> String {
    let mut conn = db.connect().await;
    let rows: Vec<String> = sqlx::query_scalar("SELECT t::text FROM tjs_sessions t")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.join("\n")
}

/// With a key, no user id or role is in the table in any form a reader could match; without
/// one the user id is only in `data`, never in the index column.
#[tokio::test]
async fn sealed_rows_hold_no_user_id_or_role_in_clear() {
    let plain = test_store(false).await;
    let sealed = test_store(true).await;
    for store in [&plain, &sealed] {
        let mut r = suite::record("alice@example.com", 1_000, &l());
        r.roles = vec!["auditor-role".to_owned()];
        store
            .create(r, suite::limit(10), &l(), 1_000)
            .await
            .unwrap();
    }
    let hex = |s: &str| super::record::hex(s.as_bytes());
    let sealed_text = table_text(&sealed.db).await;
    for needle in [
        "alice@example.com".to_owned(),
        "auditor-role".to_owned(),
        hex("alice@example.com"),
    ] {
        assert!(!sealed_text.contains(&needle), "{needle} in {sealed_text}");
    }
    let plain_text = table_text(&plain.db).await;
    assert!(plain_text.contains("alice@example.com"));
    assert!(!plain_text.contains(&hex("alice@example.com")));
    // The user key is a keyed hash when sealed, so it differs from the plain SHA-256.
    let key = |db: &Arc<TestDb>| {
        let db = db.clone();
        async move {
            let mut conn = db.connect().await;
            sqlx::query_scalar::<_, Vec<u8>>("SELECT user_key FROM tjs_sessions")
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    };
    assert_ne!(key(&plain.db).await, key(&sealed.db).await);
}

/// A sealed row whose clear times were changed behind the store's back (a longer life, an
/// older generation) is no session; so is a row moved to another session id.
#[tokio::test]
async fn tampered_sealed_rows_are_no_session() {
    let store = test_store(true).await;
    let a = create(&store.store, "alice", 1_000).await;
    let b = create(&store.store, "bob", 1_000).await;
    let mut conn = store.db.connect().await;
    sqlx::query("UPDATE tjs_sessions SET expires_at = expires_at + 1000000 WHERE session_id = $1")
        .bind(a.session_id.as_bytes().as_slice())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.get(a.session_id).await.unwrap(), None);
    assert_eq!(
        store
            .rotate(rotate_req(a.session_id, 0, 2_000))
            .await
            .unwrap(),
        RotateOutcome::NotFound
    );
    let other = SessionId::random();
    sqlx::query("UPDATE tjs_sessions SET session_id = $2 WHERE session_id = $1")
        .bind(b.session_id.as_bytes().as_slice())
        .bind(other.as_bytes().as_slice())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.get(other).await.unwrap(), None);
}

/// A key that does not open what is stored, or no key over sealed rows, is a startup error;
/// the old key as a previous key opens them, and rows are sealed anew on their next refresh.
#[tokio::test]
async fn sealing_keys_must_fit_what_is_stored() {
    let db = TestDb::create().await;
    let sealed = settings(&db).with_encryption_key(&KEY_1).unwrap();
    let first = PostgresStore::connect(&sealed).await.unwrap();
    let r = create(&first, "alice", 1_000).await;
    drop(first);
    let wrong = settings(&db).with_encryption_key(&KEY_2).unwrap();
    assert!(matches!(
        PostgresStore::connect(&wrong).await,
        Err(StoreError::Misconfigured(_))
    ));
    assert!(matches!(
        PostgresStore::connect(&settings(&db)).await,
        Err(StoreError::Misconfigured(_))
    ));
    let rotated = wrong.with_previous_encryption_key(&KEY_1).unwrap();
    let store = PostgresStore::connect(&rotated).await.unwrap();
    assert_eq!(
        store.get(r.session_id).await.unwrap().unwrap().user_id,
        "alice"
    );
    assert_eq!(store.list("alice", 1_000).await.unwrap().len(), 1);
    assert!(matches!(
        store
            .rotate(rotate_req(r.session_id, 0, 2_000))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    // Sealed with the new key now, and indexed under it: the new key alone finds it.
    drop(store);
    let only_new = settings(&db).with_encryption_key(&KEY_2).unwrap();
    let store = PostgresStore::connect(&only_new).await.unwrap();
    assert_eq!(
        store.get(r.session_id).await.unwrap().unwrap().generation,
        1
    );
    assert_eq!(store.list("alice", 2_000).await.unwrap().len(), 1);
}

/// Collects what a store's listener reports.
fn collector(store: &dyn SessionStore) -> Arc<Mutex<Vec<RevocationEvent>>> {
    let seen: Arc<Mutex<Vec<RevocationEvent>>> = Arc::default();
    let sink = seen.clone();
    store.watch_revocations(Arc::new(move |event| sink.lock().unwrap().push(event)));
    seen
}

/// Waits until `listener`'s revocation listener hears what `writer` notifies: probe sessions
/// are revoked until one arrives.
async fn listening(writer: &PostgresStore, seen: &Arc<Mutex<Vec<RevocationEvent>>>) {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let probe = create(writer, "probe", 1_000).await;
        writer.revoke(probe.session_id, 1_000).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        if seen
            .lock()
            .unwrap()
            .contains(&RevocationEvent::Revoked(probe.session_id))
        {
            return;
        }
    }
    panic!("the listener did not start within 5 s");
}

async fn wait_for(
    seen: &Arc<Mutex<Vec<RevocationEvent>>>,
    what: impl Fn(&[RevocationEvent]) -> bool,
) -> Duration {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if what(&seen.lock().unwrap()) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not seen within 5 s: {:?}", seen.lock().unwrap());
}

/// Every way one instance ends a session (logout, logout-all, eviction, reuse) reaches the
/// other instance's cache through LISTEN/NOTIFY, well within the second the protocol allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_the_other_instance() {
    let db = TestDb::create().await;
    let a = PostgresStore::connect(&settings(&db)).await.unwrap();
    let b = PostgresStore::connect(&settings(&db)).await.unwrap();
    let seen = collector(&b);
    listening(&a, &seen).await;

    let logout = create(&a, "alice", 1_000).await;
    assert!(a.revoke(logout.session_id, 1_001).await.unwrap());
    let lag = wait_for(&seen, |e| {
        e.contains(&RevocationEvent::Revoked(logout.session_id))
    })
    .await;
    assert!(lag < Duration::from_secs(1), "{lag:?}");

    let all: Vec<SessionId> = [
        create(&a, "bob", 1_000).await,
        create(&a, "bob", 1_001).await,
    ]
    .iter()
    .map(|r| r.session_id)
    .collect();
    a.revoke_all("bob", 1_002).await.unwrap();
    wait_for(&seen, |e| {
        all.iter()
            .all(|sid| e.contains(&RevocationEvent::Revoked(*sid)))
    })
    .await;

    let first = create(&a, "carol", 1_000).await;
    let evict = SessionLimit {
        max: 1,
        policy: SessionLimitPolicy::Evict,
    };
    let out = a
        .create(suite::record("carol", 1_100, &l()), evict, &l(), 1_100)
        .await
        .unwrap();
    assert_eq!(
        out,
        CreateOutcome::Created {
            evicted: vec![first.session_id]
        }
    );
    wait_for(&seen, |e| {
        e.contains(&RevocationEvent::Revoked(first.session_id))
    })
    .await;

    let stolen = create(&a, "dave", 1_000).await;
    for generation in 0..2 {
        a.rotate(rotate_req(stolen.session_id, generation, 1_100))
            .await
            .unwrap();
    }
    assert!(matches!(
        a.rotate(rotate_req(stolen.session_id, 0, 1_200))
            .await
            .unwrap(),
        RotateOutcome::Reused(..)
    ));
    wait_for(&seen, |e| {
        e.contains(&RevocationEvent::Revoked(stolen.session_id))
    })
    .await;
}

/// Every connection of the database killed (as a restart does): the next calls succeed on new
/// connections, and the listener comes back and clears the cache (events may have been missed),
/// then delivers revocations again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_are_survived() {
    let db = TestDb::create().await;
    let a = PostgresStore::connect(&settings(&db)).await.unwrap();
    let b = PostgresStore::connect(&settings(&db)).await.unwrap();
    let seen = collector(&b);
    listening(&a, &seen).await;
    let r = create(&a, "alice", 1_000).await;
    seen.lock().unwrap().clear();

    let ended = db.terminate_connections(None).await;
    assert!(
        ended >= 3,
        "the pools' and the listeners' connections: {ended}"
    );
    // The pool replaces dead connections as it hands them out: no call fails.
    assert!(a.get(r.session_id).await.unwrap().is_some());
    assert!(matches!(
        a.rotate(rotate_req(r.session_id, 0, 1_100)).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    b.ping().await.unwrap();
    wait_for(&seen, |e| e.contains(&RevocationEvent::Resync)).await;
    assert!(a.revoke(r.session_id, 1_200).await.unwrap());
    wait_for(&seen, |e| {
        e.contains(&RevocationEvent::Revoked(r.session_id))
    })
    .await;
}

/// A row held locked by someone else (a stuck transaction) makes a refresh fail within the
/// timeout, as `Timeout`: never a hang, never a success, and never a write that lands later.
#[tokio::test]
async fn a_locked_row_times_out_and_fails_closed() {
    let db = TestDb::create().await;
    let store = std::sync::Arc::new(
        PostgresStore::connect(&settings(&db).with_timeout(Duration::from_millis(300)))
            .await
            .unwrap(),
    );
    let r = create(&store, "alice", 1_000).await;
    let mut conn = db.connect().await;
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    sqlx::query("SELECT 1 FROM tjs_sessions WHERE session_id = $1 FOR UPDATE")
        .bind(r.session_id.as_bytes().as_slice())
        .execute(&mut *tx)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let refresh = tokio::spawn({
        let store = store.clone();
        async move { store.rotate(rotate_req(r.session_id, 0, 1_100)).await }
    });
    // Meanwhile none of the store's statements waits for the lock inside PostgreSQL: one that
    // did could land after the caller was told the refresh timed out (an autocommitted write
    // does not notice its client has gone).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'tower-jwt-session' AND wait_event_type = 'Lock'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        waiting, 0,
        "a statement of the store waits for the row lock"
    );
    let err = refresh.await.unwrap().unwrap_err();
    assert!(matches!(err, StoreError::Timeout), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    tx.rollback().await.unwrap();
    // A write that had waited inside PostgreSQL for the lock would land now, after the caller
    // was told the refresh timed out: give it the time to.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nothing half-written, then or later: the session is as it was, and rotates now.
    assert_eq!(
        store.get(r.session_id).await.unwrap().unwrap().generation,
        0
    );
    assert!(matches!(
        store
            .rotate(rotate_req(r.session_id, 0, 1_200))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
}

/// A rotation whose row another instance writes between the rotation's read and its write
/// does not overwrite that write (which would make a second successor): its write applies to
/// the version it read only, so it reads the row again and answers what the other wrote
/// (grace, the other's generation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_written_between_read_and_write_is_read_again() {
    let db = TestDb::create().await;
    let store = Arc::new(PostgresStore::connect(&settings(&db)).await.unwrap());
    let r = create(&store, "alice", 1_000).await;
    // Another instance's rotation, by hand: it holds the row while the store reads it.
    let mut conn = db.connect().await;
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    sqlx::query("SELECT 1 FROM tjs_sessions WHERE session_id = $1 FOR UPDATE")
        .bind(r.session_id.as_bytes().as_slice())
        .execute(&mut *tx)
        .await
        .unwrap();
    let rotation = tokio::spawn({
        let store = store.clone();
        async move { store.rotate(rotate_req(r.session_id, 0, 1_100)).await }
    });
    // The store has read generation 0 and waits on the row for its write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query(
        "UPDATE tjs_sessions SET generation = 1, last_active_at = 1050 WHERE session_id = $1",
    )
    .bind(r.session_id.as_bytes().as_slice())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    match rotation.await.unwrap().unwrap() {
        RotateOutcome::Grace(after) => {
            assert_eq!((after.generation, after.last_active_at), (1, 1050));
        }
        other => panic!("the other instance's rotation was overwritten: {other:?}"),
    }
    let stored = store.get(r.session_id).await.unwrap().unwrap();
    assert_eq!((stored.generation, stored.last_active_at), (1, 1050));
}

/// Nothing answers: connecting fails with a store error, within the timeout.
#[tokio::test]
async fn an_unreachable_database_is_an_error() {
    let s = PostgresSettings::new("postgres://postgres@127.0.0.1:1/none")
        .with_timeout(Duration::from_millis(500));
    let start = std::time::Instant::now();
    let err = PostgresStore::connect(&s).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Timeout | StoreError::Unavailable(_)),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(11));
}

async fn rows(db: &TestDb) -> i64 {
    let mut conn = db.connect().await;
    sqlx::query_scalar("SELECT count(*) FROM tjs_sessions")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// Rows past their purge time go: a bounded batch per login, all of them through `purge`.
#[tokio::test]
async fn expired_rows_are_deleted() {
    let store = test_store(false).await;
    for i in 0..200 {
        create(&store.store, &format!("user{i}"), 1_000).await;
    }
    assert_eq!(rows(&store.db).await, 200);
    let later = suite::record("x", 1_000, &l()).purge_at + 1;
    create(&store.store, "late", later).await;
    assert_eq!(rows(&store.db).await, 201 - store::PURGE_BATCH);
    assert_eq!(
        store.store.purge(later).await.unwrap() as i64,
        200 - store::PURGE_BATCH
    );
    assert_eq!(rows(&store.db).await, 1);
}

/// 32 logins of one user racing on two instances: with `deny` exactly the limit get in; with
/// `evict` the user ends with the limit, and every other session was evicted by someone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_racing_at_the_limit_keep_it() {
    for policy in [SessionLimitPolicy::Deny, SessionLimitPolicy::Evict] {
        let db = TestDb::create().await;
        let stores = [
            Arc::new(PostgresStore::connect(&settings(&db)).await.unwrap()),
            Arc::new(PostgresStore::connect(&settings(&db)).await.unwrap()),
        ];
        let limit = SessionLimit { max: 3, policy };
        let mut tasks = Vec::new();
        for i in 0..32u64 {
            let store = stores[i as usize % 2].clone();
            tasks.push(tokio::spawn(async move {
                let r = suite::record("alice", 1_000 + i, &l());
                (
                    r.session_id,
                    store.create(r, limit, &l(), 1_000 + i).await.unwrap(),
                )
            }));
        }
        let mut created = Vec::new();
        let mut evicted = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (sid, CreateOutcome::Created { evicted: e }) => {
                    created.push(sid);
                    evicted.extend(e);
                }
                (_, CreateOutcome::LimitReached) => {}
            }
        }
        let live = stores[0].list("alice", 2_000).await.unwrap();
        assert_eq!(live.len(), 3, "{policy:?}");
        assert_eq!(rows(&db).await, 3, "{policy:?}");
        match policy {
            SessionLimitPolicy::Deny => assert_eq!(created.len(), 3),
            _ => {
                assert_eq!(created.len(), 32);
                evicted.sort();
                evicted.dedup();
                assert_eq!(evicted.len(), 29, "each evicted once");
            }
        }
    }
}

/// 64 refreshes of one token, half on each of two instances with pools of their own, agree on
/// one successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_on_two_instances_agree() {
    let db = TestDb::create().await;
    let stores = [
        Arc::new(PostgresStore::connect(&settings(&db)).await.unwrap()),
        Arc::new(PostgresStore::connect(&settings(&db)).await.unwrap()),
    ];
    let r = create(&stores[0], "ivan", 1_000).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            store
                .rotate(rotate_req(r.session_id, 0, 1_500))
                .await
                .unwrap()
        }));
    }
    let (mut rotated, mut grace) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            RotateOutcome::Rotated(after) => {
                rotated += 1;
                assert_eq!(after.generation, 1);
            }
            RotateOutcome::Grace(after) => {
                grace += 1;
                assert_eq!(after.generation, 1);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((rotated, grace), (1, 63));
}

#[test]
fn notification_payloads_round_trip() {
    let sid = SessionId::random();
    let text = super::record::hex(sid.as_bytes());
    assert_eq!(super::record::sid_from_hex(&text), Some(sid));
    assert_eq!(super::record::sid_from_hex("zz"), None);
    assert_eq!(super::record::sid_from_hex(&"é".repeat(16)), None);
}

/// Two applications signing with different keys on one prefix would evict, list and revoke
/// each other's sessions: the second to start is refused, naming the prefix. Restarts and a
/// rotation with the old secret listed are the same application; another prefix is another
/// store.
#[tokio::test]
async fn a_prefix_belongs_to_one_application() {
    let db = TestDb::create().await;
    let store = PostgresStore::connect(&settings(&db)).await.unwrap();
    let app = crate::SessionConfig::new("first-application-secret-0123456789abcdef").unwrap();
    let other = crate::SessionConfig::new("other-application-secret-0123456789abcdef").unwrap();
    store.claim(&app).await.unwrap();
    store.claim(&app).await.unwrap();
    let err = store.claim(&other).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Misconfigured(m) if m.contains("DATABASE_TABLE_PREFIX `tjs`")),
        "{err:?}"
    );
    let rotated = crate::SessionConfig::from_tokens(
        crate::config::TokenSettings::new("rotated-application-secret-0123456789abcd")
            .unwrap()
            .with_previous_secret("first-application-secret-0123456789abcdef")
            .unwrap(),
    );
    store.claim(&rotated).await.unwrap();
    let elsewhere = PostgresStore::connect(&settings(&db).with_table_prefix("other").unwrap())
        .await
        .unwrap();
    elsewhere.claim(&other).await.unwrap();
    // Fingerprints unused for the session lifetime are forgotten.
    let later = crate::clock::unix_ms(std::time::SystemTime::now()) + 10_000_000_000;
    let fingerprints =
        crate::token::refresh::RefreshKeys::from_tokens(other.tokens()).owner_fingerprints();
    store.claim_with(&fingerprints, later, 1_000).await.unwrap();
}

/// Turning sealing on: rows written without a key are refused with a key, unless unsealed
/// rows are accepted for the migration; then each is sealed on its next refresh, after which
/// it opens without the migration setting too.
#[tokio::test]
async fn unsealed_rows_migrate_to_sealed_ones() {
    let db = TestDb::create().await;
    let plain = PostgresStore::connect(&settings(&db)).await.unwrap();
    let r = create(&plain, "alice", 1_000).await;
    drop(plain);
    let sealed = settings(&db).with_encryption_key(&KEY_1).unwrap();
    let strict = PostgresStore::connect(&sealed).await.unwrap();
    assert_eq!(strict.get(r.session_id).await.unwrap(), None);
    drop(strict);
    let migrating = PostgresStore::connect(&sealed.clone().with_unsealed_records_accepted(true))
        .await
        .unwrap();
    assert_eq!(
        migrating.get(r.session_id).await.unwrap().unwrap().user_id,
        "alice"
    );
    assert!(matches!(
        migrating
            .rotate(rotate_req(r.session_id, 0, 2_000))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    drop(migrating);
    assert!(!table_text(&db).await.contains("alice"));
    let strict = PostgresStore::connect(&sealed).await.unwrap();
    assert_eq!(
        strict.get(r.session_id).await.unwrap().unwrap().generation,
        1
    ); // Found under the keyed hash now, as the rows written with the key are.
    assert_eq!(strict.list("alice", 2_000).await.unwrap().len(), 1);
    assert_eq!(
        strict.revoke_all("alice", 2_000).await.unwrap(),
        vec![r.session_id]
    );
}

/// On this server's defaults the store has nothing to warn of.
#[tokio::test]
async fn no_warnings_on_the_defaults() {
    let db = TestDb::create().await;
    let store = PostgresStore::connect(&settings(&db)).await.unwrap();
    assert_eq!(store.warnings().await.unwrap(), Vec::new());
}

/// Settings of the store's own database that break its promises are reported, each once, as
/// the store's connections see them.
#[tokio::test]
async fn settings_that_lose_logouts_are_warned_of() {
    let db = TestDb::create().await;
    let mut conn = db.connect().await;
    let db = &db;
    let alter = |sql: String| async move {
        let mut admin = db.connect().await;
        sqlx::query(&sql).execute(&mut admin).await.unwrap();
    };
    alter(format!(
        "ALTER DATABASE {} SET synchronous_commit = off",
        db.name
    ))
    .await;
    let store = PostgresStore::connect(&settings(db)).await.unwrap();
    let warnings = store.warnings().await.unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].message().contains("synchronous_commit = off")
            && warnings[0].message().contains("logout"),
        "{warnings:?}"
    );

    sqlx::query("ALTER TABLE tjs_sessions SET UNLOGGED")
        .execute(&mut conn)
        .await
        .unwrap();
    let warnings = store.warnings().await.unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[1].message().contains("tjs_sessions is UNLOGGED"),
        "{warnings:?}"
    );

    // New connections open read-only transactions: the pool's are replaced to see it.
    alter(format!(
        "ALTER DATABASE {} SET default_transaction_read_only = on",
        db.name
    ))
    .await;
    db.terminate_connections(None).await;
    let warnings = store.warnings().await.unwrap();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[1].message().contains("read-only"), "{warnings:?}");
}

/// Each setting that breaks a promise has its warning, which names the setting.
#[test]
fn each_setting_has_its_warning() {
    let defaults = super::store::ServerSettings {
        synchronous_commit: "on".to_owned(),
        fsync: "on".to_owned(),
        full_page_writes: "on".to_owned(),
        in_recovery: false,
        read_only: "off".to_owned(),
        sessions_unlogged: false,
    };
    let warn = |s: &super::store::ServerSettings| super::store::setting_warnings("x_sessions", s);
    assert!(warn(&defaults).is_empty());
    for (setting, mentions) in [
        (
            super::store::ServerSettings {
                synchronous_commit: "off".to_owned(),
                ..defaults.clone()
            },
            "synchronous_commit",
        ),
        (
            super::store::ServerSettings {
                fsync: "off".to_owned(),
                ..defaults.clone()
            },
            "fsync",
        ),
        (
            super::store::ServerSettings {
                full_page_writes: "off".to_owned(),
                ..defaults.clone()
            },
            "full_page_writes",
        ),
        (
            super::store::ServerSettings {
                in_recovery: true,
                read_only: "on".to_owned(),
                ..defaults.clone()
            },
            "in recovery",
        ),
        (
            super::store::ServerSettings {
                read_only: "on".to_owned(),
                ..defaults.clone()
            },
            "default_transaction_read_only",
        ),
        (
            super::store::ServerSettings {
                sessions_unlogged: true,
                ..defaults.clone()
            },
            "ALTER TABLE x_sessions SET LOGGED",
        ),
    ] {
        let warnings = warn(&setting);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].message().contains(mentions), "{warnings:?}");
    }
    // `synchronous_commit = local` or `remote_write` keep what the primary committed.
    for kept in ["local", "remote_write", "remote_apply"] {
        let s = super::store::ServerSettings {
            synchronous_commit: kept.to_owned(),
            ..defaults.clone()
        };
        assert!(warn(&s).is_empty(), "{kept}");
    }
}

/// The write of a rotation checks the caller's deadline on the server's clock: a statement
/// that waited in a stalled backend past the deadline writes nothing (the caller has answered
/// 503 by then), one in time writes.
#[tokio::test]
async fn a_rotation_write_past_its_deadline_is_refused_by_the_server() {
    let store = test_store(false).await;
    let now = crate::clock::unix_ms(std::time::SystemTime::now());
    let r = create(&store.store, "stalled", now).await;
    let mut next = r.clone();
    next.generation = 1;
    let version = store.store.version_of(r.session_id).await;
    assert!(
        !store
            .store
            .write_as_rotation(&next, &version, Some(now - 1))
            .await
    );
    assert_eq!(
        store
            .store
            .get(r.session_id)
            .await
            .unwrap()
            .unwrap()
            .generation,
        0
    );
    assert!(
        store
            .store
            .write_as_rotation(&next, &version, Some(now + 60_000))
            .await
    );
    assert_eq!(
        store
            .store
            .get(r.session_id)
            .await
            .unwrap()
            .unwrap()
            .generation,
        1
    );
}

/// The error text of a failed connect.
async fn connect_error(settings: &PostgresSettings) -> String {
    PostgresStore::connect(settings)
        .await
        .expect_err("connect must fail")
        .to_string()
}

/// Least privilege: once the tables are made (by `PostgresStore::migrate`, as their owner), a
/// user with `SELECT`, `INSERT`, `UPDATE` and `DELETE` on the store's tables and nothing else
/// starts the store, with `DATABASE_MIGRATE` `auto` or `off`, and every part of it works: the
/// sessions, the prefix claim, the sealing marker, the rate limit, the attempt tracker and the
/// DPoP replay cache.
#[tokio::test]
async fn a_user_with_dml_rights_only_runs_an_up_to_date_store() {
    let db = TestDb::create().await;
    PostgresStore::migrate(&settings(&db)).await.unwrap();
    // Idempotent, and nothing to do the second time.
    PostgresStore::migrate(&settings(&db)).await.unwrap();
    let url = db.dml_role("tjs").await;
    for mode in [
        crate::config::MigrateMode::Auto,
        crate::config::MigrateMode::Off,
    ] {
        let s = PostgresSettings::new(&url)
            .with_timeout(Duration::from_secs(5))
            .with_encryption_key(&KEY_1)
            .unwrap()
            .with_migrate(mode);
        let store = PostgresStore::connect(&s)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let app = crate::SessionConfig::new("first-application-secret-0123456789abcdef").unwrap();
        store.claim(&app).await.unwrap();
        let r = create(&store, "alice", 1_000).await;
        assert!(matches!(
            store
                .rotate(rotate_req(r.session_id, 0, 2_000))
                .await
                .unwrap(),
            RotateOutcome::Rotated(_)
        ));
        assert_eq!(store.list("alice", 2_000).await.unwrap().len(), 1);
        assert_eq!(
            store.revoke_all("alice", 2_000).await.unwrap(),
            vec![r.session_id]
        );
        assert_eq!(store.warnings().await.unwrap(), Vec::new());
        let bounds = crate::store::ActivityBounds {
            max: 3,
            retention: 60_000,
        };
        let event = suite::event(crate::store::EventKind::Login, "alice", 2_000);
        store.record_activity(&event, bounds, 2_000).await.unwrap();
        assert_eq!(
            store.activity("alice", bounds, 2_000).await.unwrap()[0],
            event
        );
        let limits = crate::rate_limit::PostgresRateLimitBackend::new(store.connection());
        assert!(
            crate::rate_limit::RateLimitBackend::hit(
                &limits,
                "203.0.113.7",
                1_000,
                Duration::from_secs(60),
                5
            )
            .await
            .unwrap()
            .allowed
        );
        let attempts = crate::rate_limit::PostgresAttemptBackend::new(store.connection());
        let policy = crate::rate_limit::AttemptPolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
        };
        let reserved = crate::rate_limit::AttemptBackend::reserve(
            &attempts,
            "login:ip:203.0.113.7",
            1_000,
            policy,
        )
        .await
        .unwrap();
        assert_eq!(reserved, Ok(()));
        let replay = store.backing().dpop_replay_cache(16);
        let jti = format!("{mode:?}");
        assert!(replay.first_use("jkt", &jti, 9_000, 1_000).await.unwrap());
        assert!(!replay.first_use("jkt", &jti, 9_000, 1_000).await.unwrap());
    }
    // The role really cannot create anything: what the first start used to do is refused.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let err = sqlx::query("CREATE TABLE IF NOT EXISTS tjs_meta (name text PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
}

/// With migrations off, missing or older tables refuse startup, naming DATABASE_MIGRATE and
/// changing nothing; with migrations on, a user that may not create them is told what to do.
#[tokio::test]
async fn missing_or_older_tables_are_refused_without_migrations() {
    let db = TestDb::create().await;
    let off = settings(&db).with_migrate(crate::config::MigrateMode::Off);
    let missing = connect_error(&off).await;
    assert!(
        missing.contains("do not exist") && missing.contains("DATABASE_MIGRATE=off"),
        "{missing}"
    );
    let mut conn = db.connect().await;
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'tjs\\_%'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(tables, 0, "nothing was created");

    // A user without the CREATE right, migrations on: refused, saying why.
    let dml = PostgresSettings::new(db.dml_role("tjs").await);
    let refused = connect_error(&dml).await;
    assert!(
        refused.contains("may not create them")
            && refused.contains("permission denied")
            && refused.contains("DATABASE_MIGRATE"),
        "{refused}"
    );

    // Tables of an older release: refused with migrations off, upgraded with them on.
    PostgresStore::migrate(&settings(&db)).await.unwrap();
    sqlx::query("UPDATE tjs_meta SET value = '1' WHERE name = 'schema_version'")
        .execute(&mut conn)
        .await
        .unwrap();
    let older = connect_error(&off).await;
    assert!(
        older.contains("schema version 1") && older.contains("DATABASE_MIGRATE=off"),
        "{older}"
    );
    PostgresStore::connect(&settings(&db)).await.unwrap();
    PostgresStore::connect(&off).await.unwrap();
}

/// A database that opens read-only transactions (a failed-over replica, or
/// `default_transaction_read_only = on`) with up-to-date tables: a new instance starts,
/// sealed or not, claims its prefix without writing, answers reads, refuses writes with a
/// store error, and reports `store_read_only`.
#[tokio::test]
async fn a_read_only_database_starts_degraded() {
    let db = TestDb::create().await;
    let app = crate::SessionConfig::new("first-application-secret-0123456789abcdef").unwrap();
    let first = PostgresStore::connect(&settings(&db)).await.unwrap();
    first.claim(&app).await.unwrap();
    let r = create(&first, "alice", 1_000).await;
    drop(first);
    let mut conn = db.connect().await;
    sqlx::query(&format!(
        "ALTER DATABASE {} SET default_transaction_read_only = on",
        db.name
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let store = PostgresStore::connect(&settings(&db))
        .await
        .expect("a read-only database starts");
    store.claim(&app).await.expect("the claim is checked");
    let codes: Vec<&str> = store
        .warnings()
        .await
        .unwrap()
        .iter()
        .map(|w| w.code())
        .collect();
    assert_eq!(codes, ["store_read_only"]);
    assert_eq!(
        store.get(r.session_id).await.unwrap().unwrap().user_id,
        "alice"
    );
    let write = store
        .create(
            suite::record("bob", 1_000, &l()),
            suite::limit(10),
            &l(),
            1_000,
        )
        .await;
    assert!(
        matches!(write, Err(StoreError::Unavailable(_))),
        "{write:?}"
    );
    // The prefix is still guarded: another application is refused.
    let other = crate::SessionConfig::new("other-application-secret-0123456789abcdef").unwrap();
    assert!(matches!(
        store.claim(&other).await,
        Err(StoreError::Misconfigured(_))
    ));
    drop(store);
    // Sealing turned on while read-only: the key's marker cannot be written, and need not be.
    let sealed = settings(&db).with_encryption_key(&KEY_1).unwrap();
    PostgresStore::connect(&sealed)
        .await
        .expect("a sealed store starts on a read-only database");
    // Tables that need migrating cannot be migrated there: said so.
    sqlx::query(&format!(
        "ALTER DATABASE {} SET default_transaction_read_only = off",
        db.name
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("UPDATE tjs_meta SET value = '1' WHERE name = 'schema_version'")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {} SET default_transaction_read_only = on",
        db.name
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let err = connect_error(&settings(&db)).await;
    assert!(err.contains("read-only"), "{err}");
}

/// A sealed row moved to another user's key (by someone who can write the table) is no
/// session: it cannot be refreshed or read, and is counted as unreadable. Left working, it
/// would be out of reach of its user's logout-all and devices list.
#[test]
#[cfg(feature = "metrics")]
fn a_sealed_row_moved_to_another_users_key_is_no_session() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(test_store(true));
    let (alice, bob) = runtime.block_on(async {
        (
            create(&store.store, "alice", 1_000).await,
            create(&store.store, "bob", 1_000).await,
        )
    });
    runtime.block_on(async {
        let mut conn = store.db.connect().await;
        sqlx::query(
            "UPDATE tjs_sessions SET user_key = \
             (SELECT user_key FROM tjs_sessions WHERE session_id = $2) WHERE session_id = $1",
        )
        .bind(alice.session_id.as_bytes().as_slice())
        .bind(bob.session_id.as_bytes().as_slice())
        .execute(&mut conn)
        .await
        .unwrap();
    });
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            assert_eq!(store.get(alice.session_id).await.unwrap(), None);
            assert_eq!(
                store
                    .rotate(rotate_req(alice.session_id, 0, 2_000))
                    .await
                    .unwrap(),
                RotateOutcome::NotFound
            );
            // Bob's list holds his own session only.
            let listed: Vec<SessionId> = store
                .list("bob", 2_000)
                .await
                .unwrap()
                .iter()
                .map(|r| r.session_id)
                .collect();
            assert_eq!(listed, [bob.session_id]);
        });
    });
    let text = metrics.render();
    assert!(text.contains("tjs_records_unreadable_total 3"), "{text}");
    // Bob's own session is untouched.
    runtime.block_on(async {
        assert!(store.get(bob.session_id).await.unwrap().is_some());
        drop(store);
    });
}

/// Without a key the user key must still be the user id's: the same move is no session.
#[tokio::test]
async fn an_unsealed_row_moved_to_another_users_key_is_no_session() {
    let store = test_store(false).await;
    let alice = create(&store.store, "alice", 1_000).await;
    let mut conn = store.db.connect().await;
    sqlx::query("UPDATE tjs_sessions SET user_key = sha256('bob'::bytea) WHERE session_id = $1")
        .bind(alice.session_id.as_bytes().as_slice())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.get(alice.session_id).await.unwrap(), None);
}

/// While unsealed rows are accepted for a migration, a user's logout-all and devices list
/// reach the rows not yet sealed (indexed under the plain SHA-256 key).
#[tokio::test]
async fn logout_all_reaches_rows_not_yet_sealed_during_a_migration() {
    let db = TestDb::create().await;
    let plain = PostgresStore::connect(&settings(&db)).await.unwrap();
    let r = create(&plain, "alice", 1_000).await;
    drop(plain);
    let migrating = settings(&db)
        .with_encryption_key(&KEY_1)
        .unwrap()
        .with_unsealed_records_accepted(true);
    let store = PostgresStore::connect(&migrating).await.unwrap();
    assert_eq!(store.list("alice", 1_000).await.unwrap().len(), 1);
    assert_eq!(
        store.revoke_all("alice", 1_000).await.unwrap(),
        vec![r.session_id]
    );
}

/// A closed port: the error names DATABASE_URL, the host and port, and the cause, at once (no
/// waiting out a timeout); no password.
#[tokio::test]
async fn an_unreachable_database_is_named_with_its_cause() {
    let s = PostgresSettings::new("postgres://app:hunter2@127.0.0.1:1/none");
    let start = std::time::Instant::now();
    let text = connect_error(&s).await;
    assert!(
        text.contains("DATABASE_URL")
            && text.contains("127.0.0.1:1")
            && text.contains("connection refused"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

/// The server's refusals say what was refused: an unknown role, a database that does not
/// exist, a certificate that does not verify.
#[tokio::test]
async fn connection_refusals_say_why() {
    let db = TestDb::create().await;
    let unknown_role = super::pg_server::with_user(&db.url, "no_such_role_tjs");
    let text = connect_error(&PostgresSettings::new(unknown_role)).await;
    assert!(
        text.contains("refused the login") && text.contains("no_such_role_tjs"),
        "{text}"
    );
    let no_db = super::pg_server::with_database(&db.url, "no_such_database_tjs");
    let text = connect_error(&PostgresSettings::new(no_db)).await;
    assert!(text.contains("no such database"), "{text}");
    // The test server's certificate is self-signed: verify-full refuses it.
    let tls = format!("{}?sslmode=verify-full", db.url);
    let text = connect_error(&PostgresSettings::new(tls)).await;
    assert!(text.contains("TLS failed"), "{text}");
}

/// A bad sslmode is said once, naming the variable and the values it takes; so is another
/// URL sqlx cannot read.
#[tokio::test]
async fn a_bad_url_is_said_once() {
    let text = connect_error(&PostgresSettings::new(
        "postgres://app:hunter2@db/app?sslmode=requir",
    ))
    .await;
    assert!(
        text.contains("DATABASE_URL")
            && text.contains("sslmode=disable, allow, prefer, require, verify-ca or verify-full")
            && !text.contains("error with configuration")
            && !text.contains("hunter2"),
        "{text}"
    );
    let text = connect_error(&PostgresSettings::new("postgres://app:hunter2@db:port/app")).await;
    assert!(
        text.contains("DATABASE_URL")
            && !text.contains("error with configuration")
            && !text.contains("hunter2"),
        "{text}"
    );
}

/// A sealed store's security events: the payload unreadable in the table, the user keyed.
#[tokio::test]
async fn sealed_activity_holds_nothing_in_clear() {
    let t = test_store(true).await;
    let bounds = crate::store::ActivityBounds {
        max: 5,
        retention: 60_000,
    };
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let event = suite::event(crate::store::EventKind::Login, "alice@example.com", now);
    t.store.record_activity(&event, bounds, now).await.unwrap();
    assert_eq!(
        t.store
            .activity("alice@example.com", bounds, now)
            .await
            .unwrap(),
        [event]
    );
    let mut conn = t.db.connect().await;
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as("SELECT user_key, data FROM tjs_activity")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let (user_key, data) = &rows[0];
    for clear in ["Firefox", "203.0.113", "login", "alice"] {
        assert!(!data.contains(clear), "{clear} in {data}");
    }
    assert!(!String::from_utf8_lossy(user_key).contains("alice"));
}

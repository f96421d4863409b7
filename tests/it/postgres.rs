//! Several example-server instances on one PostgreSQL database, as behind a load balancer
//! without sticky sessions; two managers of the library on one database; and what happens when
//! the database drops every connection. Each test makes and drops a database of its own
//! (`tests/common/pg_server.rs`).
#![cfg(feature = "postgres")]

use crate::common;
use crate::common::Harness as _;

use crate::common::pg_server;

use std::time::Duration;

use common::Server;
use pg_server::TestDb;
use serde_json::json;
use tower_jwt_session::config::PostgresSettings;
use tower_jwt_session::store::PostgresStore;
use tower_jwt_session::{SessionConfig, SessionError, SessionManager};

const SECRET: &str = "postgres-test-secret-postgres-test-secret-0123";

fn instance(db: &TestDb) -> Server {
    instance_with(db, &[])
}

fn instance_with(db: &TestDb, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("DATABASE_URL", db.url.as_str())];
    env.extend_from_slice(extra);
    Server::start(&env)
}

#[tokio::test]
async fn a_session_made_on_one_instance_works_on_the_other() {
    let db = TestDb::create().await;
    let (a, b) = (instance(&db), instance(&db));
    let (login, _) = common::a_session_crosses_instances(&a, &b, "postgres").await;
    let token = login["accessToken"].as_str().unwrap();
    let (status, stats) = a.get_auth("/api/token/session-stats/alice", token).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["data"]["activeSessions"], 1);
}

/// SPEC §3: a logout on one instance is refused by the other within one second (LISTEN/NOTIFY
/// into its revocation cache).
#[tokio::test]
async fn a_logout_on_one_instance_is_enforced_on_the_other_within_the_bound() {
    let db = TestDb::create().await;
    let (a, b) = (instance(&db), instance(&db));
    common::a_logout_reaches_the_other_instance(&a, &b, "postgres ").await;
}

/// The rate limit and the lock-outs are counted in PostgreSQL: two instances share them.
#[tokio::test]
async fn the_rate_limit_and_lock_outs_hold_across_instances() {
    let (limited_db, plain_db) = (TestDb::create().await, TestDb::create().await);
    let limits = [
        ("RATE_LIMIT_MAX_REQUESTS", "4"),
        ("RATE_LIMIT_WINDOW_MS", "60000"),
    ];
    let limited = (
        instance_with(&limited_db, &limits),
        instance_with(&limited_db, &limits),
    );
    let (a, b) = (instance(&plain_db), instance(&plain_db));
    common::the_limits_hold_across_instances((&limited.0, &limited.1), (&a, &b)).await;
    // Health says the store keeps its promises on this server.
    let (status, health) = a.get("/api/token/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"]["status"], "ok", "{health}");
}

/// A database whose commits are not flushed (`synchronous_commit = off`) makes health say
/// `degraded`, with the reason's code and none of the settings (the answer is public).
#[tokio::test]
async fn health_is_degraded_when_commits_can_be_lost() {
    let db = TestDb::create().await;
    let mut conn = db.connect().await;
    sqlx::query(&format!(
        "ALTER DATABASE {} SET synchronous_commit = off",
        db.name
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let a = instance(&db);
    let (status, health) = a.get("/api/token/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"]["status"], "degraded", "{health}");
    assert_eq!(health["data"]["store"], "postgres", "{health}");
    assert_eq!(
        health["data"]["warnings"],
        serde_json::json!(["store_commit_not_durable"]),
        "{health}"
    );
}

/// Two managers (two instances) on one database: 64 concurrent refreshes of one refresh
/// token, half on each, all succeed with one and the same successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_refreshes_on_two_managers_agree_on_one_successor() {
    let db = TestDb::create().await;
    let config = SessionConfig::new(SECRET).unwrap();
    let mut managers = Vec::new();
    for _ in 0..2 {
        let store = PostgresStore::connect(&PostgresSettings::new(&db.url))
            .await
            .unwrap();
        managers.push(
            SessionManager::builder(config.clone())
                .store(store)
                .build()
                .unwrap(),
        );
    }
    let pair = managers[0]
        .create_session(tower_jwt_session::manager::NewSession::new("alice").roles(&["user"]))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let manager = managers[i % 2].clone();
        let token = pair.refresh_token.clone();
        tasks.push(tokio::spawn(async move { manager.refresh(&token).await }));
    }
    let mut successors = std::collections::HashSet::new();
    for task in tasks {
        let next = task.await.unwrap().expect("every refresh succeeds");
        successors.insert(next.refresh_token);
    }
    assert_eq!(successors.len(), 1, "{successors:?}");
    let successor = successors.into_iter().next().unwrap();
    assert!(managers[1].refresh(&successor).await.is_ok());
}

/// The database drops every connection (as a restart does) in the middle of a run: the app
/// goes on without a restart, and what it answers meanwhile is never a wrong success.
#[tokio::test]
async fn every_connection_killed_is_survived_without_a_restart() {
    let db = TestDb::create().await;
    let a = instance(&db);
    let login = a.login("alice").await;
    let mut token = login["refreshToken"].as_str().unwrap().to_owned();
    for round in 0..3 {
        let ended = db.terminate_connections(None).await;
        assert!(ended >= 1, "round {round}: nothing to end");
        let (status, body) = a
            .post("/api/token/refresh", json!({"refreshToken": token}))
            .await;
        assert_eq!(status, 200, "round {round}: {body}");
        token = body["data"]["refreshToken"].as_str().unwrap().to_owned();
        let (status, health) = a.get("/api/token/health").await;
        assert_eq!(status, 200, "{health}");
    }
}

/// A session row locked by a stuck transaction: the refresh fails closed with 503 within the
/// timeout, then works once the lock is gone.
#[tokio::test]
async fn a_stuck_database_means_503_never_a_success() {
    let db = TestDb::create().await;
    let store = PostgresStore::connect(
        &PostgresSettings::new(&db.url).with_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let manager = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
        .store(store)
        .build()
        .unwrap();
    let pair = manager
        .create_session(tower_jwt_session::manager::NewSession::new("alice").roles(&["user"]))
        .await
        .unwrap();
    let mut conn = db.connect().await;
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    sqlx::query("SELECT 1 FROM tjs_sessions FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = manager.refresh(&pair.refresh_token).await.unwrap_err();
    assert!(matches!(err, SessionError::Unavailable(_)), "{err:?}");
    tx.rollback().await.unwrap();
    assert!(manager.refresh(&pair.refresh_token).await.is_ok());
}

/// DATABASE_URL picks PostgreSQL in `SessionManagerBuilder::connect`; SESSION_STORE=memory leaves it
/// to the application.
#[tokio::test]
async fn database_url_selects_the_store_unless_session_store_says_otherwise() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let lookup = |choice: Option<&'static str>| {
        let url = url.clone();
        move |name: &str| match name {
            "JWT_SECRET" => Some(SECRET.to_owned()),
            "DATABASE_URL" => Some(url.clone()),
            "SESSION_STORE" => choice.map(str::to_owned),
            _ => None,
        }
    };
    let pg = SessionManager::builder(SessionConfig::from_lookup(lookup(None)).unwrap())
        .connect()
        .await
        .unwrap();
    assert_eq!(pg.store_kind(), "postgres");
    let memory =
        SessionManager::builder(SessionConfig::from_lookup(lookup(Some("memory"))).unwrap())
            .connect()
            .await
            .unwrap();
    assert_eq!(memory.store_kind(), "memory");
    // `new` never keeps in memory what the configuration asks to keep in PostgreSQL.
    assert!(SessionManager::new(SessionConfig::from_lookup(lookup(None)).unwrap()).is_err());
}

/// Turns `default_transaction_read_only` on or off for the test database (as a failed-over
/// replica, or an operator freezing writes, would leave it).
async fn set_read_only(db: &TestDb, on: bool) {
    let mut conn = db.connect().await;
    // This connection's own transactions are writable, whatever the database's default.
    sqlx::query("SET default_transaction_read_only = off")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {} SET default_transaction_read_only = {}",
        db.name,
        if on { "on" } else { "off" }
    ))
    .execute(&mut conn)
    .await
    .unwrap();
}

/// A read-only database (the tables made before): a new instance comes up degraded, as the
/// running ones are, instead of exiting. Health says `store_read_only`, writes answer 503,
/// and the sessions made before still work for requests.
#[tokio::test]
async fn a_new_instance_on_a_read_only_database_starts_degraded() {
    let db = TestDb::create().await;
    let before = instance(&db);
    let login = before.login("alice").await;
    drop(before);
    set_read_only(&db, true).await;
    let a = instance(&db);
    let (status, health) = a.get("/api/token/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"]["status"], "degraded", "{health}");
    assert_eq!(
        health["data"]["warnings"],
        json!(["store_read_only"]),
        "{health}"
    );
    let (status, body) = a
        .post(
            "/api/auth/login",
            json!({"username": "bob", "password": "bob-password"}),
        )
        .await;
    common::assert_error(status, &body, 503, "unavailable");
    let (status, body) = a
        .post(
            "/api/token/refresh",
            json!({"refreshToken": login["refreshToken"]}),
        )
        .await;
    common::assert_error(status, &body, 503, "unavailable");
    let (status, me) = a
        .get_auth("/api/me", login["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "{me}");
    // Writable again: the same instance recovers without a restart.
    set_read_only(&db, false).await;
    db.terminate_connections(None).await;
    let (status, body) = a
        .post(
            "/api/token/refresh",
            json!({"refreshToken": login["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The same through the library: `SessionManagerBuilder::connect` on a read-only database connects,
/// and its health reports the reason code.
#[tokio::test]
async fn the_manager_connects_to_a_read_only_database() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let config = move || {
        let url = url.clone();
        SessionConfig::from_lookup(move |name: &str| match name {
            "JWT_SECRET" => Some(SECRET.to_owned()),
            "DATABASE_URL" => Some(url.clone()),
            _ => None,
        })
        .unwrap()
    };
    drop(SessionManager::builder(config()).connect().await.unwrap());
    set_read_only(&db, true).await;
    let manager = SessionManager::builder(config())
        .connect()
        .await
        .expect("a read-only database is started on");
    let codes: Vec<&str> = manager
        .health()
        .await
        .unwrap()
        .iter()
        .map(|w| w.code())
        .collect();
    assert_eq!(codes, ["store_read_only"]);
    assert!(matches!(
        manager
            .create_session(tower_jwt_session::manager::NewSession::new("alice").roles(&["user"]))
            .await,
        Err(SessionError::Unavailable(_))
    ));
}

/// A NUL in a user name is refused as bad input (400), never a store failure (a `text`
/// column cannot hold it): not at login, not in the session-stats path; and health stays ok.
#[tokio::test]
async fn a_nul_in_a_user_name_is_400_not_a_store_failure() {
    let db = TestDb::create().await;
    let a = instance(&db);
    let (status, body) = a
        .post(
            "/api/auth/login",
            json!({"username": "ali\u{0}ce", "password": "alice-password"}),
        )
        .await;
    common::assert_error(status, &body, 400, "invalid_request");
    let admin = a.login("admin").await;
    let (status, body) = a
        .get_auth(
            "/api/token/session-stats/ali%00ce",
            admin["accessToken"].as_str().unwrap(),
        )
        .await;
    common::assert_error(status, &body, 400, "invalid_request");
    let (status, health) = a.get("/api/token/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"]["status"], "ok", "{health}");
}

/// Startup against a closed port names the variable, the host and port and the cause, at
/// once; a bad `sslmode` says what is wrong once. The password is in neither.
#[test]
fn startup_errors_name_the_variable_the_host_and_the_cause() {
    let out = common::run_to_exit(&[("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:1/app")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("DATABASE_URL")
            && stderr.contains("127.0.0.1:1")
            && stderr.contains("connection refused")
            && !stderr.contains("timed out")
            && !stderr.contains("hunter2"),
        "{stderr}"
    );
    let out = common::run_to_exit(&[(
        "DATABASE_URL",
        "postgres://app:hunter2@127.0.0.1/app?sslmode=requir",
    )]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("DATABASE_URL")
            && stderr.contains("sslmode=disable, allow, prefer, require, verify-ca or verify-full")
            && !stderr.contains("error with configuration")
            && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

/// Least privilege through the example: tables made by a migration step as their owner, the
/// server run as a role with SELECT, INSERT, UPDATE and DELETE only and DATABASE_MIGRATE=off.
#[tokio::test]
async fn the_example_runs_as_a_user_with_dml_rights_only() {
    let db = TestDb::create().await;
    PostgresStore::migrate(&PostgresSettings::new(&db.url))
        .await
        .unwrap();
    let url = db.dml_role("tjs").await;
    let a = Server::start(&[("DATABASE_URL", &url), ("DATABASE_MIGRATE", "off")]);
    let login = a.login("alice").await;
    let (status, body) = a
        .post(
            "/api/token/refresh",
            json!({"refreshToken": login["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, health) = a.get("/api/token/health").await;
    assert_eq!(health["data"]["status"], "ok", "{health}");
    assert_eq!(status, 200);
}

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::{Clock as _, ManualClock};
use crate::config::SessionLimitPolicy;
use crate::config::{ConfigError, RedisSettings};
use crate::error::ErrorCode;
use crate::store::{MemoryStore, ReuseKind};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn config() -> SessionConfig {
    SessionConfig::new(SECRET).unwrap()
}

fn manager_with(config: SessionConfig) -> (SessionManager, ManualClock, Arc<MemoryStore>) {
    let clock = ManualClock::new(1_800_000_000_000);
    let store = Arc::new(MemoryStore::new());
    let manager = SessionManager::builder(config)
        .shared_store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    (manager, clock, store)
}

fn manager() -> (SessionManager, ManualClock, Arc<MemoryStore>) {
    manager_with(config())
}

fn roles() -> Vec<String> {
    vec!["user".to_owned()]
}

#[tokio::test]
async fn login_issues_a_working_pair() {
    let (m, _, _) = manager();
    let pair = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    assert_eq!(pair.expires_in, Duration::from_secs(7200));
    let session = m.verify_access_token(&pair.access_token).await.unwrap();
    assert_eq!(
        (session.user_id(), session.session_id()),
        ("alice", pair.session_id)
    );
    assert!(pair.refresh_token.starts_with("tjs1."));
    assert!(!format!("{pair:?}").contains(&pair.refresh_token));
    assert_eq!(m.sessions("alice").await.unwrap().len(), 1);
}

#[tokio::test]
async fn bad_user_ids_and_roles_are_refused() {
    let (m, _, _) = manager();
    for user in ["", &"x".repeat(257), "a\0b"] {
        assert!(matches!(
            m.create_session(crate::manager::NewSession::new(user))
                .await,
            Err(SessionError::InvalidInput(_))
        ));
    }
    let many: Vec<String> = (0..33).map(|i| i.to_string()).collect();
    assert!(matches!(
        m.create_session(crate::manager::NewSession::new("alice").roles(&many))
            .await,
        Err(SessionError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn rotation_and_the_immediate_parent_grace() {
    let (m, clock, _) = manager();
    let login = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let first = m.refresh(&login.refresh_token).await.unwrap();
    assert_ne!(first.refresh_token, login.refresh_token);
    assert_ne!(first.access_token, login.access_token);

    // A racing tab presents the parent 9 s later: same current refresh token, fresh access token.
    clock.advance(Duration::from_secs(9));
    let racer = m.refresh(&login.refresh_token).await.unwrap();
    assert_eq!(racer.refresh_token, first.refresh_token);
    assert!(m.verify_access_token(&racer.access_token).await.is_ok());

    // The successor still rotates normally.
    let second = m.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    // Two rotations and one grace answer: the store is at generation 2.
    assert_eq!(m.sessions("alice").await.unwrap()[0].generation, 2);
}

#[tokio::test]
async fn grandparent_is_theft_and_revokes_everything() {
    let (m, clock, _) = manager();
    let login = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let first = m.refresh(&login.refresh_token).await.unwrap();
    let second = m.refresh(&first.refresh_token).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let err = m.refresh(&login.refresh_token).await.unwrap_err();
    assert!(
        matches!(err, SessionError::TokenReused(ReuseKind::Ancestor)),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::RefreshTokenReused);
    // The thief's and the owner's tokens are all dead now.
    assert!(matches!(
        m.refresh(&second.refresh_token).await,
        Err(SessionError::Revoked)
    ));
    assert_eq!(
        m.verify_access_token(&second.access_token)
            .await
            .unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(
        m.verify_access_token(&login.access_token)
            .await
            .unwrap_err(),
        AuthError::Revoked
    );
}

#[tokio::test]
async fn the_parent_after_the_interval_is_theft() {
    let (m, clock, _) = manager();
    let login = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let first = m.refresh(&login.refresh_token).await.unwrap();
    clock.advance(Duration::from_secs(10));
    let err = m.refresh(&login.refresh_token).await.unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::TokenReused(ReuseKind::RetiredAfterInterval)
        ),
        "{err:?}"
    );
    assert!(matches!(
        m.refresh(&first.refresh_token).await,
        Err(SessionError::Revoked)
    ));
}

#[tokio::test]
async fn absolute_session_expiry_cannot_be_refreshed_past() {
    let (m, clock, _) = manager_with(
        config().with_rules(
            crate::config::SessionRules::default()
                .with_session_ttl(Duration::from_secs(3 * 86400))
                .with_refresh_token_ttl(Duration::from_secs(2 * 86400)),
        ),
    );
    let mut pair = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    for _ in 0..2 {
        clock.advance(Duration::from_secs(86400 + 3600));
        pair = m.refresh(&pair.refresh_token).await.unwrap();
    }
    // The refresh token and the access token are both capped by the session's end.
    let end_ms = 1_800_000_000_000 + 3 * 86_400_000;
    let end = std::time::UNIX_EPOCH + Duration::from_millis(end_ms);
    assert_eq!(pair.refresh_expires_at, end);
    assert!(pair.access_expires_at <= end);
    clock.set(end_ms);
    assert!(matches!(
        m.refresh(&pair.refresh_token).await,
        Err(SessionError::SessionExpired)
    ));
}

#[tokio::test]
async fn refresh_token_expiry() {
    let (m, clock, store) = manager();
    let login = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30 * 86400));
    assert!(matches!(
        m.refresh(&login.refresh_token).await,
        Err(SessionError::TokenExpired)
    ));
    // Still token_expired once the store has forgotten the session.
    clock.advance(Duration::from_secs(86400));
    store.purge(clock.now_ms());
    assert!(store.is_empty());
    assert!(matches!(
        m.refresh(&login.refresh_token).await,
        Err(SessionError::TokenExpired)
    ));
}

#[tokio::test]
async fn forged_and_malformed_refresh_tokens_are_invalid() {
    let (m, _, _) = manager();
    let login = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let t = &login.refresh_token;
    let parts: Vec<&str> = t.split('.').collect();
    let forged_generation = format!("{}.{}.{}.{}.{}", parts[0], parts[1], 5, parts[3], parts[4]);
    let forged_expiry = format!(
        "{}.{}.{}.{}.{}",
        parts[0],
        parts[1],
        parts[2],
        u64::MAX,
        parts[4]
    );
    let other_session = format!(
        "{}.{}.{}.{}.{}",
        parts[0],
        SessionId::random(),
        parts[2],
        parts[3],
        parts[4]
    );
    let mut flipped = t.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        "",
        "tjs1",
        "tjs1....",
        &forged_generation,
        &forged_expiry,
        &other_session,
        &flipped,
        &format!("{t}.x"),
        &t.replacen("tjs1", "tjs2", 1),
        &login.access_token,
        &"a".repeat(10_000),
    ] {
        assert!(
            matches!(m.refresh(bad).await, Err(SessionError::InvalidToken)),
            "{bad:.60}"
        );
    }
    // An access token is not a refresh token, and a refresh token is not an access token.
    assert!(m.verify_access_token(t).await.is_err());
}

/// Defect 9 of the audit: `tjs1.<sid>.01.<exp>.<mac>` verified like `tjs1.<sid>.1.<exp>.<mac>`.
/// Exactly one spelling of each token verifies.
#[tokio::test]
async fn only_the_canonical_spelling_of_a_refresh_token_verifies() {
    let (m, _, _) = manager();
    let login = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let parts: Vec<String> = login.refresh_token.split('.').map(str::to_owned).collect();
    let spell = |generation: &str, expiry: &str| {
        format!(
            "{}.{}.{generation}.{expiry}.{}",
            parts[0], parts[1], parts[4]
        )
    };
    for bad in [
        spell(&format!("0{}", parts[2]), &parts[3]),
        spell(&format!("00{}", parts[2]), &parts[3]),
        spell(&parts[2], &format!("0{}", parts[3])),
        spell(&format!("+{}", parts[2]), &parts[3]),
        spell(&parts[2], &format!("{} ", parts[3])),
    ] {
        assert!(
            matches!(m.refresh(&bad).await, Err(SessionError::InvalidToken)),
            "{bad}"
        );
    }
    // The genuine spelling still works (and "0" itself is canonical).
    assert_eq!(parts[2], "0");
    m.refresh(&login.refresh_token).await.unwrap();
}

/// A genuine refresh token of a session the store has deleted (it ended, or it was forgotten
/// after it expired) is not "invalid": it is revoked, or expired. Only forged and malformed
/// tokens are `InvalidToken`, which is what failed-attempt tracking counts.
#[tokio::test]
async fn genuine_tokens_of_deleted_sessions_are_revoked_or_expired() {
    let (m, clock, store) = manager_with(
        config().with_rules(crate::config::SessionRules::default().with_max_sessions(1)),
    );
    let first = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let second = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    // The first was evicted: deleted at once, and its token says so.
    assert!(store.get(first.session_id).await.unwrap().is_none());
    assert!(matches!(
        m.refresh(&first.refresh_token).await,
        Err(SessionError::Revoked)
    ));
    m.revoke(second.session_id).await.unwrap();
    assert!(store.is_empty());
    assert!(matches!(
        m.refresh(&second.refresh_token).await,
        Err(SessionError::Revoked)
    ));
    // Forgotten after expiry: the token has expired too.
    let third = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    clock.advance(m.config().rules().refresh_token_ttl() + Duration::from_secs(3 * 3600));
    store.purge(clock.now_ms());
    assert!(store.is_empty());
    assert!(matches!(
        m.refresh(&third.refresh_token).await,
        Err(SessionError::TokenExpired)
    ));
}

#[tokio::test]
async fn refresh_tokens_survive_a_jwt_secret_rotation() {
    let clock = ManualClock::new(1_800_000_000_000);
    let store = Arc::new(MemoryStore::new());
    let old = SessionManager::builder(config())
        .shared_store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let login = old
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let rotated = SessionManager::builder(SessionConfig::from_tokens(
        crate::config::TokenSettings::new("a-brand-new-secret-a-brand-new-secret")
            .unwrap()
            .with_previous_secret(SECRET)
            .unwrap(),
    ))
    .shared_store(store.clone())
    .clock(clock.clone())
    .build()
    .unwrap();
    assert!(
        rotated
            .verify_access_token(&login.access_token)
            .await
            .is_ok()
    );
    let next = rotated.refresh(&login.refresh_token).await.unwrap();
    // Without the old secret listed, its tokens are refused.
    let forgetful = SessionManager::builder(
        SessionConfig::new("a-brand-new-secret-a-brand-new-secret").unwrap(),
    )
    .shared_store(store)
    .clock(clock)
    .build()
    .unwrap();
    assert!(
        forgetful
            .verify_access_token(&login.access_token)
            .await
            .is_err()
    );
    assert!(forgetful.refresh(&next.refresh_token).await.is_ok());
}

#[tokio::test]
async fn the_store_never_holds_a_refresh_token() {
    let (m, _, store) = manager();
    let login = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let stored = format!("{:?}", store);
    let mac = login.refresh_token.rsplit('.').next().unwrap();
    assert!(!stored.contains(mac) && !stored.contains(&login.refresh_token));
    assert!(!stored.contains(&login.access_token));
}

#[tokio::test]
async fn eviction_ends_the_least_recently_active_session_at_once() {
    let (m, clock, _) = manager_with(
        config().with_rules(crate::config::SessionRules::default().with_max_sessions(2)),
    );
    let a = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let b = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    // Refreshing `a` makes `b` the least recently active.
    let a2 = m.refresh(&a.refresh_token).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let c = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    assert_eq!(
        m.verify_access_token(&b.access_token).await.unwrap_err(),
        AuthError::Revoked
    );
    assert!(matches!(
        m.refresh(&b.refresh_token).await,
        Err(SessionError::Revoked)
    ));
    assert!(m.verify_access_token(&a2.access_token).await.is_ok());
    assert!(m.verify_access_token(&c.access_token).await.is_ok());
    let live: Vec<SessionId> = m
        .sessions("alice")
        .await
        .unwrap()
        .iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(live, vec![a.session_id, c.session_id]);
    // Other users are not affected.
    assert!(
        m.create_session(crate::manager::NewSession::new("bob").roles(&roles()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn deny_policy_refuses_the_new_login() {
    let (m, _, _) = manager_with(
        config().with_rules(
            crate::config::SessionRules::default()
                .with_max_sessions(1)
                .with_limit_policy(SessionLimitPolicy::Deny),
        ),
    );
    let a = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let err = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::LimitReached));
    assert_eq!(
        (err.code().status(), err.code()),
        (http::StatusCode::FORBIDDEN, ErrorCode::Forbidden)
    );
    assert!(m.verify_access_token(&a.access_token).await.is_ok());
    m.revoke(a.session_id).await.unwrap();
    assert!(
        m.create_session(crate::manager::NewSession::new("alice").roles(&roles()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn logout_and_logout_all() {
    let (m, _, _) = manager();
    let a = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let b = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let c = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let bob = m
        .create_session(crate::manager::NewSession::new("bob").roles(&roles()))
        .await
        .unwrap();
    assert_eq!(m.revoke(a.session_id).await.unwrap(), 1);
    assert_eq!(m.revoke(a.session_id).await.unwrap(), 0);
    assert_eq!(
        m.verify_access_token(&a.access_token).await.unwrap_err(),
        AuthError::Revoked
    );
    assert!(matches!(
        m.refresh(&a.refresh_token).await,
        Err(SessionError::Revoked)
    ));
    assert_eq!(
        m.revoke(crate::manager::Revoke::User("alice"))
            .await
            .unwrap(),
        2
    );
    for pair in [&b, &c] {
        assert_eq!(
            m.verify_access_token(&pair.access_token).await.unwrap_err(),
            AuthError::Revoked
        );
    }
    assert!(m.verify_access_token(&bob.access_token).await.is_ok());
    assert!(m.sessions("alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_revocation_by_another_instance_is_seen_within_the_cache_ttl() {
    let clock = ManualClock::new(1_800_000_000_000);
    let store = Arc::new(MemoryStore::new());
    let build = || {
        SessionManager::builder(config().with_revocation_cache(
            crate::config::RevocationCacheSettings::default().with_ttl(Duration::from_millis(200)),
        ))
        .shared_store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap()
    };
    let (one, two) = (build(), build());
    let pair = one
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    assert!(
        two.verify_access_token(&pair.access_token).await.is_ok(),
        "cached as active on two"
    );
    one.revoke(pair.session_id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        two.verify_access_token(&pair.access_token)
            .await
            .unwrap_err(),
        AuthError::Revoked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_refreshes_agree_on_one_successor() {
    let (m, _, _) = manager();
    let login = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let m = m.clone();
            let token = login.refresh_token.clone();
            tokio::spawn(async move { m.refresh(&token).await })
        })
        .collect();
    let mut successors = std::collections::HashSet::new();
    for t in tasks {
        successors.insert(t.await.unwrap().unwrap().refresh_token);
    }
    assert_eq!(successors.len(), 1);
    let successor = successors.into_iter().next().unwrap();
    let next = m.refresh(&successor).await.unwrap();
    assert!(m.verify_access_token(&next.access_token).await.is_ok());
}

#[tokio::test]
async fn roles_are_taken_as_literals_vectors_slices_or_none() {
    let (m, _, _) = manager();
    let owned: Vec<String> = vec!["user".to_owned(), "admin".to_owned()];
    for pair in [
        m.create_session(crate::manager::NewSession::new("a").roles(&["user", "admin"]))
            .await
            .unwrap(),
        m.create_session(crate::manager::NewSession::new("b").roles(&owned))
            .await
            .unwrap(),
        m.create_session(crate::manager::NewSession::new("c").roles(&owned[..]))
            .await
            .unwrap(),
    ] {
        let session = m.verify_access_token(&pair.access_token).await.unwrap();
        assert_eq!(session.roles().collect::<Vec<_>>(), ["user", "admin"]);
    }
    let none = m
        .create_session(crate::manager::NewSession::new("d"))
        .await
        .unwrap();
    let session = m.verify_access_token(&none.access_token).await.unwrap();
    assert_eq!(session.roles().count(), 0);
}

#[tokio::test]
async fn public_times_agree_with_the_clock() {
    let (m, clock, _) = manager();
    let pair = m
        .create_session(crate::manager::NewSession::new("alice"))
        .await
        .unwrap();
    let now = crate::clock::system_time(clock.now_ms());
    assert_eq!(pair.access_expires_at, now + Duration::from_secs(7200));
    assert_eq!(
        pair.refresh_expires_at,
        now + Duration::from_secs(30 * 86400)
    );
    let session = m.verify_access_token(&pair.access_token).await.unwrap();
    assert_eq!(session.expires_at(), pair.access_expires_at);
    assert_eq!(session.issued_at(), now);
}

fn redis_config(url: &str) -> SessionConfig {
    config().with_redis(RedisSettings::new([url]))
}

#[tokio::test]
async fn new_refuses_a_configuration_that_names_redis() {
    let err = SessionManager::new(redis_config("redis://user:hunter2@127.0.0.1:1")).unwrap_err();
    match &err {
        ConfigError::Conflict { name, .. } => assert_eq!(*name, "REDIS_URL"),
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("connect()"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    // A store given explicitly is the caller's choice.
    let explicit = SessionManager::builder(redis_config("redis://127.0.0.1:1"))
        .store(MemoryStore::new())
        .build();
    assert!(explicit.is_ok());
}

#[tokio::test]
async fn connect_picks_the_store_the_configuration_names() {
    let memory = SessionManager::builder(config()).connect().await.unwrap();
    assert_eq!(memory.store_kind(), "memory");

    // Nothing listens on port 1: the named store is opened or the start fails, never memory.
    let unreachable = SessionManager::builder(redis_config("redis://127.0.0.1:1"))
        .connect()
        .await;
    #[cfg(feature = "redis")]
    assert!(
        matches!(unreachable, Err(StartupError::Store(_))),
        "{unreachable:?}"
    );
    #[cfg(not(feature = "redis"))]
    assert!(matches!(
        unreachable,
        Err(StartupError::Config(ConfigError::StoreNotBuilt { .. }))
    ));

    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("REDIS_URL") {
        // A prefix of its own: the default one on a shared Redis would be claimed for the
        // test's key, and an app started on it next with another key refused.
        let prefix = crate::store::redis::redis_server::unique_prefix("connect");
        let config = config().with_redis(RedisSettings::new([url]).with_key_prefix(&prefix));
        let redis = SessionManager::builder(config).connect().await.unwrap();
        assert_eq!(redis.store_kind(), "redis");
        let pair = redis
            .create_session(crate::manager::NewSession::new("alice").roles(&["user"]))
            .await
            .unwrap();
        assert!(redis.refresh(&pair.refresh_token).await.is_ok());
    }
}

/// Two applications signing with different keys on one Redis prefix would evict, list and
/// revoke each other's sessions: the second to start is refused, naming the prefix. Restarts,
/// a key rotation (the old key listed as previous) and a rollback from it are the same
/// application.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_second_application_on_one_redis_prefix_is_refused() {
    use crate::store::StoreError;
    use crate::store::redis::redis_server;
    let url = redis_server::single().urls[0].clone();
    let prefix = redis_server::unique_prefix("owners");
    let app = |secret: &str, previous: Option<&str>| {
        let mut config = SessionConfig::new(secret)
            .unwrap()
            .with_redis(RedisSettings::new([url.clone()]).with_key_prefix(&prefix));
        if let Some(previous) = previous {
            config = config.with_tokens(
                crate::config::TokenSettings::new(secret)
                    .unwrap()
                    .with_previous_secret(previous)
                    .unwrap(),
            );
        }
        SessionManager::builder(config).connect()
    };
    let (a, b, c) = (SECRET, "b".repeat(32), "c".repeat(32));
    let first = app(a, None).await.unwrap();
    let pair = first
        .create_session(crate::manager::NewSession::new("alice").roles(&["user"]))
        .await
        .unwrap();
    assert!(app(a, None).await.is_ok(), "a restart");

    match app(&b, None).await {
        Err(StartupError::Store(StoreError::Misconfigured(message))) => {
            assert!(message.contains(&format!("`{prefix}`")), "{message}");
            assert!(message.contains("REDIS_KEY_PREFIX"), "{message}");
            assert!(!message.contains(&b) && !message.contains(a), "{message}");
        }
        other => panic!("a second application started: {other:?}"),
    }
    assert!(
        first.refresh(&pair.refresh_token).await.is_ok(),
        "untouched"
    );

    assert!(app(&b, Some(a)).await.is_ok(), "a key rotation");
    assert!(app(a, None).await.is_ok(), "a rollback of the rotation");
    assert!(
        matches!(
            app(&c, None).await,
            Err(StartupError::Store(StoreError::Misconfigured(_)))
        ),
        "a third application"
    );
}

/// Logout-all on a Redis that lost the user's index (as `maxmemory` eviction does) used to
/// answer `{"revoked": 0}` and leave every session working. Now it ends the caller's session by
/// its id and fails loudly; on a store that lost nothing it counts as before.
#[cfg(feature = "redis")]
#[tokio::test]
async fn logout_all_fails_loudly_when_the_store_lost_the_users_index() {
    use crate::store::redis::redis_server;
    let server = redis_server::single();
    let prefix = redis_server::unique_prefix("lost-index");
    let config =
        config().with_redis(RedisSettings::new(server.urls.clone()).with_key_prefix(&prefix));
    let m = SessionManager::builder(config).connect().await.unwrap();
    let caller = m
        .create_session(crate::manager::NewSession::new("alice").roles(&["user"]))
        .await
        .unwrap();
    let other = m
        .create_session(crate::manager::NewSession::new("alice").roles(&["user"]))
        .await
        .unwrap();
    let session = m.verify_access_token(&caller.access_token).await.unwrap();

    // The index goes as `maxmemory` eviction would take it: the server may be the one
    // REDIS_URL names, so through a client, not a port of our own.
    let client = redis::Client::open(server.urls[0].as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let indexes: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*:u:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    let _: i64 = redis::cmd("DEL")
        .arg(&indexes[0])
        .query_async(&mut conn)
        .await
        .unwrap();

    let err = m
        .revoke(crate::manager::Revoke::Everywhere(&session))
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::Inconsistent), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Unavailable);
    m.inner.cache.invalidate(session.session_id());
    assert!(m.verify_access_token(&caller.access_token).await.is_err());
    // The other session is what the operator is warned about: the index no longer names it.
    assert!(m.verify_access_token(&other.access_token).await.is_ok());

    // A store that lost nothing: the count, caller included.
    let third = m
        .create_session(crate::manager::NewSession::new("bob").roles(&["user"]))
        .await
        .unwrap();
    let _fourth = m
        .create_session(crate::manager::NewSession::new("bob").roles(&["user"]))
        .await
        .unwrap();
    let bob = m.verify_access_token(&third.access_token).await.unwrap();
    assert_eq!(
        m.revoke(crate::manager::Revoke::Everywhere(&bob))
            .await
            .unwrap(),
        2
    );
}

/// A logout racing logout-all (the caller's session ended by someone else in between) is not
/// an inconsistency.
#[tokio::test]
async fn logout_all_after_the_callers_own_logout_is_no_error() {
    let (m, _, _) = manager();
    let pair = m
        .create_session(crate::manager::NewSession::new("alice"))
        .await
        .unwrap();
    let other = m
        .create_session(crate::manager::NewSession::new("alice"))
        .await
        .unwrap();
    let session = m.verify_access_token(&pair.access_token).await.unwrap();
    m.revoke(session.session_id()).await.unwrap();
    assert_eq!(
        m.revoke(crate::manager::Revoke::Everywhere(&session))
            .await
            .unwrap(),
        1
    );
    assert!(m.verify_access_token(&other.access_token).await.is_err());
}

/// Two applications starting at the same moment on a fresh prefix: the claim is one script,
/// so exactly one of them gets it, whatever the interleaving.
#[cfg(feature = "redis")]
#[tokio::test]
async fn two_applications_starting_at_once_on_a_fresh_prefix_get_it_once() {
    use crate::store::redis::redis_server;
    let url = redis_server::single().urls[0].clone();
    for round in 0..8 {
        let prefix = redis_server::unique_prefix(&format!("owners-race-{round}"));
        let app = |secret: String| {
            let config = SessionConfig::new(secret)
                .unwrap()
                .with_redis(RedisSettings::new([url.clone()]).with_key_prefix(&prefix));
            SessionManager::builder(config).connect()
        };
        let (a, b) = tokio::join!(app("a".repeat(32)), app("b".repeat(32)));
        assert!(a.is_ok() != b.is_ok(), "round {round}: {a:?} / {b:?}");
    }
}

/// Log lines written while a test runs, at `level` and above.
#[derive(Clone, Default)]
struct LogLines(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogLines {
    type Writer = LogLines;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl LogLines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Issue 31, item 5: a refresh the store answers "no such session" for is still refused as
/// `token_revoked` (the wire code is the documented one), but the log says what it is: a
/// rotation the store lost (it has the session at an older generation than this server
/// issued: a failover that lost acknowledged writes), at WARN; or a session it has no record
/// of (ended, or lost), at INFO. Before, both were one debug line "refresh refused", as a
/// logout is.
#[tokio::test(flavor = "current_thread")]
async fn a_session_the_store_lost_is_logged_as_lost_not_as_a_logout() {
    let lines = LogLines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let (m, clock, store) = manager();
    let login = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    let before = store.get(login.session_id).await.unwrap().unwrap();
    clock.advance(Duration::from_secs(1));
    let rotated = m.refresh(&login.refresh_token).await.unwrap();
    // The store goes back to what it held before the rotation, as a replica promoted before
    // it received the rotation does.
    let now = clock.now_ms();
    store.revoke(login.session_id, now).await.unwrap();
    let limit = SessionLimit {
        max: 10,
        policy: SessionLimitPolicy::Evict,
    };
    store
        .create(before, limit, &m.inner.lifetimes, now)
        .await
        .unwrap();
    assert!(matches!(
        m.refresh(&rotated.refresh_token).await,
        Err(SessionError::Revoked)
    ));
    let text = lines.text();
    assert!(
        text.contains("WARN") && text.contains("lost a rotation"),
        "{text}"
    );

    // A session the store has no record of at all.
    let other = m
        .create_session(crate::manager::NewSession::new("alice").roles(&roles()))
        .await
        .unwrap();
    store
        .revoke(other.session_id, clock.now_ms())
        .await
        .unwrap();
    assert!(matches!(
        m.refresh(&other.refresh_token).await,
        Err(SessionError::Revoked)
    ));
    let text = lines.text();
    assert!(
        text.contains("INFO") && text.contains("has no record of"),
        "{text}"
    );
}

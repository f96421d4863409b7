use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::SessionConfig;
use crate::clock::ManualClock;
use crate::error::ErrorCode;
use crate::manager::{SessionError, SessionManager};
use crate::session::ClaimsError;
use crate::store::{MemoryStore, SessionStore};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn builder(store: Arc<dyn SessionStore>) -> crate::manager::SessionManagerBuilder {
    SessionManager::builder(SessionConfig::new(SECRET).unwrap())
        .shared_store(store)
        .clock(ManualClock::new(1_800_000_000_000))
}

fn claims_of(token: &str, m: &SessionManager) -> Value {
    m.codec().verify(token).unwrap().claims::<Value>().unwrap()
}

fn tenant(name: &str) -> Value {
    json!({ "tenant": name })
}

#[tokio::test]
async fn login_claims_reach_every_token_and_carry_over_without_a_hook() {
    let m = builder(Arc::new(MemoryStore::new())).build().unwrap();
    let login = m
        .create_session(
            NewSession::new("alice")
                .roles(&["user"])
                .claims(&tenant("acme")),
        )
        .await
        .unwrap();
    let session = m.verify_access_token(&login.access_token).await.unwrap();
    assert_eq!(session.claims::<Value>().unwrap(), tenant("acme"));
    assert_eq!(session.roles().collect::<Vec<_>>(), ["user"]);
    let refreshed = m.refresh(&login.refresh_token).await.unwrap();
    let again = m.refresh(&refreshed.refresh_token).await.unwrap();
    assert_eq!(claims_of(&again.access_token, &m), tenant("acme"));
    assert_eq!(
        m.sessions("alice").await.unwrap()[0].claims.as_json(),
        r#"{"tenant":"acme"}"#
    );
    // The plain create_session has none.
    let plain = m
        .create_session(crate::manager::NewSession::new("bob").roles(&["user"]))
        .await
        .unwrap();
    assert_eq!(claims_of(&plain.access_token, &m), json!({}));
}

#[tokio::test]
async fn claims_the_rules_refuse_are_a_500_and_start_nothing() {
    let m = builder(Arc::new(MemoryStore::new())).build().unwrap();
    let refused = [
        (
            NewSession::new("u1").claims(&json!({ "roles": ["admin"] })),
            "reserved",
        ),
        (NewSession::new("u2").claims(&json!(["tenant"])), "array"),
        (
            NewSession::new("u3").claims(&json!({ "pad": "x".repeat(9000) })),
            "oversize",
        ),
    ];
    for (login, what) in refused {
        let user = login.user_id.clone();
        let err = m.create_session(login).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Internal, "{what}: {err}");
        assert_eq!(err.code().status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        match (what, &err) {
            ("reserved", SessionError::InvalidClaims(ClaimsError::Reserved(name))) => {
                assert_eq!(name, "roles");
            }
            ("array", SessionError::InvalidClaims(ClaimsError::NotAnObject)) => {}
            (
                "oversize",
                SessionError::InvalidClaims(ClaimsError::TooLarge { claims_bytes, .. }),
            ) => {
                assert_eq!(*claims_bytes, 9000 + r#"{"pad":""}"#.len());
                assert!(err.to_string().contains("9010 bytes"), "{err}");
            }
            _ => panic!("{what}: {err:?}"),
        }
        assert!(m.sessions(&user).await.unwrap().is_empty(), "{what}");
    }
}

/// What a hook was asked: the roles and claims it was shown.
type Seen = Arc<std::sync::Mutex<Vec<(Vec<String>, Value)>>>;

/// A hook whose answer is the tenant it holds, counting its calls and failing on demand.
#[derive(Clone, Default)]
struct Plans {
    tenant: Arc<std::sync::Mutex<String>>,
    calls: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
    hang: Arc<AtomicBool>,
    seen: Seen,
}

#[async_trait::async_trait]
impl RefreshHook for Plans {
    async fn refresh(&self, session: RefreshContext) -> Result<Refreshed, HookError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push((
            session.roles.clone(),
            session.claims.get::<Value>().unwrap(),
        ));
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err("the plans database is down".into());
        }
        let tenant = self.tenant.lock().unwrap().clone();
        Ok(Refreshed::new(&["user", tenant.as_str()]).claims(&json!({ "tenant": tenant })))
    }
}

impl Plans {
    fn set(&self, tenant: &str) {
        *self.tenant.lock().unwrap() = tenant.to_owned();
    }
}

#[tokio::test]
async fn the_hook_refreshes_roles_and_claims_and_they_are_stored_with_the_rotation() {
    let plans = Plans::default();
    plans.set("globex");
    let m = builder(Arc::new(MemoryStore::new()))
        .refresh_hook(plans.clone())
        .build()
        .unwrap();
    let login = m
        .create_session(
            NewSession::new("alice")
                .roles(&["user"])
                .claims(&tenant("acme")),
        )
        .await
        .unwrap();
    assert_eq!(plans.calls.load(Ordering::SeqCst), 0, "not at login");
    let first = m.refresh(&login.refresh_token).await.unwrap();
    let session = m.codec().verify(&first.access_token).unwrap();
    assert_eq!(session.claims::<Value>().unwrap(), tenant("globex"));
    assert_eq!(session.roles().collect::<Vec<_>>(), ["user", "globex"]);
    let stored = &m.sessions("alice").await.unwrap()[0];
    assert_eq!(
        (stored.claims.as_json(), &stored.roles[..]),
        (
            r#"{"tenant":"globex"}"#,
            &["user".to_owned(), "globex".to_owned()][..]
        )
    );
    // Racing tab: the parent within the interval gets the same successor and the same claims,
    // even though the hook would now answer otherwise; it is not asked.
    plans.set("initech");
    let grace = m.refresh(&login.refresh_token).await.unwrap();
    assert_eq!(grace.refresh_token, first.refresh_token);
    assert_eq!(claims_of(&grace.access_token, &m), tenant("globex"));
    assert_eq!(plans.calls.load(Ordering::SeqCst), 1);
    // The next rotation asks with what the session holds now.
    let second = m.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(claims_of(&second.access_token, &m), tenant("initech"));
    let seen = plans.seen.lock().unwrap().clone();
    assert_eq!(seen[0], (vec!["user".to_owned()], tenant("acme")));
    assert_eq!(
        seen[1],
        (
            vec!["user".to_owned(), "globex".to_owned()],
            tenant("globex")
        )
    );
}

#[tokio::test]
async fn a_failing_or_silent_hook_is_a_503_and_the_refresh_token_stays_usable() {
    let plans = Plans::default();
    plans.set("acme");
    let m = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
        .refresh_hook(plans.clone())
        .refresh_hook_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let login = m.create_session(NewSession::new("alice")).await.unwrap();
    plans.fail.store(true, Ordering::SeqCst);
    let err = m.refresh(&login.refresh_token).await.unwrap_err();
    assert!(
        matches!(err, SessionError::Hook(HookFailure::Failed(_))),
        "{err:?}"
    );
    assert_eq!(err.code().status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !err.to_string().contains("plans database"),
        "the app's error stays in the log"
    );
    plans.fail.store(false, Ordering::SeqCst);
    plans.hang.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let err = m.refresh(&login.refresh_token).await.unwrap_err();
    assert!(
        matches!(err, SessionError::Hook(HookFailure::TimedOut(_))),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(2));
    plans.hang.store(false, Ordering::SeqCst);
    // Nothing was consumed: the same token rotates, as the current one (not a grace answer).
    let stored = &m.sessions("alice").await.unwrap()[0];
    assert_eq!(stored.generation, 0);
    let ok = m.refresh(&login.refresh_token).await.unwrap();
    assert_eq!(claims_of(&ok.access_token, &m), tenant("acme"));
    assert_eq!(m.sessions("alice").await.unwrap()[0].generation, 1);
}

#[tokio::test]
async fn hook_answers_the_rules_refuse_are_a_500_and_change_nothing() {
    let big = Arc::new(AtomicBool::new(true));
    let flag = big.clone();
    let m = builder(Arc::new(MemoryStore::new()))
        .refresh_hook(move |session: RefreshContext| {
            let big = flag.load(Ordering::SeqCst);
            async move {
                if big {
                    let many: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
                    return Ok(Refreshed::new(&many));
                }
                Ok(Refreshed::unchanged(&session).claims(&json!({ "pad": "x".repeat(9000) })))
            }
        })
        .build()
        .unwrap();
    let login = m.create_session(NewSession::new("alice")).await.unwrap();
    let err = m.refresh(&login.refresh_token).await.unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::InvalidClaims(ClaimsError::InvalidRoles(_))
        ),
        "{err:?}"
    );
    big.store(false, Ordering::SeqCst);
    let err = m.refresh(&login.refresh_token).await.unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::InvalidClaims(ClaimsError::TooLarge { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.code().status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(m.sessions("alice").await.unwrap()[0].generation, 0);
}

#[tokio::test]
async fn a_hooks_reserved_claim_is_the_apps_bug_as_at_login_not_a_hook_outage() {
    // Before, `Refreshed::claims` answered the error to the hook, whose `?` made it a hook
    // failure: 503, as if the user database were down.
    let m = builder(Arc::new(MemoryStore::new()))
        .refresh_hook(|session: RefreshContext| async move {
            Ok(Refreshed::unchanged(&session).claims(&json!({ "sub": "root" })))
        })
        .build()
        .unwrap();
    let login = m.create_session(NewSession::new("alice")).await.unwrap();
    let err = m.refresh(&login.refresh_token).await.unwrap_err();
    assert!(
        matches!(err, SessionError::InvalidClaims(ClaimsError::Reserved(_))),
        "{err:?}"
    );
    assert_eq!(err.code().status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(m.sessions("alice").await.unwrap()[0].generation, 0);
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crate::store::RedisStore;
    use crate::store::redis::redis_server;

    async fn store(prefix: &str, sealed: bool) -> Arc<dyn SessionStore> {
        let mut settings = crate::config::RedisSettings::new(redis_server::single().urls.clone())
            .with_key_prefix(prefix);
        if sealed {
            settings = settings.with_encryption_key(&[5; 32]).unwrap();
        }
        Arc::new(RedisStore::connect(&settings).await.unwrap())
    }

    /// Two instances on one Redis: claims given at login on one reach tokens the other
    /// refreshes; each one's hook sees what the other stored; concurrent refreshes of one token
    /// on both, with hooks that answer differently, agree on one successor with one set of
    /// claims.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn claims_rotate_across_two_instances() {
        for sealed in [false, true] {
            let prefix = redis_server::unique_prefix("claims-two");
            let (plans_a, plans_b) = (Plans::default(), Plans::default());
            plans_a.set("from-a");
            plans_b.set("from-b");
            let a = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
                .shared_store(store(&prefix, sealed).await)
                .refresh_hook(plans_a.clone())
                .build()
                .unwrap();
            let b = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
                .shared_store(store(&prefix, sealed).await)
                .refresh_hook(plans_b.clone())
                .build()
                .unwrap();
            let login = a
                .create_session(
                    NewSession::new("alice")
                        .roles(&["user"])
                        .claims(&tenant("acme")),
                )
                .await
                .unwrap();
            let on_b = b.refresh(&login.refresh_token).await.unwrap();
            assert_eq!(claims_of(&on_b.access_token, &b), tenant("from-b"));
            let on_a = a.refresh(&on_b.refresh_token).await.unwrap();
            assert_eq!(claims_of(&on_a.access_token, &a), tenant("from-a"));
            assert_eq!(plans_b.seen.lock().unwrap()[0].1, tenant("acme"));
            assert_eq!(
                plans_a.seen.lock().unwrap()[0].1,
                tenant("from-b"),
                "sealed: {sealed}"
            );
            let mut token = on_a.refresh_token;
            for round in 0..5 {
                let (x, y) = tokio::join!(a.refresh(&token), b.refresh(&token));
                let (x, y) = (x.unwrap(), y.unwrap());
                assert_eq!(x.refresh_token, y.refresh_token, "one successor");
                assert_eq!(
                    claims_of(&x.access_token, &a),
                    claims_of(&y.access_token, &b),
                    "one set of claims for one successor (round {round}, sealed: {sealed})"
                );
                let stored = a.sessions("alice").await.unwrap()[0]
                    .claims
                    .get::<Value>()
                    .unwrap();
                assert_eq!(stored, claims_of(&x.access_token, &a));
                token = x.refresh_token;
            }
            a.revoke(login.session_id).await.unwrap();
        }
    }
}

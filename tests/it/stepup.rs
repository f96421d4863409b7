//! Step-up authentication (RFC 9470): `auth_time`/`amr` in access tokens, the
//! `require_recent_auth` challenge, and `POST /api/auth/reauthenticate` on every store, through
//! the library's router in process.
#![cfg(feature = "axum")]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tower_jwt_session::config::ManualClock;
use tower_jwt_session::login::{Authenticated, CheckError, Credentials, LoginService};
use tower_jwt_session::store::SessionStore;
use tower_jwt_session::{
    Session, SessionConfig, SessionLayer, SessionManager, layer::require_recent_auth,
    routes::TokenRoutes,
};

use crate::common::app::{Client, check_password, read};
use crate::common::{self, SECRET};

const BASE: &str = "http://127.0.0.1:3000";
const REAUTH: &str = "/api/auth/reauthenticate";

/// The demo users, whose check names the password method.
async fn check(c: Credentials) -> Result<Option<Authenticated>, CheckError> {
    Ok(check_password(c).await?.map(|found| found.amr(["pwd"])))
}

fn real_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The router of the step-up: login and re-authentication, the token routes, `GET /api/me`,
/// and `GET /api/account/security` behind `require_recent_auth(5 min)` on `clock`.
struct StepUp {
    manager: SessionManager,
    clock: ManualClock,
    client: Client,
}

impl StepUp {
    /// The same app, seen from another client address (each has its own rate limit).
    fn from(&self, peer: [u8; 4]) -> StepUp {
        StepUp {
            manager: self.manager.clone(),
            clock: self.clock.clone(),
            client: self.client.with_address(peer),
        }
    }

    fn on(manager: SessionManager, clock: ManualClock) -> StepUp {
        let login = LoginService::new(&manager, check);
        let protected = Router::new()
            .route(
                "/api/account/security",
                get(security).route_layer(
                    require_recent_auth(Duration::from_secs(300)).clock(clock.clone()),
                ),
            )
            .route("/api/me", get(me))
            .route_layer(SessionLayer::from_manager(&manager));
        let router = Router::new()
            .route_service("/api/auth/login", login.clone())
            .route_service(REAUTH, login)
            .nest_service("/api/token", TokenRoutes::new(&manager))
            .merge(protected);
        StepUp {
            manager,
            clock,
            client: Client::new(router),
        }
    }

    /// On the memory store, with a manual clock at `start_ms`.
    fn memory(start_ms: u64) -> StepUp {
        let clock = ManualClock::new(start_ms);
        let manager = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
            .clock(clock.clone())
            .build()
            .unwrap();
        StepUp::on(manager, clock)
    }

    async fn login(&self, user: &str) -> Value {
        let (status, body) = self
            .post("/api/auth/login", None, &credentials(user, None))
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.client.post(format!("{BASE}{path}"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        read(req.json(body).send().await.unwrap()).await
    }

    async fn reauthenticate(
        &self,
        token: &str,
        user: &str,
        password: Option<&str>,
    ) -> (u16, Value) {
        self.post(REAUTH, Some(token), &credentials(user, password))
            .await
    }

    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.post(
            "/api/token/refresh",
            None,
            &json!({ "refreshToken": refresh_token }),
        )
        .await
    }

    async fn session(&self, access_token: &str) -> Session {
        self.manager
            .verify_access_token(access_token)
            .await
            .expect("a valid access token")
    }

    /// The user's one live session as the store holds it.
    async fn record(&self, user: &str) -> tower_jwt_session::store::SessionRecord {
        let mut sessions = self.manager.sessions(user).await.unwrap();
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        sessions.remove(0)
    }
}

fn credentials(user: &str, password: Option<&str>) -> Value {
    let password = password.map_or_else(|| format!("{user}-password"), str::to_owned);
    json!({ "username": user, "password": password })
}

async fn security(session: Session) -> axum::Json<Value> {
    let auth_time = session
        .auth_time()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    axum::Json(
        json!({"success": true, "data": {"userId": session.user_id(), "authTime": auth_time}}),
    )
}

async fn me(session: Session) -> axum::Json<Value> {
    axum::Json(json!({"success": true, "data": {"userId": session.user_id()}}))
}

fn token<'a>(data: &'a Value, name: &str) -> &'a str {
    data[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {data}"))
}

fn secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A refresh keeps `auth_time` and `amr`; a re-authentication moves `auth_time` and keeps the
/// session (same id, same devices row).
#[tokio::test]
async fn auth_time_is_kept_by_refresh_and_moved_only_by_a_credential_check() {
    let start = 1_800_000_000_000;
    let app = StepUp::memory(start);
    let login = app.login("alice").await;
    let first = app.session(token(&login, "accessToken")).await;
    assert_eq!(secs(first.auth_time()), start / 1000);
    assert_eq!(first.amr(), ["pwd"]);
    assert_eq!(first.acr(), None);

    app.clock.advance(Duration::from_secs(600));
    let (status, refreshed) = app.refresh(token(&login, "refreshToken")).await;
    assert_eq!(status, 200, "{refreshed}");
    let refreshed = &refreshed["data"];
    let after_refresh = app.session(token(refreshed, "accessToken")).await;
    assert_eq!(
        secs(after_refresh.auth_time()),
        start / 1000,
        "a refresh keeps auth_time"
    );
    assert_eq!(after_refresh.amr(), ["pwd"]);
    assert!(after_refresh.issued_at() > first.issued_at());

    app.clock.advance(Duration::from_secs(60));
    let (status, body) = app
        .reauthenticate(token(refreshed, "accessToken"), "alice", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Re-authentication successful");
    let data = &body["data"];
    assert_eq!(data["sessionId"], login["sessionId"], "the same session");
    assert_eq!(data["userId"], "alice");
    assert!(data["expiresIn"].as_u64().unwrap() > 0);
    let stepped_up = app.session(token(data, "accessToken")).await;
    assert_eq!(secs(stepped_up.auth_time()), (start + 660_000) / 1000);
    assert_eq!(stepped_up.session_id(), first.session_id());
    let record = app.record("alice").await;
    assert_eq!(
        record.generation, 2,
        "one rotation for the refresh, one for the re-authentication"
    );
    assert_eq!(record.auth.auth_time, start + 660_000);
    assert_eq!(record.auth.amr, ["pwd"]);

    // And a refresh after it keeps the new one.
    app.clock.advance(Duration::from_secs(60));
    let (status, again) = app.refresh(token(data, "refreshToken")).await;
    assert_eq!(status, 200, "{again}");
    let kept = app.session(token(&again["data"], "accessToken")).await;
    assert_eq!(secs(kept.auth_time()), (start + 660_000) / 1000);
}

/// The layer's refusal is RFC 9470's, exactly; a re-authentication answers it.
#[tokio::test]
async fn the_step_up_challenge_is_exact_and_reauthenticating_meets_it() {
    let app = StepUp::memory(1_800_000_000_000);
    let login = app.login("alice").await;
    let access = token(&login, "accessToken");
    let security = app.client.get(format!("{BASE}/api/account/security"));
    assert_eq!(
        security.bearer_auth(access).send().await.unwrap().status(),
        200
    );
    // Five minutes and a second later, with a refresh in between: too old.
    app.clock.advance(Duration::from_secs(200));
    let (status, refreshed) = app.refresh(token(&login, "refreshToken")).await;
    assert_eq!(status, 200, "{refreshed}");
    let access = token(&refreshed["data"], "accessToken");
    app.clock.advance(Duration::from_secs(101));
    let res = app
        .client
        .get(format!("{BASE}/api/account/security"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"api\", error=\"insufficient_user_authentication\", \
         error_description=\"a more recent authentication is required\", max_age=300"
    );
    let (_, body) = read(res).await;
    assert_eq!(
        body,
        json!({
            "success": false,
            "message": "a more recent authentication is required",
            "error": "insufficient_user_authentication",
        })
    );
    // The session is fine for everything else.
    let me = app.client.get(format!("{BASE}/api/me")).bearer_auth(access);
    assert_eq!(me.send().await.unwrap().status(), 200);

    let (status, body) = app.reauthenticate(access, "alice", None).await;
    assert_eq!(status, 200, "{body}");
    let fresh = token(&body["data"], "accessToken");
    let res = app
        .client
        .get(format!("{BASE}/api/account/security"))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["userId"], "alice");
}

/// A wrong password is 401 and leaves the session exactly as it was: same generation, its
/// access and refresh tokens still good.
#[tokio::test]
async fn a_wrong_password_leaves_the_session_untouched() {
    let app = StepUp::memory(1_800_000_000_000);
    let login = app.login("alice").await;
    let before = app.record("alice").await;
    app.clock.advance(Duration::from_secs(30));
    let (status, body) = app
        .reauthenticate(token(&login, "accessToken"), "alice", Some("guess"))
        .await;
    common::assert_error(status, &body, 401, "invalid_credentials");
    let after = app.record("alice").await;
    assert_eq!(after, before, "nothing written");
    app.session(token(&login, "accessToken")).await;
    let (status, body) = app.refresh(token(&login, "refreshToken")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.record("alice").await.generation,
        1,
        "the refresh token was current"
    );
}

/// Another user's right credentials are refused (403), counted, and change nothing.
#[tokio::test]
async fn another_users_credentials_are_refused() {
    let app = StepUp::memory(1_800_000_000_000);
    let login = app.login("alice").await;
    let before = app.record("alice").await;
    let (status, body) = app
        .reauthenticate(token(&login, "accessToken"), "bob", None)
        .await;
    common::assert_error(status, &body, 403, "forbidden");
    assert_eq!(app.record("alice").await, before);
    assert!(app.manager.sessions("bob").await.unwrap().is_empty());
}

/// The lock-out applies as at login: after five wrong passwords from one client the sixth
/// attempt, right or wrong, is 429; login and re-authentication count together.
#[tokio::test]
async fn reauthenticate_honours_the_lockout() {
    let app = StepUp::memory(real_now_ms());
    let login = app.login("alice").await;
    let access = token(&login, "accessToken");
    for _ in 0..5 {
        let (status, body) = app.reauthenticate(access, "alice", Some("guess")).await;
        common::assert_error(status, &body, 401, "invalid_credentials");
    }
    for password in [Some("guess"), None] {
        let (status, body) = app.reauthenticate(access, "alice", password).await;
        common::assert_error(status, &body, 429, "rate_limited");
    }
    let (status, body) = app
        .post("/api/auth/login", None, &credentials("alice", None))
        .await;
    common::assert_error(status, &body, 429, "rate_limited");
    assert_eq!(app.record("alice").await.generation, 0, "nothing written");
}

/// No token, a forged one, or a session that has ended: 401 before anything is counted.
#[tokio::test]
async fn without_a_live_session_reauthentication_is_refused() {
    let app = StepUp::memory(1_800_000_000_000);
    let (status, body) = app.post(REAUTH, None, &credentials("alice", None)).await;
    common::assert_error(status, &body, 401, "invalid_token");
    let (status, body) = app.reauthenticate("not.a.token", "alice", None).await;
    common::assert_error(status, &body, 401, "invalid_token");

    let login = app.login("alice").await;
    let access = token(&login, "accessToken");
    let (status, body) = app
        .post("/api/token/logout", Some(access), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.reauthenticate(access, "alice", None).await;
    common::assert_error(status, &body, 401, "token_revoked");
}

/// The login's clear answers: a body that is not JSON (415), a foreign Origin (403), GET (405).
#[tokio::test]
async fn wrong_content_type_and_foreign_origin_get_the_logins_answers() {
    let app = StepUp::memory(1_800_000_000_000);
    let login = app.login("alice").await;
    let access = token(&login, "accessToken");
    let res = app
        .client
        .post(format!("{BASE}{REAUTH}"))
        .bearer_auth(access)
        .header("content-type", "text/plain")
        .body("username=alice&password=alice-password")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    common::assert_error(status, &body, 415, "unsupported_media_type");
    let res = app
        .client
        .post(format!("{BASE}{REAUTH}"))
        .bearer_auth(access)
        .header("origin", "https://evil.example")
        .json(&credentials("alice", None))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    common::assert_error(status, &body, 403, "forbidden");
    let res = app
        .client
        .get(format!("{BASE}{REAUTH}"))
        .bearer_auth(access);
    let (status, body) = read(res.send().await.unwrap()).await;
    common::assert_error(status, &body, 405, "method_not_allowed");
    assert_eq!(app.record("alice").await.generation, 0);
}

/// A re-authentication racing a refresh of the same session, `rounds` times: per generation
/// one of them wins; the other gets its usual answer (the refresh: the grace answer with the
/// winner's successor; the re-authentication: 503, nothing written), and the session stays
/// usable with the newest token.
async fn reauthenticate_races_a_refresh(base: StepUp, rounds: usize) {
    let mut outcomes = std::collections::BTreeMap::new();
    for round in 0..rounds {
        // A client address per round: the rounds together exceed one client's rate limit.
        let app = Arc::new(base.from([198, 51, 100, round as u8]));
        let user = ["alice", "bob"][round % 2];
        for stale in app.manager.sessions(user).await.unwrap() {
            app.manager.revoke(stale.session_id).await.unwrap();
        }
        let login = app.login(user).await;
        let login_auth = app.record(user).await.auth.auth_time;
        app.clock.advance(Duration::from_millis(1_500));
        let (access, refresh) = (
            token(&login, "accessToken").to_owned(),
            token(&login, "refreshToken").to_owned(),
        );
        let refreshing = {
            let app = app.clone();
            tokio::spawn(async move { app.refresh(&refresh).await })
        };
        let reauthenticating = {
            let app = app.clone();
            tokio::spawn(async move { app.reauthenticate(&access, user, None).await })
        };
        let (refreshed, reauthenticated) =
            (refreshing.await.unwrap(), reauthenticating.await.unwrap());
        assert_eq!(
            refreshed.0, 200,
            "the refresh always succeeds: {}",
            refreshed.1
        );
        let record = app.record(user).await;
        assert_eq!(record.revoked_at, None);
        let successors: std::collections::BTreeSet<String> = [&refreshed, &reauthenticated]
            .iter()
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| token(&body["data"], "refreshToken").to_owned())
            .collect();
        let kind = match reauthenticated.0 {
            503 => {
                common::assert_error(503, &reauthenticated.1, 503, "unavailable");
                assert_eq!(record.auth.auth_time, login_auth, "nothing of it written");
                "refresh won"
            }
            200 => {
                assert_eq!(record.auth.auth_time, login_auth + 1_500);
                if successors.len() == 1 {
                    "reauthentication won, refresh got grace"
                } else {
                    "refresh first, reauthentication next"
                }
            }
            other => panic!("re-authentication answered {other}: {}", reauthenticated.1),
        };
        *outcomes.entry(kind).or_insert(0) += 1;
        assert_eq!(
            record.generation,
            successors.len() as u64,
            "one rotation per successor handed out"
        );
        // Usable: the newest token refreshes and its access token verifies.
        let newest = successors
            .iter()
            .find(|t| {
                let generation: u64 = t.split('.').nth(2).unwrap().parse().unwrap();
                generation == record.generation
            })
            .expect("a successor at the stored generation");
        let (status, body) = app.refresh(newest).await;
        assert_eq!(status, 200, "{body}");
        app.session(token(&body["data"], "accessToken")).await;
    }
    eprintln!("reauthenticate vs refresh outcomes over {rounds} rounds: {outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reauthenticate_racing_a_refresh_on_memory() {
    reauthenticate_races_a_refresh(StepUp::memory(real_now_ms()), 40).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reauthenticate_racing_a_refresh_on_redis() {
    use tower_jwt_session::config::RedisSettings;
    use tower_jwt_session::store::RedisStore;
    for sealed in [false, true] {
        let url = common::redis_server::single().urls[0].clone();
        let mut settings = RedisSettings::new([url])
            .with_key_prefix(common::redis_server::unique_prefix("stepup"));
        if sealed {
            settings = settings.with_encryption_key(&[7u8; 32]).unwrap();
        }
        let store = RedisStore::connect(&settings).await.unwrap();
        assert_eq!(store.kind(), "redis");
        let clock = ManualClock::new(real_now_ms());
        let manager = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
            .clock(clock.clone())
            .store(store)
            .build()
            .unwrap();
        reauthenticate_races_a_refresh(StepUp::on(manager, clock), 24).await;
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reauthenticate_racing_a_refresh_on_postgres() {
    use common::pg_server::TestDb;
    use tower_jwt_session::config::PostgresSettings;
    use tower_jwt_session::store::PostgresStore;
    let db = TestDb::create().await;
    let store = PostgresStore::connect(&PostgresSettings::new(&db.url))
        .await
        .unwrap();
    assert_eq!(store.kind(), "postgres");
    let clock = ManualClock::new(real_now_ms());
    let manager = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
        .clock(clock.clone())
        .store(store)
        .build()
        .unwrap();
    reauthenticate_races_a_refresh(StepUp::on(manager, clock), 24).await;
}

/// Methods a token cannot carry are the app's bug: 500, logged, no session started or changed.
#[tokio::test]
async fn amr_values_a_token_cannot_carry_are_the_apps_bug() {
    async fn broken(c: Credentials) -> Result<Option<Authenticated>, CheckError> {
        Ok(check_password(c)
            .await?
            .map(|found| found.amr(["pwd\nforged"])))
    }
    let manager = SessionManager::new(SessionConfig::new(SECRET).unwrap()).unwrap();
    let client = Client::new(
        Router::new().route_service("/api/auth/login", LoginService::new(&manager, broken)),
    );
    let res = client
        .post(format!("{BASE}/api/auth/login"))
        .json(&credentials("alice", None))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    common::assert_error(status, &body, 500, "internal_error");
    assert!(manager.sessions("alice").await.unwrap().is_empty());
}

/// A memory store on which a refresh lands right after the re-authentication reads the
/// session: the race, made deterministic.
#[derive(Debug)]
struct RefreshOnRead {
    inner: tower_jwt_session::store::MemoryStore,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl SessionStore for RefreshOnRead {
    async fn create(
        &self,
        record: tower_jwt_session::store::SessionRecord,
        limit: tower_jwt_session::store::SessionLimit,
        lifetimes: &tower_jwt_session::store::Lifetimes,
        now: u64,
    ) -> Result<tower_jwt_session::store::CreateOutcome, tower_jwt_session::store::StoreError> {
        self.inner.create(record, limit, lifetimes, now).await
    }

    async fn rotate(
        &self,
        request: tower_jwt_session::store::RotateRequest,
    ) -> Result<tower_jwt_session::store::RotateOutcome, tower_jwt_session::store::StoreError> {
        self.inner.rotate(request).await
    }

    async fn get(
        &self,
        session_id: tower_jwt_session::session::SessionId,
    ) -> Result<Option<tower_jwt_session::store::SessionRecord>, tower_jwt_session::store::StoreError>
    {
        let read = self.inner.get(session_id).await?;
        if let Some(record) = &read
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            // Another instance's refresh, between this read and the caller's write.
            let refresh = tower_jwt_session::store::RotateRequest {
                session_id,
                generation: record.generation,
                now: record.last_active_at + 1,
                lifetimes: tower_jwt_session::store::Lifetimes {
                    refresh_ttl: 30 * 86_400_000,
                    reuse_interval: 10_000,
                    access_retention: 7_230_000,
                },
                update: None,
                deadline: None,
            };
            let outcome = self.inner.rotate(refresh).await?;
            assert!(matches!(
                outcome,
                tower_jwt_session::store::RotateOutcome::Rotated(_)
            ));
        }
        Ok(read)
    }

    async fn list(
        &self,
        user_id: &str,
        now: u64,
    ) -> Result<Vec<tower_jwt_session::store::SessionRecord>, tower_jwt_session::store::StoreError>
    {
        self.inner.list(user_id, now).await
    }

    async fn revoke(
        &self,
        session_id: tower_jwt_session::session::SessionId,
        now: u64,
    ) -> Result<bool, tower_jwt_session::store::StoreError> {
        self.inner.revoke(session_id, now).await
    }

    async fn revoke_all(
        &self,
        user_id: &str,
        now: u64,
    ) -> Result<Vec<tower_jwt_session::session::SessionId>, tower_jwt_session::store::StoreError>
    {
        self.inner.revoke_all(user_id, now).await
    }

    async fn ping(&self) -> Result<(), tower_jwt_session::store::StoreError> {
        self.inner.ping().await
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// The re-authentication that loses the race to a refresh writes nothing (the refresh's
/// generation and the old auth_time stand) and answers 503; the session stays usable.
#[tokio::test]
async fn a_reauthentication_that_loses_the_race_writes_nothing() {
    let start = 1_800_000_000_000;
    let clock = ManualClock::new(start);
    let store = Arc::new(RefreshOnRead {
        inner: tower_jwt_session::store::MemoryStore::new(),
        armed: std::sync::atomic::AtomicBool::new(false),
    });
    let manager = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
        .clock(clock.clone())
        .shared_store(store.clone())
        .build()
        .unwrap();
    let app = StepUp::on(manager, clock);
    let login = app.login("alice").await;
    app.clock.advance(Duration::from_secs(5));
    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = app
        .reauthenticate(token(&login, "accessToken"), "alice", None)
        .await;
    common::assert_error(status, &body, 503, "unavailable");
    let record = app.record("alice").await;
    assert_eq!(
        (record.generation, record.auth.auth_time),
        (1, start),
        "only the refresh's write"
    );
    assert_eq!(record.revoked_at, None);
    // The login's token is now the parent, within the grace window: still good.
    let (status, body) = app.refresh(token(&login, "refreshToken")).await;
    assert_eq!(status, 200, "{body}");
    // Sent again, the re-authentication goes through.
    let (status, body) = app
        .reauthenticate(token(&body["data"], "accessToken"), "alice", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.record("alice").await.auth.auth_time, start + 5_000);
}

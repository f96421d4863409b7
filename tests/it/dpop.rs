//! DPoP-bound sessions end to end (RFC 9449): login binds the session to the proof's key,
//! the layer takes a bound token only as `Authorization: DPoP` with a proof by that key, and
//! a refresh needs one too. Every check of §4.3 and §7 as a request the server refuses.
#![cfg(feature = "axum")]

use http::StatusCode;
use serde_json::{Value, json};

use crate::common::app::{App, read};
use crate::common::dpop::{DpopKey, claims_of};

const ORIGIN: &str = "http://127.0.0.1:3000";
const LOGIN: &str = "http://127.0.0.1:3000/api/auth/login";
const ME: &str = "http://127.0.0.1:3000/api/me";
const REFRESH: &str = "http://127.0.0.1:3000/api/token/refresh";

fn app(mode: &str) -> App {
    App::start(&[("SESSION_DPOP", mode), ("SESSION_PUBLIC_ORIGIN", ORIGIN)])
}

fn credentials(user: &str) -> Value {
    json!({ "username": user, "password": format!("{user}-password") })
}

/// Logs `user` in with a proof by `key` (or none); the status and body.
async fn login(app: &App, user: &str, key: Option<&DpopKey>) -> (u16, Value) {
    let mut request = app.client.post(LOGIN).json(&credentials(user));
    if let Some(key) = key {
        request = request.header("dpop", key.proof("POST", LOGIN, None));
    }
    read(request.send().await.unwrap()).await
}

/// `POST /api/auth/login` for `user` with the `DPoP` header `proof`.
async fn send_login(
    client: &crate::common::app::Client,
    user: &str,
    proof: impl AsRef<str>,
) -> crate::common::app::Response {
    let request = client.post(LOGIN).header("dpop", proof.as_ref());
    request.json(&credentials(user)).send().await.unwrap()
}

/// `GET /api/me` with `authorization` and the given `DPoP` headers.
async fn me(app: &App, authorization: &str, proofs: &[String]) -> crate::common::app::Response {
    let mut request = app.client.get(ME).header("authorization", authorization);
    for proof in proofs {
        request = request.header("dpop", proof.as_str());
    }
    request.send().await.unwrap()
}

async fn refresh(app: &App, token: &str, proof: Option<String>) -> (u16, Value) {
    let mut request = app
        .client
        .post(REFRESH)
        .json(&json!({ "refreshToken": token }));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    read(request.send().await.unwrap()).await
}

/// A bound login: the key and the token pair.
async fn bound(app: &App) -> (DpopKey, Value) {
    let key = DpopKey::new();
    let (status, body) = login(app, "alice", Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    (key, body["data"].clone())
}

#[tokio::test]
async fn a_login_with_a_proof_binds_the_session_and_its_tokens_work_only_with_proofs() {
    let app = app("optional");
    let (key, pair) = bound(&app).await;
    let access = pair["accessToken"].as_str().unwrap();
    assert_eq!(claims_of(access)["cnf"]["jkt"], key.jkt());

    let res = me(
        &app,
        &format!("DPoP {access}"),
        &[key.proof("GET", ME, Some(access))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // As Bearer: refused, with the DPoP challenge (no downgrade).
    let res = me(&app, &format!("Bearer {access}"), &[]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let (_, body) = read(res).await;
    assert_eq!(body["error"], "invalid_token");

    // With the DPoP scheme and no proof.
    let res = me(&app, &format!("DPoP {access}"), &[]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    assert_eq!(read(res).await.1["error"], "invalid_dpop_proof");
}

#[tokio::test]
async fn every_wrong_proof_is_refused() {
    let app = app("optional");
    let (key, pair) = bound(&app).await;
    let access = pair["accessToken"].as_str().unwrap().to_owned();
    let other = DpopKey::new();
    let old = |_: &mut Value, c: &mut Value| c["iat"] = json!(c["iat"].as_u64().unwrap() - 600);
    let future = |_: &mut Value, c: &mut Value| c["iat"] = json!(c["iat"].as_u64().unwrap() + 600);
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "another URL (htu)",
            vec![key.proof("GET", "http://127.0.0.1:3000/api/admin", Some(&access))],
        ),
        (
            "another host (htu)",
            vec![key.proof("GET", "http://evil.example/api/me", Some(&access))],
        ),
        (
            "another method (htm)",
            vec![key.proof("POST", ME, Some(&access))],
        ),
        (
            "an old proof (iat)",
            vec![key.proof_with("GET", ME, Some(&access), old)],
        ),
        (
            "a proof from the future (iat)",
            vec![key.proof_with("GET", ME, Some(&access), future)],
        ),
        (
            "another token (ath)",
            vec![key.proof("GET", ME, Some("another.access.token"))],
        ),
        ("no ath", vec![key.proof("GET", ME, None)]),
        ("another key", vec![other.proof("GET", ME, Some(&access))]),
        (
            "a private jwk",
            vec![key.proof_with("GET", ME, Some(&access), |h, _| {
                h["jwk"]["d"] = json!("AAAA")
            })],
        ),
        (
            "alg none",
            vec![key.proof_with("GET", ME, Some(&access), |h, _| h["alg"] = json!("none"))],
        ),
        (
            "an HMAC alg",
            vec![key.proof_with("GET", ME, Some(&access), |h, _| h["alg"] = json!("HS256"))],
        ),
        (
            "another typ",
            vec![key.proof_with("GET", ME, Some(&access), |h, _| h["typ"] = json!("JWT"))],
        ),
        (
            "two proofs",
            vec![
                key.proof("GET", ME, Some(&access)),
                key.proof("GET", ME, Some(&access)),
            ],
        ),
    ];
    for (case, proofs) in cases {
        let res = me(&app, &format!("DPoP {access}"), &proofs).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{case}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("DPoP "), "{case}: {challenge}");
        let (_, body) = read(res).await;
        assert_eq!(body["error"], "invalid_dpop_proof", "{case}: {body}");
    }
    // None of those took the session away: a right proof still works.
    let res = me(
        &app,
        &format!("DPoP {access}"),
        &[key.proof("GET", ME, Some(&access))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_proof_is_accepted_once() {
    let app = app("optional");
    let (key, pair) = bound(&app).await;
    let access = pair["accessToken"].as_str().unwrap();
    let proof = key.proof("GET", ME, Some(access));
    let first = me(
        &app,
        &format!("DPoP {access}"),
        std::slice::from_ref(&proof),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let again = me(&app, &format!("DPoP {access}"), &[proof]).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    let (_, body) = read(again).await;
    assert_eq!(body["error"], "invalid_dpop_proof");
    assert!(body["message"].as_str().unwrap().contains("jti"), "{body}");
}

#[tokio::test]
async fn a_bound_refresh_needs_a_proof_by_the_same_key_and_a_stolen_token_alone_changes_nothing() {
    let app = app("optional");
    let (key, pair) = bound(&app).await;
    let token = pair["refreshToken"].as_str().unwrap();
    let thief = DpopKey::new();

    let (status, body) = refresh(&app, token, None).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_dpop_proof")),
        "{body}"
    );
    let (status, body) = refresh(&app, token, Some(thief.proof("POST", REFRESH, None))).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_dpop_proof")),
        "{body}"
    );
    // A proof for another route is no proof for this one.
    let (status, _) = refresh(&app, token, Some(key.proof("POST", LOGIN, None))).await;
    assert_eq!(status, 400);

    // Nothing rotated: the owner's refresh is a plain first use, never reuse.
    let (status, body) = refresh(&app, token, Some(key.proof("POST", REFRESH, None))).await;
    assert_eq!(status, 200, "{body}");
    let access = body["data"]["accessToken"].as_str().unwrap();
    assert_eq!(claims_of(access)["cnf"]["jkt"], key.jkt());
    let next = body["data"]["refreshToken"].as_str().unwrap();
    let (status, body) = refresh(&app, next, Some(key.proof("POST", REFRESH, None))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_bound_refresh_token_cut_of_its_key_is_forged() {
    let app = app("optional");
    let (_, pair) = bound(&app).await;
    let token = pair["refreshToken"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 6, "tjs1.sid.gen.exp.jkt.mac");
    let cut = [&parts[..4], &parts[5..]].concat().join(".");
    let (status, body) = refresh(&app, &cut, None).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_token")),
        "{body}"
    );
    let other = DpopKey::new();
    let swapped = [&parts[..4], &[other.jkt().as_str()], &parts[5..]]
        .concat()
        .join(".");
    let (status, _) = refresh(&app, &swapped, Some(other.proof("POST", REFRESH, None))).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn optional_gives_bearer_tokens_without_a_proof_and_refuses_them_as_dpop() {
    let app = app("optional");
    let (status, body) = login(&app, "bob", None).await;
    assert_eq!(status, 200, "{body}");
    let access = body["data"]["accessToken"].as_str().unwrap();
    assert!(claims_of(access).get("cnf").is_none());
    assert_eq!(
        me(&app, &format!("Bearer {access}"), &[]).await.status(),
        200
    );
    let key = DpopKey::new();
    let res = me(
        &app,
        &format!("DPoP {access}"),
        &[key.proof("GET", ME, Some(access))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(read(res).await.1["error"], "invalid_token");
    // A login whose proof fails is refused, never answered with Bearer tokens.
    let bad = key.proof("POST", ME, None);
    let (status, body) = read(send_login(&app.client, "bob", bad).await).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_dpop_proof")),
        "{body}"
    );
}

#[tokio::test]
async fn required_refuses_a_login_without_a_proof_and_off_binds_nothing() {
    let app = app("required");
    let (status, body) = login(&app, "alice", None).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_dpop_proof")),
        "{body}"
    );
    let (key, pair) = bound(&app).await;
    assert_eq!(
        claims_of(pair["accessToken"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt()
    );

    let off = app_off();
    let key = DpopKey::new();
    let (status, body) = login(&off, "alice", Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        claims_of(body["data"]["accessToken"].as_str().unwrap())
            .get("cnf")
            .is_none()
    );
}

fn app_off() -> App {
    App::start(&[("SESSION_PUBLIC_ORIGIN", ORIGIN)])
}

#[tokio::test]
async fn nonces_are_asked_for_and_then_accepted() {
    let app = App::start(&[
        ("SESSION_DPOP", "required"),
        ("SESSION_PUBLIC_ORIGIN", ORIGIN),
        (
            "SESSION_DPOP_NONCE_KEY",
            "a-nonce-key-of-at-least-32-bytes-long!!",
        ),
    ]);
    let key = DpopKey::new();
    let res = send_login(&app.client, "alice", key.proof("POST", LOGIN, None)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(read(res).await.1["error"], "use_dpop_nonce");
    let proof = key.proof_with("POST", LOGIN, None, |_, c| c["nonce"] = json!(nonce));
    let (status, body) = read(send_login(&app.client, "alice", proof).await).await;
    assert_eq!(status, 200, "{body}");
    let access = body["data"]["accessToken"].as_str().unwrap();
    // A resource request without the nonce: 401 use_dpop_nonce, with the nonce to use.
    let res = me(
        &app,
        &format!("DPoP {access}"),
        &[key.proof("GET", ME, Some(access))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("dpop-nonce"));
    let proof = key.proof_with("GET", ME, Some(access), |_, c| c["nonce"] = json!(nonce));
    assert_eq!(
        me(&app, &format!("DPoP {access}"), &[proof]).await.status(),
        200
    );
}

#[tokio::test]
async fn a_bound_session_re_authenticates_with_its_key_and_stays_bound() {
    let app = app("optional");
    let (key, pair) = bound(&app).await;
    let access = pair["accessToken"].as_str().unwrap();
    let url = "http://127.0.0.1:3000/api/auth/reauthenticate";
    let send = |authorization: String, proof: Option<String>| {
        let mut request = app
            .client
            .post(url)
            .header("authorization", authorization)
            .json(&credentials("alice"));
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };
    let (status, body) = read(send(format!("Bearer {access}"), None).await.unwrap()).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_token")),
        "{body}"
    );
    let proof = DpopKey::new().proof("POST", url, Some(access));
    let (status, body) = read(send(format!("DPoP {access}"), Some(proof)).await.unwrap()).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_dpop_proof")),
        "{body}"
    );
    let proof = key.proof("POST", url, Some(access));
    let (status, body) = read(send(format!("DPoP {access}"), Some(proof)).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let renewed = body["data"]["accessToken"].as_str().unwrap();
    assert_eq!(claims_of(renewed)["cnf"]["jkt"], key.jkt());
}

#[tokio::test]
async fn under_required_a_session_bound_before_keeps_working_and_an_unbound_one_cannot_refresh() {
    use tower_jwt_session::SessionManager;
    use tower_jwt_session::config::{DpopConfig, DpopMode};
    use tower_jwt_session::store::{MemoryStore, SessionStore};

    let store: std::sync::Arc<dyn SessionStore> = std::sync::Arc::new(MemoryStore::new());
    let manager = |mode| {
        let config = tower_jwt_session::SessionConfig::new(crate::common::SECRET)
            .unwrap()
            .with_dpop(
                DpopConfig::default()
                    .with_mode(mode)
                    .with_public_origin(ORIGIN),
            );
        SessionManager::builder(config)
            .shared_store(store.clone())
            .build()
            .unwrap()
    };
    let before = manager(DpopMode::Optional);
    let unbound = before
        .create_session(tower_jwt_session::manager::NewSession::new("bob").roles(&["user"]))
        .await
        .unwrap();
    let after = manager(DpopMode::Required);
    let refused = after.refresh(&unbound.refresh_token).await.unwrap_err();
    assert_eq!(refused.code().as_str(), "invalid_dpop_proof");
    assert!(refused.to_string().contains("log in again"), "{refused}");
}

/// Two instances on one store: a proof used at one is refused at the other, and of the same
/// proof sent to both at once exactly one request gets through.
async fn two_instances_share_the_replay_cache(
    a: tower_jwt_session::SessionManager,
    b: tower_jwt_session::SessionManager,
) {
    use crate::common::app::{Client, router};
    use tower_jwt_session::rate_limit::RateLimitConfig;
    let one = Client::new(router(&a, RateLimitConfig::default()));
    let two = Client::new(router(&b, RateLimitConfig::default()));
    let key = DpopKey::new();
    let (status, body) =
        read(send_login(&one, "alice", key.proof("POST", LOGIN, None)).await).await;
    assert_eq!(status, 200, "{body}");
    let access = body["data"]["accessToken"].as_str().unwrap().to_owned();
    let get = |client: &Client, proof: String| {
        client
            .get(ME)
            .header("authorization", format!("DPoP {access}"))
            .header("dpop", proof)
            .send()
    };
    let proof = key.proof("GET", ME, Some(&access));
    assert_eq!(get(&one, proof.clone()).await.unwrap().status(), 200);
    let replayed = get(&two, proof).await.unwrap();
    assert_eq!(replayed.status(), 401);
    assert_eq!(read(replayed).await.1["error"], "invalid_dpop_proof");
    assert_eq!(
        get(&two, key.proof("GET", ME, Some(&access)))
            .await
            .unwrap()
            .status(),
        200
    );
    for _ in 0..5 {
        let proof = key.proof("GET", ME, Some(&access));
        let sends: Vec<_> = (0..8)
            .map(|i| {
                let client = if i % 2 == 0 { &one } else { &two };
                tokio::spawn(get(client, proof.clone()))
            })
            .collect();
        let mut statuses = Vec::new();
        for send in sends {
            statuses.push(send.await.unwrap().unwrap().status());
        }
        let allowed = statuses.iter().filter(|s| s.as_u16() == 200).count();
        assert_eq!(allowed, 1, "{statuses:?}");
    }
    // The refresh at the other instance needs the same key there too.
    let token = body["data"]["refreshToken"].as_str().unwrap();
    let (status, _) = read(
        two.post(REFRESH)
            .json(&json!({ "refreshToken": token }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = read(
        two.post(REFRESH)
            .header("dpop", key.proof("POST", REFRESH, None))
            .json(&json!({ "refreshToken": token }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn dpop_config() -> tower_jwt_session::SessionConfig {
    use tower_jwt_session::config::{DpopConfig, DpopMode};
    tower_jwt_session::SessionConfig::new(crate::common::SECRET)
        .unwrap()
        .with_dpop(
            DpopConfig::default()
                .with_mode(DpopMode::Optional)
                .with_public_origin(ORIGIN),
        )
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_redis_share_the_replay_cache() {
    use tower_jwt_session::config::RedisSettings;
    use tower_jwt_session::store::RedisStore;
    let url = crate::common::redis_server::single().urls[0].clone();
    let settings = RedisSettings::new([url])
        .with_key_prefix(crate::common::redis_server::unique_prefix("dpop"));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::connect(&settings).await.unwrap();
        instances.push(
            tower_jwt_session::SessionManager::builder(dpop_config())
                .store(store)
                .build()
                .unwrap(),
        );
    }
    let b = instances.pop().unwrap();
    two_instances_share_the_replay_cache(instances.pop().unwrap(), b).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_share_the_replay_cache() {
    use crate::common::pg_server::TestDb;
    use tower_jwt_session::config::PostgresSettings;
    use tower_jwt_session::store::PostgresStore;
    let db = TestDb::create().await;
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = PostgresStore::connect(&PostgresSettings::new(&db.url))
            .await
            .unwrap();
        instances.push(
            tower_jwt_session::SessionManager::builder(dpop_config())
                .store(store)
                .build()
                .unwrap(),
        );
    }
    let b = instances.pop().unwrap();
    two_instances_share_the_replay_cache(instances.pop().unwrap(), b).await;
}

#[tokio::test]
async fn a_layer_that_cannot_check_proofs_refuses_a_bound_token() {
    use tower::{Layer as _, ServiceExt as _, service_fn};
    use tower_jwt_session::SessionLayer;
    let app = app("optional");
    let (key, pair) = bound(&app).await;
    let access = pair["accessToken"].as_str().unwrap();
    // A layer made from the codec alone knows no public origin and no replay cache.
    let layer = SessionLayer::new(app.manager.codec().clone());
    let service = layer.layer(service_fn(|_req: http::Request<String>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    }));
    for scheme in ["DPoP", "Bearer"] {
        let request = http::Request::builder()
            .uri(ME)
            .header("authorization", format!("{scheme} {access}"))
            .header("dpop", key.proof("GET", ME, Some(access)))
            .body(String::new())
            .unwrap();
        let res = service.clone().oneshot(request).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{scheme}");
        let error = res
            .extensions()
            .get::<tower_jwt_session::response::AuthError>()
            .copied();
        assert_eq!(
            error,
            Some(tower_jwt_session::response::AuthError::DpopBound),
            "{scheme}"
        );
    }
}

#[tokio::test]
async fn a_proof_with_the_previous_nonce_is_answered_with_the_current_one() {
    use crate::common::app::{Client, router};
    use tower_jwt_session::config::{Clock as _, DpopConfig, DpopMode, ManualClock};
    use tower_jwt_session::rate_limit::RateLimitConfig;

    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let clock = ManualClock::new(start);
    let config = tower_jwt_session::SessionConfig::new(crate::common::SECRET)
        .unwrap()
        .with_dpop(
            DpopConfig::default()
                .with_mode(DpopMode::Required)
                .with_public_origin(ORIGIN)
                .with_nonce_key("a-nonce-key-of-at-least-32-bytes-long!!")
                .unwrap(),
        );
    let manager = tower_jwt_session::SessionManager::builder(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    let client = Client::new(router(&manager, RateLimitConfig::default()));
    let key = DpopKey::new();
    let now = clock.now_ms() / 1000;
    let asked = send_login(
        &client,
        "alice",
        key.proof_with("POST", LOGIN, None, |_, c| c["iat"] = json!(now)),
    )
    .await;
    assert_eq!(asked.status(), StatusCode::BAD_REQUEST);
    let first = asked.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let with_nonce = |nonce: String, clock: &ManualClock| {
        let now = clock.now_ms() / 1000;
        move |_: &mut Value, c: &mut Value| {
            c["iat"] = json!(now);
            c["nonce"] = json!(nonce);
        }
    };
    let res = send_login(
        &client,
        "alice",
        key.proof_with("POST", LOGIN, None, with_nonce(first.clone(), &clock)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        !res.headers().contains_key("dpop-nonce"),
        "the nonce is current"
    );
    let (_, body) = read(res).await;
    let access = body["data"]["accessToken"].as_str().unwrap().to_owned();

    // The next period: the first nonce is still accepted, and the answer names the new one.
    clock.advance(std::time::Duration::from_secs(300));
    let res = client
        .get(ME)
        .header("authorization", format!("DPoP {access}"))
        .header(
            "dpop",
            key.proof_with("GET", ME, Some(&access), with_nonce(first.clone(), &clock)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let second = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_ne!(second, first);
    let res = client
        .get(ME)
        .header("authorization", format!("DPoP {access}"))
        .header(
            "dpop",
            key.proof_with("GET", ME, Some(&access), with_nonce(second, &clock)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key("dpop-nonce"));
}

//! The key-rotation runbook of docs/deployment.md §9, end to end: two instances share a store
//! and move from key A to key B through the three phases, one instance at a time, while a
//! verifier that knows nothing but `/.well-known/jwks.json` checks every token.
//!
//! 1. Publish the next key: `JWT_PRIVATE_KEY_FILE=A`, `JWT_NEXT_PUBLIC_KEYS_FILE=B.pub`.
//! 2. Switch signing: `JWT_PRIVATE_KEY_FILE=B`, `JWT_PREVIOUS_PUBLIC_KEYS_FILE=A.pub`.
//! 3. Retire A after the longest access-token lifetime: `JWT_PRIVATE_KEY_FILE=B` alone.

#![cfg(feature = "axum")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_session::clock::{Clock, ManualClock};
use tower_jwt_session::store::{MemoryStore, SessionStore};
use tower_jwt_session::{Session, SessionConfig, SessionLayer, SessionManager, TokenRoutes};

const SECRET: &str = "rotation-test-secret-rotation-test-secret";
const A: &str = include_str!("keys/ed_private.pem");
const A_PUBLIC: &str = include_str!("keys/ed_public.pem");
const B: &str = include_str!("keys/ed2_private.pem");
const B_PUBLIC: &str = include_str!("keys/ed2_public.pem");
const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// One instance of the app: the protected route, the token routes and the JWKS at the root.
struct Instance {
    manager: SessionManager,
    router: Router,
}

impl Instance {
    /// An instance configured from `vars` (and the shared secret and lifetime), on the shared
    /// store and clock.
    fn start(vars: &[(&str, &str)], store: &Arc<dyn SessionStore>, clock: &ManualClock) -> Self {
        let mut env: HashMap<&str, &str> = vars.iter().copied().collect();
        env.insert("JWT_SECRET", SECRET);
        env.insert("JWT_ACCESS_TOKEN_EXPIRY", "15m");
        env.insert("JWT_LEEWAY", "0s");
        let config = SessionConfig::from_lookup(|k| env.get(k).map(|v| v.to_string()))
            .expect("a valid configuration");
        let manager = SessionManager::builder(config)
            .shared_store(store.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        let routes = TokenRoutes::new(&manager);
        let router = Router::new()
            .route(
                "/api/me",
                get(|s: Session| async move { s.user_id().to_owned() }),
            )
            .route_layer(SessionLayer::from_manager(&manager))
            .route_service(tower_jwt_session::routes::JWKS_PATH, routes.clone())
            .nest_service("/api/token", routes);
        Self { manager, router }
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, Vec<u8>) {
        let mut req = Request::get(path);
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let res = self
            .router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        (
            status,
            res.into_body().collect().await.unwrap().to_bytes().to_vec(),
        )
    }

    /// Whether the instance itself accepts `token` on its protected route.
    async fn accepts(&self, token: &str) -> bool {
        let (status, _) = self.get("/api/me", Some(token)).await;
        status == StatusCode::OK
    }

    /// The JWKS the instance publishes.
    async fn jwks(&self) -> JwkSet {
        let (status, body) = self.get("/.well-known/jwks.json", None).await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice(&body).unwrap()
    }

    /// The kids of the JWKS, in order.
    async fn published(&self) -> Vec<String> {
        self.jwks()
            .await
            .keys
            .into_iter()
            .map(|k| k.common.key_id.unwrap())
            .collect()
    }

    async fn login(&self, user: &str) -> (String, String) {
        let pair = self
            .manager
            .create_session(user, &["user".to_owned()])
            .await
            .unwrap();
        (pair.access_token, pair.refresh_token)
    }

    async fn refresh(&self, refresh_token: &str) -> (String, String) {
        let req = Request::post("/api/token/refresh")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({ "refreshToken": refresh_token }).to_string(),
            ))
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        (
            body["data"]["accessToken"].as_str().unwrap().to_owned(),
            body["data"]["refreshToken"].as_str().unwrap().to_owned(),
        )
    }
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// A verifier that knows nothing but `jwks` (as jwt-authorizer, jose or PyJWT would): finds
/// the key by `kid`, checks the signature and `exp` against `now_secs`.
fn third_party_accepts(jwks: &JwkSet, token: &str, now_secs: u64) -> bool {
    let Some(jwk) = jwks.find(&kid(token)) else {
        return false;
    };
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.validate_aud = false;
    validation.validate_exp = false;
    let Ok(data) = jsonwebtoken::decode::<Value>(token, &key, &validation) else {
        return false;
    };
    data.claims["exp"]
        .as_u64()
        .is_some_and(|exp| exp > now_secs)
}

#[tokio::test]
async fn a_key_rotation_in_three_phases_logs_nobody_out() {
    let dir = std::env::temp_dir().join(format!("tjs-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (a, a_pub, b, b_pub) = (
        file("a.pem", A),
        file("a.pub", A_PUBLIC),
        file("b.pem", B),
        file("b.pub", B_PUBLIC),
    );
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_800_000_000_000);
    let now = || clock.now_ms() / 1000;

    // Before: both instances sign with A.
    let before = [
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", a.as_str()),
    ];
    let x = Instance::start(&before, &store, &clock);
    let y = Instance::start(&before, &store, &clock);
    let (token_a, refresh_a) = x.login("alice").await;
    let kid_a = kid(&token_a);
    assert_eq!(x.published().await, vec![kid_a.clone()]);

    // Phase 1, publish the next key: instance x first, then y. A still signs.
    let phase1 = [
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", a.as_str()),
        ("JWT_NEXT_PUBLIC_KEYS_FILE", b_pub.as_str()),
    ];
    let x = Instance::start(&phase1, &store, &clock);
    let published = x.published().await;
    assert_eq!(published[0], kid_a, "the signing key first");
    assert_eq!(published.len(), 2);
    let kid_b = published[1].clone();
    assert_eq!(kid(&x.login("bob").await.0), kid_a, "A still signs");
    assert!(x.accepts(&token_a).await && y.accepts(&token_a).await);
    let y = Instance::start(&phase1, &store, &clock);

    // Phase 2, switch signing, one instance at a time. Whichever instance a client reaches, and
    // whichever JWKS a verifier cached since phase 1, every token verifies.
    let phase2 = [
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", b.as_str()),
        ("JWT_PREVIOUS_PUBLIC_KEYS_FILE", a_pub.as_str()),
    ];
    let cached_in_phase1 = y.jwks().await;
    let x = Instance::start(&phase2, &store, &clock);
    let (token_b, _) = x.login("carol").await;
    assert_eq!(kid(&token_b), kid_b, "new tokens carry the new kid");
    assert!(
        y.accepts(&token_b).await,
        "an instance still in phase 1 accepts B's tokens"
    );
    assert!(
        x.accepts(&token_a).await,
        "A's tokens are accepted while A is published"
    );
    assert!(third_party_accepts(&cached_in_phase1, &token_b, now()));
    let y = Instance::start(&phase2, &store, &clock);
    assert_eq!(y.published().await, [kid_b.clone(), kid_a.clone()]);
    let jwks = y.jwks().await;
    for token in [&token_a, &token_b] {
        assert!(y.accepts(token).await && x.accepts(token).await);
        assert!(third_party_accepts(&jwks, token, now()));
    }
    // A tampered token is refused everywhere.
    let mut tampered = token_b.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(!y.accepts(&tampered).await && !third_party_accepts(&jwks, &tampered, now()));

    // Phase 3, after the longest access-token lifetime: every token A signed has expired.
    clock.advance(ACCESS_TTL + Duration::from_secs(1));
    assert!(!third_party_accepts(&jwks, &token_a, now()), "expired");
    let phase3 = [
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", b.as_str()),
    ];
    let x = Instance::start(&phase3, &store, &clock);
    assert_eq!(x.published().await, vec![kid_b.clone()]);
    assert!(!x.accepts(&token_a).await);
    // The session A's token belonged to goes on: its refresh token (keyed by JWT_SECRET, not
    // by the signing key) gets a token from B.
    let (renewed, _) = x.refresh(&refresh_a).await;
    assert_eq!(kid(&renewed), kid_b);
    assert!(x.accepts(&renewed).await);
    assert!(third_party_accepts(&x.jwks().await, &renewed, now()));

    std::fs::remove_dir_all(&dir).unwrap();
}

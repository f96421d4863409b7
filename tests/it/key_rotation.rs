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
use tower_jwt_session::config::{Clock, ManualClock};
use tower_jwt_session::store::{MemoryStore, SessionStore};
use tower_jwt_session::{
    Session, SessionConfig, SessionLayer, SessionManager, routes::TokenRoutes,
};

const SECRET: &str = "rotation-test-secret-rotation-test-secret";
const A: &str = include_str!("../keys/ed_private.pem");
const A_PUBLIC: &str = include_str!("../keys/ed_public.pem");
const B: &str = include_str!("../keys/ed2_private.pem");
const B_PUBLIC: &str = include_str!("../keys/ed2_public.pem");
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
            .create_session(
                tower_jwt_session::manager::NewSession::new(user).roles(&["user".to_owned()]),
            )
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
/// the key by `kid`, checks the signature with the algorithm the JWKS gives that key (never the
/// one the token names) and `exp` against `now_secs`.
fn third_party_accepts(jwks: &JwkSet, token: &str, now_secs: u64) -> bool {
    let Some(jwk) = jwks.find(&kid(token)) else {
        return false;
    };
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let alg = jwk
        .common
        .key_algorithm
        .expect("every published key has its `alg`");
    let mut validation = Validation::new(alg.to_string().parse().unwrap());
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

/// How one side of a rotation signs: with `JWT_SECRET` (HS256), or with a private key under an
/// algorithm, whose public key the other side lists as next or previous.
#[derive(Clone, Copy)]
enum Signer {
    Hs256,
    Pem {
        alg: &'static str,
        private: &'static str,
        public: &'static str,
    },
}

impl Signer {
    fn alg(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Pem { alg, .. } => alg,
        }
    }

    /// The variables with which this side signs.
    fn signing(self, dir: &Dir) -> Vec<(&'static str, String)> {
        match self {
            Self::Hs256 => vec![],
            Self::Pem { alg, private, .. } => vec![
                ("JWT_ALGORITHM", alg.to_owned()),
                ("JWT_PRIVATE_KEY_FILE", dir.file(private, "")),
            ],
        }
    }

    /// The variables with which this side is accepted without signing: its public key in
    /// `variable` (an RSA key states its algorithm, which its PEM cannot), or, for the secret,
    /// `JWT_ACCEPT_HS256`.
    fn accepted(self, dir: &Dir, variable: &'static str) -> Vec<(&'static str, String)> {
        match self {
            Self::Hs256 => vec![("JWT_ACCEPT_HS256", "true".to_owned())],
            Self::Pem { alg, public, .. } => {
                let prefix = if alg.starts_with("RS") || alg.starts_with("PS") {
                    format!("alg: {alg}\n")
                } else {
                    String::new()
                };
                vec![(variable, dir.file(public, &prefix))]
            }
        }
    }
}

/// A directory of key files, removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tjs-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// The path of a file holding `prefix` and then the key file `name` of `tests/keys`.
    fn file(&self, name: &str, prefix: &str) -> String {
        let text =
            std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        let path = self.0.join(format!("{}-{name}", prefix.len()));
        std::fs::write(&path, format!("{prefix}{text}")).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vars(groups: &[&[(&'static str, String)]]) -> Vec<(&'static str, String)> {
    groups.iter().flat_map(|g| g.iter().cloned()).collect()
}

fn start(
    vars: &[(&'static str, String)],
    store: &Arc<dyn SessionStore>,
    clock: &ManualClock,
) -> Instance {
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Instance::start(&borrowed, store, clock)
}

fn alg_of(token: &str) -> String {
    format!("{:?}", jsonwebtoken::decode_header(token).unwrap().alg)
}

/// The published keys must each say the algorithm their tokens carry.
async fn assert_published_algs(instance: &Instance, expected: &[(&str, &str)], label: &str) {
    let jwks = instance.jwks().await;
    for (kid, alg) in expected {
        let jwk = jwks
            .find(kid)
            .unwrap_or_else(|| panic!("{label}: {kid} not published"));
        assert_eq!(
            jwk.common.key_algorithm.map(|a| a.to_string()).as_deref(),
            Some(*alg),
            "{label}: the JWKS says another algorithm for {kid}"
        );
    }
}

/// The runbook's phases from `from` to `to` (two keys, two instances on one store): no phase
/// refuses a token that the other instance issued, and a verifier holding any JWKS published
/// since phase 1 accepts every asymmetric token.
async fn rotate(from: Signer, to: Signer, dir: &Dir) {
    let label = format!("{} -> {}", from.alg(), to.alg());
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_800_000_000_000);
    let now = clock.now_ms() / 1000;
    let before = from.signing(dir);
    let phase1 = vars(&[&before, &to.accepted(dir, "JWT_NEXT_PUBLIC_KEYS_FILE")]);
    let phase2 = vars(&[
        &to.signing(dir),
        &from.accepted(dir, "JWT_PREVIOUS_PUBLIC_KEYS_FILE"),
    ]);

    let x = start(&before, &store, &clock);
    let (token_a, refresh_a) = x.login("alice").await;
    assert_eq!(alg_of(&token_a), from.alg(), "{label}");

    // Phase 1 on both instances: the old key still signs; the next one is published.
    let x = start(&phase1, &store, &clock);
    let y = start(&phase1, &store, &clock);
    let (token_a2, _) = x.login("bob").await;
    assert_eq!(
        alg_of(&token_a2),
        from.alg(),
        "{label}: the old key still signs"
    );
    for token in [&token_a, &token_a2] {
        assert!(
            x.accepts(token).await,
            "{label}: phase 1 refuses an old token"
        );
    }
    let jwks_phase1 = matches!(from, Signer::Pem { .. }) || matches!(to, Signer::Pem { .. });
    let cached_in_phase1 = if jwks_phase1 {
        Some(y.jwks().await)
    } else {
        None
    };

    // Phase 2 on x: the new key signs; y, still in phase 1, accepts its tokens.
    let x = start(&phase2, &store, &clock);
    let (token_b, _) = x.login("carol").await;
    assert_eq!(alg_of(&token_b), to.alg(), "{label}");
    assert!(
        y.accepts(&token_b).await,
        "{label}: an instance in phase 1 refuses the next key's token"
    );
    for token in [&token_a, &token_a2, &token_b] {
        assert!(x.accepts(token).await, "{label}: phase 2 refuses a token");
    }
    if let (Some(cached), Signer::Pem { .. }) = (&cached_in_phase1, to) {
        assert!(
            third_party_accepts(cached, &token_b, now),
            "{label}: a verifier with the phase-1 JWKS refuses the new key's token"
        );
    }

    // Phase 2 everywhere.
    let y = start(&phase2, &store, &clock);
    for token in [&token_a, &token_b] {
        assert!(y.accepts(token).await, "{label}: phase 2 refuses a token");
    }
    let mut published = Vec::new();
    for (signer, token) in [(from, &token_a), (to, &token_b)] {
        if let Signer::Pem { alg, .. } = signer {
            published.push((kid(token), alg));
        }
    }
    if !published.is_empty() {
        let expected: Vec<(&str, &str)> = published.iter().map(|(k, a)| (k.as_str(), *a)).collect();
        assert_published_algs(&y, &expected, &label).await;
        let jwks = y.jwks().await;
        for (signer, token) in [(from, &token_a), (to, &token_b)] {
            if matches!(signer, Signer::Pem { .. }) {
                assert!(
                    third_party_accepts(&jwks, token, now),
                    "{label}: a verifier with the phase-2 JWKS refuses {}",
                    alg_of(token)
                );
            }
        }
    }
    // The old session goes on with a token from the new key.
    let (renewed, _) = y.refresh(&refresh_a).await;
    assert_eq!(alg_of(&renewed), to.alg(), "{label}");
    assert!(x.accepts(&renewed).await, "{label}");
}

/// A family of algorithms: its members (one for all but RSA, whose key may sign any of three),
/// and two keys, the one rotated from and the one rotated to.
struct Family {
    algs: &'static [&'static str],
    keys: [(&'static str, &'static str); 2],
}

impl Family {
    /// Member `n` (cycling) of the family, signing with key `k`.
    fn signer(&self, n: usize, k: usize) -> Signer {
        let alg = self.algs[n % self.algs.len()];
        if alg == "HS256" {
            return Signer::Hs256;
        }
        let (private, public) = self.keys[k];
        Signer::Pem {
            alg,
            private,
            public,
        }
    }
}

const RSA_KEYS: [(&str, &str); 2] = [
    ("rsa_private.pem", "rsa_public.pem"),
    ("rsa2_private.pem", "rsa2_public.pem"),
];

const FAMILIES: [Family; 6] = [
    Family {
        algs: &["HS256"],
        keys: [("", ""), ("", "")],
    },
    Family {
        algs: &["EdDSA"],
        keys: [
            ("ed_private.pem", "ed_public.pem"),
            ("ed2_private.pem", "ed2_public.pem"),
        ],
    },
    Family {
        algs: &["ES256"],
        keys: [
            ("ec_private.pem", "ec_public.pem"),
            ("ec2_private.pem", "ec2_public.pem"),
        ],
    },
    Family {
        algs: &["ES384"],
        keys: [
            ("ec384_private.pem", "ec384_public.pem"),
            ("ec384_2_private.pem", "ec384_2_public.pem"),
        ],
    },
    Family {
        algs: &["RS256", "RS384", "RS512"],
        keys: RSA_KEYS,
    },
    Family {
        algs: &["PS256", "PS384", "PS512"],
        keys: RSA_KEYS,
    },
];

/// Every rotation between two families of algorithms (HS256, EdDSA, ES256, ES384, RS*, PS*), in
/// both directions and to a new key of the same family, through the three phases of the
/// runbook: no valid token is refused, and each published key carries its own `alg`. The RSA
/// member cycles with the other side, so that each of RS256 ... PS512 is rotated from and to;
/// the three rotations the attack pass found refused (PS256 -> ES256, RS384 -> ES256,
/// RS256 -> PS256) run first.
#[tokio::test]
async fn a_rotation_between_any_two_algorithm_families_refuses_no_valid_token() {
    let dir = Dir::new("rotation-pairs");
    let [_, _, es256, _, rs, ps] = &FAMILIES;
    for (from, to) in [
        (ps.signer(0, 0), es256.signer(0, 1)),
        (rs.signer(1, 0), es256.signer(0, 1)),
        (rs.signer(0, 0), ps.signer(0, 1)),
    ] {
        rotate(from, to, &dir).await;
    }
    for (i, from) in FAMILIES.iter().enumerate() {
        for (j, to) in FAMILIES.iter().enumerate() {
            // The same secret on both sides is no rotation (JWT_PREVIOUS_SECRETS is).
            if i == 0 && j == 0 {
                continue;
            }
            rotate(from.signer(j, 0), to.signer(i, 1), &dir).await;
        }
    }
}

/// The claims of `token`, re-signed by `key` under `alg` with `kid`: what whoever holds a
/// published key's private half can make.
fn resign(token: &str, alg: jsonwebtoken::Algorithm, kid: &str, key: &[u8]) -> String {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(token)
        .unwrap()
        .claims;
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".to_owned());
    let key = match alg {
        jsonwebtoken::Algorithm::HS256 => jsonwebtoken::EncodingKey::from_secret(key).unwrap(),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(key).unwrap(),
    };
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// A published key verifies the algorithm it is published for and no other (no algorithm
/// confusion), though both are on the allow-list: an RSA key stated as PS256 refuses an RS256
/// signature made by its own private key, and the reverse.
#[tokio::test]
async fn a_published_key_verifies_its_own_algorithm_only() {
    let dir = Dir::new("own-alg");
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_800_000_000_000);
    let rsa = include_bytes!("../keys/rsa_private.pem");
    for (stated, other) in [
        (
            jsonwebtoken::Algorithm::PS256,
            jsonwebtoken::Algorithm::RS256,
        ),
        (
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::Algorithm::PS256,
        ),
    ] {
        let stated_name = format!("{stated:?}");
        let other_name = format!("{other:?}");
        // Both algorithms are published (rsa2 for the other one), so both are allowed.
        let previous = format!(
            "alg: {stated_name}\n{}alg: {other_name}\n{}",
            include_str!("../keys/rsa_public.pem"),
            include_str!("../keys/rsa2_public.pem"),
        );
        let x = start(
            &[
                ("JWT_ALGORITHM", "ES256".to_owned()),
                ("JWT_PRIVATE_KEY_FILE", dir.file("ec_private.pem", "")),
                ("JWT_PREVIOUS_PUBLIC_KEYS", previous),
            ],
            &store,
            &clock,
        );
        let (token, _) = x.login("alice").await;
        let rsa_kid = x
            .jwks()
            .await
            .keys
            .iter()
            .find(|k| k.common.key_algorithm.map(|a| a.to_string()) == Some(stated_name.clone()))
            .and_then(|k| k.common.key_id.clone())
            .unwrap();
        assert!(x.accepts(&resign(&token, stated, &rsa_kid, rsa)).await);
        assert!(
            !x.accepts(&resign(&token, other, &rsa_kid, rsa)).await,
            "a key published for {stated_name} accepts {other_name}"
        );
        // Nor HS256 keyed with the public key, nor with the secret under the key's kid.
        let public = include_bytes!("../keys/rsa_public.pem");
        let hs = jsonwebtoken::Algorithm::HS256;
        assert!(!x.accepts(&resign(&token, hs, &rsa_kid, public)).await);
        assert!(
            !x.accepts(&resign(&token, hs, &rsa_kid, SECRET.as_bytes()))
                .await
        );
    }
}

/// `JWT_ACCEPT_HS256` is what accepts the secret's tokens while a private key signs: without it
/// they are refused.
#[tokio::test]
async fn hs256_tokens_are_refused_beside_a_private_key_unless_accepted() {
    let dir = Dir::new("accept-hs256");
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_800_000_000_000);
    let (hs_token, _) = start(&[], &store, &clock).login("alice").await;
    let ed = vec![
        ("JWT_ALGORITHM", "EdDSA".to_owned()),
        ("JWT_PRIVATE_KEY_FILE", dir.file("ed_private.pem", "")),
    ];
    assert!(!start(&ed, &store, &clock).accepts(&hs_token).await);
    for off in ["false", "0", "off"] {
        let vars = vars(&[&ed, &[("JWT_ACCEPT_HS256", off.to_owned())]]);
        assert!(!start(&vars, &store, &clock).accepts(&hs_token).await);
    }
    let vars = vars(&[&ed, &[("JWT_ACCEPT_HS256", "true".to_owned())]]);
    assert!(start(&vars, &store, &clock).accepts(&hs_token).await);
    let err = SessionConfig::from_lookup(|k| match k {
        "JWT_SECRET" => Some(SECRET.to_owned()),
        "JWT_ACCEPT_HS256" => Some("sometimes".to_owned()),
        _ => None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("JWT_ACCEPT_HS256"), "{err}");
}

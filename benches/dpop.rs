//! What checking one DPoP proof costs (issue 29): `DpopVerifier::verify` end to end (parse,
//! every RFC 9449 §4.3 check, one signature, the thumbprint, `ath`, the memory replay cache),
//! for ES256 (what browsers make) and EdDSA, with and without a server nonce; and the replay
//! cache's own share. Each iteration checks a proof never seen before (made outside the timed
//! part), as every request brings a fresh one.
//!
//! ```text
//! cargo bench --bench dpop
//! cargo bench --bench dpop -- --warm-up-time 1 --measurement-time 3   # a short run
//! ```
//!
//! The signature backends themselves are compared in `bench/dpop-backends`.

use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Method, Uri};
use ring::rand::SystemRandom;
use ring::signature::{self as rsig, KeyPair as _};
use serde_json::{Value, json};
use tower_jwt_session::config::ManualClock;
use tower_jwt_session::token::dpop::{
    DpopReplayCache, DpopSettings, DpopVerifier, MemoryReplayCache, ProofRequest, PublicOrigin,
    access_token_hash,
};

const NOW_SECS: u64 = 1_700_000_000;
/// An access token of the usual size (HS256, a few roles and claims).
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6IjNmOWMifQ.eyJzdWIiOiJhbGljZSIsInNpZCI6IjdkYzFlZjQ2LTk1ZGYtNGVkYi1hNjNlLTJjNjY0ZGE1YjU2NSIsImp0aSI6IjQ5YmQ3OWJkLTg5YjUtNDZlNi05NTU2LTQzMGQ3NDRlNWY0ZiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDA3MjAwLCJyb2xlcyI6WyJ1c2VyIl0sImNuZiI6eyJqa3QiOiIwWmNPQ09SWk5ZeS1EV3BxcTMwalp5SkdIVE4wZDJIZ2xCVjN1aWd1QTRJIn19.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmE";

enum Key {
    Es256(rsig::EcdsaKeyPair),
    Ed25519(ed25519_dalek::SigningKey),
}

impl Key {
    fn es256() -> Self {
        let rng = SystemRandom::new();
        let alg = &rsig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = rsig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key::Es256(rsig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    fn ed25519() -> Self {
        Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]))
    }

    fn header(&self) -> Value {
        match self {
            Key::Es256(pair) => {
                let p = pair.public_key().as_ref();
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..])}})
            }
            Key::Ed25519(k) => {
                json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(k.verifying_key().to_bytes())}})
            }
        }
    }

    /// A fresh proof for `GET https://api.example.com/api/me` with `ath`, and a nonce if given.
    fn proof(&self, n: u64, nonce: Option<&str>) -> HeaderValue {
        let mut claims = json!({"jti": format!("bench-{n}"), "htm": "GET",
            "htu": "https://api.example.com/api/me", "iat": NOW_SECS, "ath": access_token_hash(TOKEN)});
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        self.sign(&claims)
    }

    /// A proof of these claims.
    fn sign(&self, claims: &Value) -> HeaderValue {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.header()).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let sig = match self {
            Key::Es256(pair) => pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Key::Ed25519(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(input.as_bytes()).to_bytes().to_vec()
            }
        };
        HeaderValue::try_from(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))).unwrap()
    }
}

/// Polls a future that is expected to be ready at once (the memory cache never waits).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("verification with the memory cache should not wait"),
    }
}

fn verify(c: &mut Criterion) {
    let origin = PublicOrigin::parse("https://api.example.com").unwrap();
    let uri: Uri = "/api/me".parse().unwrap();
    let request = ProofRequest::new(&Method::GET, &origin, &uri).with_access_token(TOKEN);
    let mut group = c.benchmark_group("dpop");
    for (name, key) in [("ES256", Key::es256()), ("EdDSA", Key::ed25519())] {
        for nonces in [false, true] {
            let mut settings = DpopSettings::new();
            if nonces {
                settings = settings
                    .require_nonce(
                        b"bench-nonce-key-bench-nonce-key!!",
                        Duration::from_secs(300),
                    )
                    .unwrap();
            }
            let verifier = DpopVerifier::new(settings)
                .with_clock(ManualClock::new(NOW_SECS * 1000))
                .with_replay_cache(Arc::new(MemoryReplayCache::new(16 << 20)));
            let nonce = verifier
                .current_nonce()
                .map(|n| n.to_str().unwrap().to_owned());
            let mut n = 0u64;
            let label = if nonces {
                format!("verify_{name}_nonce")
            } else {
                format!("verify_{name}")
            };
            group.bench_function(label, |b| {
                b.iter_batched(
                    || {
                        n += 1;
                        key.proof(n, nonce.as_deref())
                    },
                    |proof| {
                        let checked = ready(verifier.verify([black_box(&proof)], &request));
                        assert!(checked.is_ok(), "{checked:?}");
                        checked
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

fn replay_cache(c: &mut Criterion) {
    let cache = MemoryReplayCache::new(16 << 20);
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let mut n = 0u64;
    c.bench_function("dpop/replay_cache_first_use", |b| {
        b.iter_batched(
            || {
                n += 1;
                format!("jti-{n:032}")
            },
            |jti| {
                let now = NOW_SECS * 1000;
                let first = cache.try_first_use(jkt, &jti, now + 120_000, now).unwrap();
                assert!(matches!(first, Ok(true)));
            },
            BatchSize::SmallInput,
        )
    });
}

/// A request through `SessionLayer` as an app serves it: a Bearer token against a bound token
/// with a fresh proof, each found in the cache of verified tokens and the revocation cache, side
/// by side in one group (the proof is made outside the timed part).
fn layer(c: &mut Criterion) {
    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Empty;
    use std::convert::Infallible;
    use tower::{Layer as _, Service as _, service_fn};
    use tower_jwt_session::config::{DpopConfig, DpopMode};
    use tower_jwt_session::manager::NewSession;
    use tower_jwt_session::token::dpop::DPOP;
    use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager};

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let config = SessionConfig::new("bench-secret-bench-secret-bench-secret!!")
        .unwrap()
        .with_revocation_cache(
            tower_jwt_session::config::RevocationCacheSettings::default()
                .with_ttl(Duration::from_secs(3600)),
        )
        .with_dpop(
            DpopConfig::default()
                .with_mode(DpopMode::Optional)
                .with_public_origin("https://api.example.com"),
        );
    let manager = SessionManager::new(config).unwrap();
    let verifier = manager.dpop_verifier().unwrap().clone();
    let origin = PublicOrigin::parse("https://api.example.com").unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let inner = service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let mut service = SessionLayer::from_manager(&manager).layer(inner);
    let mut group = c.benchmark_group("dpop_layer");

    let bearer = rt
        .block_on(manager.create_session(NewSession::new("alice").roles(&["user".to_owned()])))
        .unwrap();
    let authorization = format!("Bearer {}", bearer.access_token);
    let request = || {
        Request::builder()
            .uri("/api/me")
            .header("authorization", &authorization)
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    assert_eq!(ready(service.call(request())).unwrap().status(), 200);
    group.bench_function("bearer", |b| {
        b.iter_batched(
            request,
            |req| ready(service.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // Clients of their own, each bound to its key, taking turns: one key may hold only its
    // share of the replay cache (1/64), and a run sends more proofs than one share.
    const CLIENTS: usize = 64;
    for name in ["ES256", "EdDSA"] {
        let login_uri: Uri = "/api/auth/login".parse().unwrap();
        let clients: Vec<(Key, String)> = (0..CLIENTS)
            .map(|i| {
                let key = match name {
                    "ES256" => Key::es256(),
                    _ => Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[i as u8; 32])),
                };
                let login_proof = key.sign(&json!({"jti": format!("login-{name}-{i}"),
                    "htm": "POST", "htu": "https://api.example.com/api/auth/login", "iat": now()}));
                let proof = ready(verifier.verify(
                    [&login_proof],
                    &ProofRequest::new(&Method::POST, &origin, &login_uri),
                ))
                .unwrap();
                let user = format!("user-{name}-{i}");
                let pair = rt
                    .block_on(manager.create_session(NewSession::new(user).dpop_bound(&proof)))
                    .unwrap();
                (key, pair.access_token)
            })
            .collect();
        let mut n = 0usize;
        let mut request = || {
            n += 1;
            let (key, token) = &clients[n % CLIENTS];
            let proof = key.sign(&json!({"jti": format!("{name}-{n}"), "htm": "GET",
                "htu": "https://api.example.com/api/me", "iat": now(),
                "ath": access_token_hash(token)}));
            Request::builder()
                .uri("/api/me")
                .header("authorization", format!("DPoP {token}"))
                .header(DPOP, proof)
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        assert_eq!(ready(service.call(request())).unwrap().status(), 200);
        group.bench_function(format!("dpop_{name}"), |b| {
            b.iter_batched(
                &mut request,
                |req| {
                    let res = ready(service.call(req)).unwrap();
                    assert_eq!(res.status(), 200);
                    res
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, verify, replay_cache, layer);
criterion_main!(benches);

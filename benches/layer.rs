//! The hot path: a valid HS256 token, revocation-cache hit, through `SessionLayer`, beside a bare
//! `jsonwebtoken::decode` of the same token in the same run. The layer answers a token it has
//! seen from its cache of verified tokens (`*_cache_hit`); `*_cache_off` is every request paying
//! full verification, as a token's first request does.
//!
//! ```text
//! cargo bench --bench layer
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use tower::{Layer, Service, service_fn};
use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager, layer::RevocationCheck};

const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

/// What a hand-written jsonwebtoken check would decode: the same claims.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    sid: String,
    jti: String,
    iat: u64,
    exp: u64,
    roles: Vec<String>,
}

/// Polls a future that is expected to be ready at once (no runtime on the hot path).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the hot path should not wait"),
    }
}

// One criterion group: the same token and setup measured bare, through the layer, and with a
// cold cache, side by side; split up, the comparison would hide across functions.
fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // A long cache lifetime, so every check below is a hit (the default, 1 s, would expire
    // during the run and turn the hot path into the miss path).
    let config = SessionConfig::new(SECRET).unwrap().with_revocation_cache(
        tower_jwt_session::config::RevocationCacheSettings::default()
            .with_ttl(std::time::Duration::from_secs(3600)),
    );
    let manager = SessionManager::new(config).unwrap();
    let pair = rt
        .block_on(
            manager.create_session(
                tower_jwt_session::manager::NewSession::new("alice")
                    .roles(&["user".to_owned(), "admin".to_owned()]),
            ),
        )
        .unwrap();
    let token = pair.access_token.clone();
    let bearer = format!("Bearer {token}");

    let key = DecodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let validation = Validation::new(Algorithm::HS256);
    assert!(decode::<Claims>(&token, &key, &validation).is_ok());

    let mut group = c.benchmark_group("hot_path");
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| decode::<Claims>(black_box(&token), &key, &validation).unwrap())
    });

    // The floor: HMAC-SHA256 of the signed part, base64 of payload, one serde pass.
    {
        use base64::Engine as _;
        use hmac::{Hmac, KeyInit, Mac};
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let payload = signed.split_once('.').unwrap().1;
        let keyed = <Hmac<sha2::Sha256>>::new_from_slice(SECRET.as_bytes()).unwrap();
        group.bench_function("floor_hmac", |b| {
            b.iter(|| {
                let mut mac = keyed.clone();
                mac.update(black_box(signed.as_bytes()));
                mac.finalize()
            })
        });
        group.bench_function("floor_base64_payload_and_sig", |b| {
            let mut buf = [0u8; 1024];
            b.iter(|| {
                b64.decode_slice(black_box(payload), &mut buf).unwrap()
                    + b64.decode_slice(black_box(sig), &mut buf).unwrap()
            })
        });
        let json = b64.decode(payload).unwrap();
        group.bench_function("floor_serde_claims", |b| {
            b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&json)).unwrap())
        });
    }

    let codec = manager.codec().clone();
    group.bench_function("codec_verify", |b| {
        b.iter(|| codec.verify(black_box(&token)).unwrap())
    });

    let cache = manager.revocation_cache().clone();
    let session = codec.verify(&token).unwrap();
    group.bench_function("revocation_cache_hit", |b| {
        b.iter(|| match cache.check(black_box(&session)) {
            tower_jwt_session::layer::Checked::Ready(status) => status,
            tower_jwt_session::layer::Checked::Pending(_) => panic!("miss"),
        })
    });

    let inner = service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let mut layered = SessionLayer::from_manager(&manager).layer(inner);
    let mut bare = SessionLayer::new(codec.clone()).layer(inner);
    let request = || {
        Request::builder()
            .uri("/api/me")
            .header("authorization", &bearer)
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    // Warm the cache, and check the path really is the allowed one.
    assert_eq!(ready(layered.call(request())).unwrap().status(), 200);

    group.bench_function("request_construction_only", |b| {
        b.iter_batched(request, black_box, BatchSize::SmallInput)
    });
    group.bench_function("layer_with_revocation_cache_hit", |b| {
        b.iter_batched(
            request,
            |req| ready(layered.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("layer_without_revocation", |b| {
        b.iter_batched(
            request,
            |req| ready(bare.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // The cache of verified tokens: a hit against a codec that verifies every time, the same
    // token and the same public entry point.
    let cached = SessionLayer::new(codec.clone());
    let uncached_config = SessionConfig::from_tokens(
        tower_jwt_session::config::TokenSettings::new(SECRET)
            .unwrap()
            .with_verified_cache(
                tower_jwt_session::config::TokenCacheSettings::default().with_capacity(0),
            ),
    );
    let uncached_codec = tower_jwt_session::token::TokenCodec::new(
        uncached_config.tokens(),
        uncached_config.rules(),
    )
    .unwrap();
    let uncached = SessionLayer::new(uncached_codec.clone());
    let headers = request();
    assert!(ready(cached.authenticate(&headers)).is_ok());
    group.bench_function("authenticate_cache_hit", |b| {
        b.iter(|| ready(cached.authenticate(black_box(&headers))).unwrap())
    });
    group.bench_function("authenticate_cache_off", |b| {
        b.iter(|| ready(uncached.authenticate(black_box(&headers))).unwrap())
    });
    // First sight of a token (a miss), through the public entry point: what `codec_verify`
    // cost before the cache, for the price of verifying through jsonwebtoken.
    group.bench_function("codec_verify_cache_off", |b| {
        b.iter(|| uncached_codec.verify(black_box(&token)).unwrap())
    });
    let mut bare_uncached = SessionLayer::new(uncached_codec).layer(inner);
    group.bench_function("layer_without_revocation_cache_off", |b| {
        b.iter_batched(
            request,
            |req| ready(bare_uncached.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // Custom claims (issue 17): a session with a 200-byte claims object, its handler reading
    // them as a struct, beside the same layer and handler without claims (the handler reads
    // the user id only). Both through the revocation cache and the cache of verified tokens.
    let with_claims = rt
        .block_on(
            manager.create_session(
                tower_jwt_session::manager::NewSession::new("alice")
                    .roles(&["user", "admin"])
                    .claims(&bench_claims()),
            ),
        )
        .unwrap();
    assert_eq!(
        tower_jwt_session::session::CustomClaims::new(&bench_claims())
            .unwrap()
            .len(),
        200
    );
    let claims_bearer = format!("Bearer {}", with_claims.access_token);
    let claims_request = || {
        Request::builder()
            .uri("/api/me")
            .header("authorization", &claims_bearer)
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let reads_claims = service_fn(|req: Request<Empty<Bytes>>| async move {
        let session = req
            .extensions()
            .get::<tower_jwt_session::Session>()
            .unwrap();
        let claims: AppClaims = session.claims().unwrap();
        black_box(claims);
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let reads_user = service_fn(|req: Request<Empty<Bytes>>| async move {
        let session = req
            .extensions()
            .get::<tower_jwt_session::Session>()
            .unwrap();
        black_box(session.user_id().len());
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let mut claims_layered = SessionLayer::from_manager(&manager).layer(reads_claims);
    let mut plain_layered = SessionLayer::from_manager(&manager).layer(reads_user);
    assert_eq!(
        ready(claims_layered.call(claims_request()))
            .unwrap()
            .status(),
        200
    );
    assert_eq!(ready(plain_layered.call(request())).unwrap().status(), 200);
    group.bench_function("layer_handler_without_claims", |b| {
        b.iter_batched(
            request,
            |req| ready(plain_layered.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mut claims_ignored = SessionLayer::from_manager(&manager).layer(reads_user);
    group.bench_function("layer_handler_ignores_200_byte_claims", |b| {
        b.iter_batched(
            claims_request,
            |req| ready(claims_ignored.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("layer_handler_reads_200_byte_claims", |b| {
        b.iter_batched(
            claims_request,
            |req| ready(claims_layered.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// A 200-byte claims object as an app would write it.
#[derive(serde::Serialize, Deserialize)]
struct AppClaims {
    tenant: String,
    org: String,
    plan: String,
    email: String,
    permissions: Vec<String>,
}

fn bench_claims() -> AppClaims {
    AppClaims {
        tenant: "acme".into(),
        org: "org_4f9c2a7e1b".into(),
        plan: "enterprise".into(),
        email: "alice.example@acme-corporation.example.com".into(),
        permissions: [
            "billing:read",
            "billing:write",
            "users:read",
            "users:invite",
            "reports:x",
        ]
        .map(String::from)
        .to_vec(),
    }
}

criterion_group!(benches, hot_path);
criterion_main!(benches);

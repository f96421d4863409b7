//! What one access token costs to sign and to verify, per algorithm (issue 16): HS256 (the
//! secret), EdDSA (Ed25519), ES256 (P-256) and RS256 (RSA 2048), through `TokenCodec` with the
//! cache of verified tokens off, so every verification checks the signature.
//!
//! `eddsa_hot_path` is the layer's hot path (valid token, revocation-cache hit) with an EdDSA
//! key: with the cache of verified tokens on (a token seen before skips the signature check)
//! and off (every request verifies Ed25519), beside `benches/layer.rs`'s HS256 figures.
//!
//! `ecdsa_low_s` prices the refusal of high-S ECDSA signatures (issue 26): a token whose `kid`
//! names no key is refused once its header is read; its high-S twin is refused after the same
//! steps and the S check, so the difference between the two is what the check adds to every
//! ES256/ES384 verification that misses the cache (`token/ES256_verify`).
//!
//! ```text
//! cargo bench --bench signing
//! cargo bench --bench signing -- --warm-up-time 1 --measurement-time 3   # a short run
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
use tower::{Layer, Service, service_fn};
use tower_jwt_session::config::{
    Algorithm, RevocationCacheSettings, SessionRules, TokenCacheSettings, TokenSettings,
};
use tower_jwt_session::session::SessionId;
use tower_jwt_session::{SessionConfig, token::TokenCodec};
use tower_jwt_session::{SessionLayer, SessionManager};

const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

fn codec(key: Option<(Algorithm, &[u8])>) -> TokenCodec {
    let mut tokens = TokenSettings::new(SECRET)
        .unwrap()
        .with_verified_cache(TokenCacheSettings::off());
    if let Some((alg, pem)) = key {
        tokens = tokens.with_private_key_pem(alg, pem).unwrap();
    }
    TokenCodec::new(&tokens, &SessionRules::default()).unwrap()
}

fn per_token(c: &mut Criterion) {
    let mut group = c.benchmark_group("token");
    let roles = vec!["user".to_owned()];
    for (name, key) in [
        ("HS256", None),
        (
            "EdDSA",
            Some((
                Algorithm::EdDSA,
                &include_bytes!("../tests/keys/ed_private.pem")[..],
            )),
        ),
        (
            "ES256",
            Some((
                Algorithm::ES256,
                &include_bytes!("../tests/keys/ec_private.pem")[..],
            )),
        ),
        (
            "ES384",
            Some((
                Algorithm::ES384,
                &include_bytes!("../tests/keys/ec384_private.pem")[..],
            )),
        ),
        (
            "RS256",
            Some((
                Algorithm::RS256,
                &include_bytes!("../tests/keys/rsa_private.pem")[..],
            )),
        ),
    ] {
        let codec = codec(key);
        let sid = SessionId::random();
        group.bench_function(format!("{name}_sign"), |b| {
            b.iter(|| black_box(codec.issue(black_box("alice"), sid, &roles)))
        });
        let token = codec.issue("alice", sid, &roles).token;
        assert!(codec.verify(&token).is_ok());
        group.bench_function(format!("{name}_verify"), |b| {
            b.iter(|| black_box(codec.verify(black_box(&token)).is_ok()))
        });
    }
    group.finish();
}

/// `token` with its ECDSA signature `(r, s)` replaced by `(r, n - s)`.
fn high_s_twin(alg: Algorithm, token: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let bytes = B64.decode(signature).unwrap();
    let twin = match alg {
        Algorithm::ES256 => {
            let (r, s) = p256::ecdsa::Signature::from_slice(&bytes)
                .unwrap()
                .split_scalars();
            p256::ecdsa::Signature::from_scalars(r, -s)
                .unwrap()
                .to_vec()
        }
        _ => {
            let (r, s) = p384::ecdsa::Signature::from_slice(&bytes)
                .unwrap()
                .split_scalars();
            p384::ecdsa::Signature::from_scalars(r, -s)
                .unwrap()
                .to_vec()
        }
    };
    format!("{signed}.{}", B64.encode(twin))
}

/// A token whose header names a `kid` no key has: refused after the header, before the S check.
fn unknown_kid(token: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let (header, rest) = token.split_once('.').unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&B64.decode(header).unwrap()).unwrap();
    let kid = json["kid"].as_str().unwrap();
    // Same length, another key.
    json["kid"] = format!(
        "{}{}",
        if kid.starts_with('A') { 'B' } else { 'A' },
        &kid[1..]
    )
    .into();
    format!("{}.{rest}", B64.encode(serde_json::to_vec(&json).unwrap()))
}

fn ecdsa_low_s(c: &mut Criterion) {
    let mut group = c.benchmark_group("ecdsa_low_s");
    let roles = vec!["user".to_owned()];
    for (name, alg, pem) in [
        (
            "ES256",
            Algorithm::ES256,
            &include_bytes!("../tests/keys/ec_private.pem")[..],
        ),
        (
            "ES384",
            Algorithm::ES384,
            &include_bytes!("../tests/keys/ec384_private.pem")[..],
        ),
    ] {
        let codec = codec(Some((alg, pem)));
        let token = codec.issue("alice", SessionId::random(), &roles).token;
        let twin = high_s_twin(alg, &token);
        let stranger = unknown_kid(&token);
        assert!(codec.verify(&token).is_ok());
        assert!(codec.verify(&twin).is_err() && codec.verify(&stranger).is_err());
        group.bench_function(format!("{name}_refuse_unknown_kid"), |b| {
            b.iter(|| black_box(codec.verify(black_box(&stranger)).is_err()))
        });
        group.bench_function(format!("{name}_refuse_high_s"), |b| {
            b.iter(|| black_box(codec.verify(black_box(&twin)).is_err()))
        });
    }
    group.finish();
}

/// Polls a future that is expected to be ready at once (no runtime on the hot path).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the hot path should not wait"),
    }
}

fn eddsa_hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ed = &include_bytes!("../tests/keys/ed_private.pem")[..];
    let mut group = c.benchmark_group("eddsa_hot_path");
    for (name, capacity) in [("layer_cache_hit", None), ("layer_cache_off", Some(0))] {
        let mut tokens = TokenSettings::new(SECRET)
            .unwrap()
            .with_private_key_pem(Algorithm::EdDSA, ed)
            .unwrap();
        if let Some(capacity) = capacity {
            tokens =
                tokens.with_verified_cache(TokenCacheSettings::default().with_capacity(capacity));
        }
        // Every revocation check a hit, as in benches/layer.rs.
        let config = SessionConfig::from_tokens(tokens).with_revocation_cache(
            RevocationCacheSettings::default().with_ttl(std::time::Duration::from_secs(3600)),
        );
        let manager = SessionManager::new(config).unwrap();
        let pair = rt
            .block_on(manager.create_session(
                tower_jwt_session::manager::NewSession::new("alice").roles(&["user".to_owned()]),
            ))
            .unwrap();
        let bearer = format!("Bearer {}", pair.access_token);
        let inner = service_fn(|_req: Request<Empty<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
        });
        let mut layered = SessionLayer::from_manager(&manager).layer(inner);
        let request = || {
            Request::builder()
                .uri("/api/me")
                .header("authorization", &bearer)
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        assert_eq!(ready(layered.call(request())).unwrap().status(), 200);
        group.bench_function(name, |b| {
            b.iter_batched(
                request,
                |req| ready(layered.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, per_token, ecdsa_low_s, eddsa_hot_path);
criterion_main!(benches);

//! What one access token costs to sign and to verify, per algorithm (issue 16): HS256 (the
//! secret), EdDSA (Ed25519), ES256 (P-256) and RS256 (RSA 2048), through `TokenCodec` with the
//! cache of verified tokens off, so every verification checks the signature.
//!
//! ```text
//! cargo bench --bench signing
//! cargo bench --bench signing -- --warm-up-time 1 --measurement-time 3   # a short run
//! ```

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tower_jwt_session::config::{Algorithm, TokenCacheSettings};
use tower_jwt_session::session::SessionId;
use tower_jwt_session::{SessionConfig, token::TokenCodec};

const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

fn codec(key: Option<(Algorithm, &[u8])>) -> TokenCodec {
    let mut config = SessionConfig::new(SECRET)
        .unwrap()
        .with_token_cache(TokenCacheSettings::off());
    if let Some((alg, pem)) = key {
        config = config.private_key_pem(alg, pem).unwrap();
    }
    TokenCodec::new(&config).unwrap()
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

criterion_group!(benches, per_token);
criterion_main!(benches);

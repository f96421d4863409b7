//! One DPoP proof's signature check, per backend: what `token::dpop` pays per request beyond
//! parsing. The message is a DPoP signing input of the usual size (a header with its jwk and a
//! claims set with `ath`, about 420 bytes), the key arrives as the JWK's raw coordinates (so
//! each row includes turning them into the backend's key: a proof brings its key with it), and
//! the ES256 signature is the raw `r || s` of JWS.
//!
//! ```text
//! cargo bench --manifest-path bench/dpop-backends/Cargo.toml
//! cargo bench --manifest-path bench/dpop-backends/Cargo.toml -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use ring::signature::{self as rsig, KeyPair as _};

/// About the size of a browser's ES256 proof's `header.claims`.
fn message() -> Vec<u8> {
    let mut m =
        b"eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwiY3J2IjoiUC0yNTYi"
            .to_vec();
    m.resize(420, b'A');
    m
}

fn es256(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let pkcs8 =
        rsig::EcdsaKeyPair::generate_pkcs8(&rsig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = rsig::EcdsaKeyPair::from_pkcs8(
        &rsig::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    let msg = message();
    let sig = pair.sign(&rng, &msg).unwrap();
    let sig = sig.as_ref().to_vec();
    // 0x04 || x || y, as a JWK's x and y decode to.
    let point = pair.public_key().as_ref().to_vec();
    assert_eq!(point.len(), 65);

    let mut group = c.benchmark_group("es256_verify");
    group.bench_function("rustcrypto_p256", |b| {
        use p256::ecdsa::signature::Verifier as _;
        b.iter(|| {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(black_box(&point)).unwrap();
            let sig = p256::ecdsa::Signature::from_slice(black_box(&sig)).unwrap();
            key.verify(black_box(&msg), &sig).unwrap()
        })
    });
    group.bench_function("ring", |b| {
        b.iter(|| {
            rsig::UnparsedPublicKey::new(&rsig::ECDSA_P256_SHA256_FIXED, black_box(&point))
                .verify(black_box(&msg), black_box(&sig))
                .unwrap()
        })
    });
    group.bench_function("aws_lc_rs", |b| {
        use aws_lc_rs::signature as asig;
        b.iter(|| {
            asig::UnparsedPublicKey::new(&asig::ECDSA_P256_SHA256_FIXED, black_box(&point))
                .verify(black_box(&msg), black_box(&sig))
                .unwrap()
        })
    });
    group.finish();
}

fn ed25519(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let pkcs8 = rsig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = rsig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let msg = message();
    let sig: [u8; 64] = pair.sign(&msg).as_ref().try_into().unwrap();
    let x: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();

    let mut group = c.benchmark_group("ed25519_verify");
    group.bench_function("rustcrypto_dalek_strict", |b| {
        b.iter(|| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(black_box(&x)).unwrap();
            let sig = ed25519_dalek::Signature::from_bytes(black_box(&sig));
            key.verify_strict(black_box(&msg), &sig).unwrap()
        })
    });
    group.bench_function("rustcrypto_dalek", |b| {
        use ed25519_dalek::Verifier as _;
        b.iter(|| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(black_box(&x)).unwrap();
            let sig = ed25519_dalek::Signature::from_bytes(black_box(&sig));
            key.verify(black_box(&msg), &sig).unwrap()
        })
    });
    group.bench_function("ring", |b| {
        b.iter(|| {
            rsig::UnparsedPublicKey::new(&rsig::ED25519, black_box(&x))
                .verify(black_box(&msg), black_box(&sig))
                .unwrap()
        })
    });
    group.bench_function("aws_lc_rs", |b| {
        use aws_lc_rs::signature as asig;
        b.iter(|| {
            asig::UnparsedPublicKey::new(&asig::ED25519, black_box(&x))
                .verify(black_box(&msg), black_box(&sig))
                .unwrap()
        })
    });
    group.finish();
}

/// The hashes a proof costs besides its signature: the JWK thumbprint (about 90 bytes of
/// canonical JSON) and `ath` (an access token of about 600 bytes).
fn sha256(c: &mut Criterion) {
    use sha2::Digest as _;
    let mut group = c.benchmark_group("sha256");
    for len in [90usize, 600] {
        let data = vec![b'a'; len];
        group.bench_function(format!("rustcrypto_{len}b"), |b| {
            b.iter(|| sha2::Sha256::digest(black_box(&data)))
        });
        group.bench_function(format!("ring_{len}b"), |b| {
            b.iter(|| ring::digest::digest(&ring::digest::SHA256, black_box(&data)))
        });
    }
    group.finish();
}

criterion_group!(benches, es256, ed25519, sha256);
criterion_main!(benches);

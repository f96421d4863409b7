//! Every check of RFC 9449 §4.3 and the attacks of §7 and §11, each by a proof that is right
//! but for one thing.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Method, Uri};
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{self as rsig, KeyPair as _};
use serde_json::{Value, json};

use super::*;
use crate::clock::{ManualClock, system_time};
use sha2::{Digest as _, Sha256};

/// 2023-11-14T22:13:20Z.
const NOW_SECS: u64 = 1_700_000_000;
const NOW: u64 = NOW_SECS * 1000;
const ORIGIN: &str = "https://api.example.com";
const URL: &str = "https://api.example.com/api/me";
const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
const NONCE_KEY: &[u8] = b"dpop-nonce-key-dpop-nonce-key-dpop-nonce-key";

/// A client key, and proofs made with it the way RFC 9449 §4.2 says.
pub(super) enum Client {
    Es256(rsig::EcdsaKeyPair),
    Ed25519(ed25519_dalek::SigningKey),
}

impl Client {
    pub(super) fn es256() -> Self {
        let rng = SystemRandom::new();
        let alg = &rsig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = rsig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Client::Es256(rsig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    pub(super) fn ed25519() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        Client::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub(super) fn alg(&self) -> &'static str {
        match self {
            Client::Es256(_) => "ES256",
            Client::Ed25519(_) => "EdDSA",
        }
    }

    pub(super) fn jwk(&self) -> Value {
        match self {
            Client::Es256(pair) => {
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..]),
                })
            }
            Client::Ed25519(key) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
            }),
        }
    }

    /// RFC 7638, written out here independently of `jwk.rs`: the required members sorted,
    /// through serde_json (whose maps are sorted), hashed.
    pub(super) fn jkt(&self) -> String {
        let jwk = self.jwk();
        let required: Value = match self {
            Client::Es256(_) => {
                json!({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]})
            }
            Client::Ed25519(_) => json!({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(serde_json::to_vec(&required).unwrap()))
    }

    pub(super) fn sign_raw(&self, signing_input: &[u8]) -> Vec<u8> {
        match self {
            Client::Es256(pair) => pair
                .sign(&SystemRandom::new(), signing_input)
                .unwrap()
                .as_ref()
                .to_vec(),
            Client::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                key.sign(signing_input).to_bytes().to_vec()
            }
        }
    }

    /// A compact JWS of these header and claims, signed by this key.
    pub(super) fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let signature = self.sign_raw(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    pub(super) fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    /// Claims of a right proof for `GET URL` at `NOW`, with `ath` of `TOKEN`.
    pub(super) fn claims(&self) -> Value {
        json!({
            "jti": random_jti(),
            "htm": "GET",
            "htu": URL,
            "iat": NOW_SECS,
            "ath": access_token_hash(TOKEN),
        })
    }

    pub(super) fn proof(&self) -> String {
        self.sign(&self.header(), &self.claims())
    }

    pub(super) fn proof_with(&self, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let (mut header, mut claims) = (self.header(), self.claims());
        edit(&mut header, &mut claims);
        self.sign(&header, &claims)
    }
}

fn random_jti() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    URL_SAFE_NO_PAD.encode(b)
}

struct Fixture {
    verifier: DpopVerifier,
    clock: ManualClock,
    origin: PublicOrigin,
    uri: Uri,
}

impl Fixture {
    fn new() -> Self {
        Self::with(DpopSettings::new())
    }

    fn with(settings: DpopSettings) -> Self {
        let clock = ManualClock::new(NOW);
        Self {
            verifier: DpopVerifier::new(settings).with_clock(clock.clone()),
            clock,
            origin: PublicOrigin::parse(ORIGIN).unwrap(),
            uri: "/api/me".parse().unwrap(),
        }
    }

    fn request(&self) -> ProofRequest<'_> {
        ProofRequest::new(&Method::GET, &self.origin, &self.uri).with_access_token(TOKEN)
    }

    /// Verifies `proof` as the one DPoP header of `request`; the future must be ready at once.
    fn verify_for(&self, proof: &str, request: &ProofRequest<'_>) -> Result<DpopProof, DpopError> {
        let value = HeaderValue::from_str(proof).expect("a test proof is a header value");
        ready(self.verifier.verify([&value], request))
    }

    fn verify(&self, proof: &str) -> Result<DpopProof, DpopError> {
        self.verify_for(proof, &self.request())
    }
}

/// Polls a future that must be ready at once (the memory replay cache never waits).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("verification with the memory cache should not wait"),
    }
}

fn both_keys() -> [Client; 2] {
    [Client::es256(), Client::ed25519()]
}

// ---- What is accepted ----

#[test]
fn a_right_proof_of_either_algorithm_verifies_and_names_its_key() {
    let f = Fixture::new();
    for client in both_keys() {
        let proof = f
            .verify(&client.proof())
            .unwrap_or_else(|e| panic!("{}: {e}", client.alg()));
        assert_eq!(proof.jkt(), client.jkt(), "RFC 7638 thumbprint");
        assert_eq!(proof.jkt().len(), 43);
        assert!(proof.is_bound_to(&client.jkt()));
        assert_eq!(proof.issued_at(), system_time(NOW));
        assert!(!proof.wants_new_nonce());
    }
}

/// RFC 9449 §4.1 figure 2's proof, made by its authors, and §6.1's `jkt` of its key.
#[test]
fn the_example_proof_of_rfc_9449_verifies_with_the_jkt_it_publishes() {
    const PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
    let clock = ManualClock::new(1_562_262_616_000);
    let verifier = DpopVerifier::new(DpopSettings::new()).with_clock(clock);
    let origin = PublicOrigin::parse("https://server.example.com").unwrap();
    let uri: Uri = "/token".parse().unwrap();
    let request = ProofRequest::new(&Method::POST, &origin, &uri)
        .bound_to("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    let value = HeaderValue::from_static(PROOF);
    let proof = ready(verifier.verify([&value], &request)).unwrap();
    assert_eq!(proof.jkt(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    assert_eq!(proof.algorithm(), DpopAlgorithm::ES256);
}

#[test]
fn the_fully_specified_ed25519_alg_and_the_application_typ_are_accepted() {
    let f = Fixture::new();
    let client = Client::ed25519();
    f.verify(&client.proof_with(|h, _| h["alg"] = json!("Ed25519")))
        .unwrap();
    f.verify(&client.proof_with(|h, _| h["typ"] = json!("application/DPoP+JWT")))
        .unwrap();
}

#[test]
fn extra_public_jwk_members_are_ignored_as_webcrypto_exports_them() {
    let f = Fixture::new();
    let client = Client::es256();
    let proof = client.proof_with(|h, _| {
        h["jwk"]["ext"] = json!(true);
        h["jwk"]["key_ops"] = json!(["verify"]);
        h["jwk"]["alg"] = json!("ES256");
        h["jwk"]["use"] = json!("sig");
    });
    assert_eq!(f.verify(&proof).unwrap().jkt(), client.jkt());
}

/// WebCrypto makes ECDSA signatures with a high `s` half of the time; they are as valid.
#[test]
fn an_es256_signature_with_a_high_s_is_accepted() {
    let f = Fixture::new();
    let client = Client::es256();
    let n = p256_order();
    for _ in 0..4 {
        let proof = client.proof();
        let (input, sig) = proof.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let s: [u8; 32] = sig[32..].try_into().unwrap();
        sig[32..].copy_from_slice(&sub_be(&n, &s));
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        // One of the two forms is high-s; both verify (each has its own jti... the same jti:
        // the second is a replay, so verify them on fresh fixtures).
        Fixture::new().verify(&flipped).unwrap();
        f.verify(&proof).unwrap();
    }
}

fn p256_order() -> [u8; 32] {
    let hex = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
    let mut n = [0u8; 32];
    for (i, byte) in n.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    n
}

/// `a - b` on 32-byte big-endian numbers, `a > b`.
fn sub_be(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

#[test]
fn iat_may_be_fractional_and_a_proof_without_access_token_needs_no_ath() {
    let f = Fixture::new();
    let client = Client::es256();
    let proof = client.proof_with(|_, c| {
        c["iat"] = json!(NOW_SECS as f64 + 0.5);
        c.as_object_mut().unwrap().remove("ath");
    });
    let request = ProofRequest::new(&Method::GET, &f.origin, &f.uri);
    f.verify_for(&proof, &request).unwrap();
}

// ---- §4.3 point 1: one proof ----

#[test]
fn no_proof_and_two_proofs_are_refused() {
    let f = Fixture::new();
    let client = Client::es256();
    assert_eq!(
        ready(f.verifier.verify([], &f.request())),
        Err(DpopError::Missing)
    );
    let (a, b) = (
        HeaderValue::try_from(client.proof()).unwrap(),
        HeaderValue::try_from(client.proof()).unwrap(),
    );
    assert_eq!(
        ready(f.verifier.verify([&a, &b], &f.request())),
        Err(DpopError::Multiple)
    );
    let mut headers = HeaderMap::new();
    headers.append(DPOP, a.clone());
    headers.append(DPOP, b.clone());
    assert_eq!(
        ready(f.verifier.verify(headers.get_all(DPOP), &f.request())),
        Err(DpopError::Multiple)
    );
    // Folded into one line by a proxy.
    let folded = format!("{}, {}", client.proof(), client.proof());
    assert_eq!(f.verify(&folded), Err(DpopError::Multiple));
}

// ---- §4.3 point 2: a well-formed JWT, bounded ----

#[test]
fn malformed_proofs_are_refused_with_a_reason() {
    let f = Fixture::new();
    let client = Client::es256();
    let good = client.proof();
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
    let sig = parts[2];
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "empty"),
        ("abc".into(), "one part"),
        (format!("{}.{}", parts[0], parts[1]), "two parts"),
        (format!("{good}.x"), "four parts"),
        (
            format!("{}.{}.{}=", parts[0], parts[1], &sig[..85]),
            "padded signature",
        ),
        (
            format!("{}.{}.{}", parts[0], parts[1], &sig[..80]),
            "short signature",
        ),
        (
            format!("{}.{}.{}", parts[0], parts[1], "*".repeat(86)),
            "signature not base64url",
        ),
        (format!("{}=.{}.{sig}", parts[0], parts[1]), "padded header"),
        (
            format!("{}.{}.{sig}", b64(b"not json"), parts[1]),
            "header not JSON",
        ),
        (
            format!("{}.{}.{sig}", b64(b"[1,2]"), parts[1]),
            "header not an object",
        ),
        (
            format!("{}.{}.{sig}", parts[0], b64(b"{\"jti\":")),
            "claims not JSON",
        ),
        (
            format!("{}.{}.{sig}", parts[0], b64(br#"{"jti":1}"#)),
            "jti a number",
        ),
        (
            format!("{}.{}.{sig}", parts[0], b64(br#"{"iat":"now"}"#)),
            "iat a string",
        ),
        (
            format!("{}.{}.{sig}", parts[0], b64(br#"{"iat":-5}"#)),
            "iat negative",
        ),
        (
            format!("{}.{}.{sig}", parts[0], b64(b"\xff\xfe")),
            "claims not UTF-8",
        ),
        (
            format!(
                "{}.{}.{sig}",
                parts[0],
                b64(br#"{"htm":"GET","htm":"POST"}"#)
            ),
            "duplicate claim",
        ),
        (
            format!(
                "{}.{}.{sig}",
                b64(br#"{"typ":"dpop+jwt","typ":"x"}"#),
                parts[1]
            ),
            "duplicate header",
        ),
    ];
    for (proof, what) in cases {
        match f.verify(&proof) {
            Err(DpopError::Malformed(_) | DpopError::InvalidType) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    // Not ASCII at all.
    let value = HeaderValue::from_bytes(b"\xe9t\xe9.a.b").unwrap();
    assert!(matches!(
        ready(f.verifier.verify([&value], &f.request())),
        Err(DpopError::Malformed(_))
    ));
}

#[test]
fn an_oversized_proof_is_refused_before_anything_is_decoded() {
    let f = Fixture::new();
    let client = Client::es256();
    // Right in every other way: a long but valid extra claim.
    let proof = client.proof_with(|_, c| c["pad"] = json!("x".repeat(MAX_PROOF_LEN)));
    assert!(proof.len() > MAX_PROOF_LEN);
    assert_eq!(f.verify(&proof), Err(DpopError::TooLarge));
    // Just under the cap is fine.
    let mut pad = MAX_PROOF_LEN - client.proof().len() - 200;
    loop {
        let proof = client.proof_with(|_, c| c["pad"] = json!("x".repeat(pad)));
        if proof.len() <= MAX_PROOF_LEN {
            f.verify(&proof).unwrap();
            break;
        }
        pad -= 10;
    }
}

#[test]
fn a_missing_claim_is_named() {
    let f = Fixture::new();
    let client = Client::ed25519();
    for claim in ["jti", "htm", "htu", "iat", "ath"] {
        let proof = client.proof_with(|_, c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        assert_eq!(
            f.verify(&proof),
            Err(DpopError::MissingClaim(claim)),
            "{claim}"
        );
    }
}

#[test]
fn a_jti_that_is_empty_or_too_long_is_refused() {
    let f = Fixture::new();
    let client = Client::ed25519();
    for jti in [String::new(), "j".repeat(MAX_JTI_LEN + 1)] {
        let proof = client.proof_with(|_, c| c["jti"] = json!(jti));
        assert_eq!(f.verify(&proof), Err(DpopError::InvalidClaim("jti")));
    }
    let proof = client.proof_with(|_, c| c["jti"] = json!("j".repeat(MAX_JTI_LEN)));
    f.verify(&proof).unwrap();
}

// ---- §4.3 point 4: typ ----

#[test]
fn a_wrong_or_missing_typ_is_refused() {
    let f = Fixture::new();
    let client = Client::es256();
    for typ in [
        json!("JWT"),
        json!("at+jwt"),
        json!("dpop"),
        json!(1),
        Value::Null,
    ] {
        let proof = client.proof_with(|h, _| h["typ"] = typ.clone());
        let got = f.verify(&proof);
        assert!(
            matches!(got, Err(DpopError::InvalidType | DpopError::Malformed(_))),
            "{typ}: {got:?}"
        );
    }
    let proof = client.proof_with(|h, _| {
        h.as_object_mut().unwrap().remove("typ");
    });
    assert_eq!(f.verify(&proof), Err(DpopError::InvalidType));
}

// ---- §4.3 point 5: alg ----

#[test]
fn alg_none_is_refused() {
    let f = Fixture::new();
    let client = Client::es256();
    let proof = client.proof();
    let mut header = client.header();
    header["alg"] = json!("none");
    let claims = proof.split('.').nth(1).unwrap();
    // Unsigned (an empty signature) and with the old signature kept.
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    assert!(f.verify(&format!("{h}.{claims}.")).is_err());
    let sig = proof.rsplit('.').next().unwrap();
    assert_eq!(
        f.verify(&format!("{h}.{claims}.{sig}")),
        Err(DpopError::UnsupportedAlgorithm)
    );
}

/// An HMAC proof keyed with the public key's bytes (the algorithm-confusion attack), or with
/// a symmetric `jwk`.
#[test]
fn hmac_proofs_are_refused() {
    use hmac::{Hmac, KeyInit, Mac};
    let f = Fixture::new();
    let client = Client::es256();
    for (alg, jwk) in [
        ("HS256", client.jwk()),
        ("HS384", client.jwk()),
        ("HS512", client.jwk()),
        (
            "HS256",
            json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(b"0123456789abcdef0123456789abcdef")}),
        ),
    ] {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&client.claims()).unwrap())
        );
        let mut mac =
            <Hmac<Sha256>>::new_from_slice(serde_json::to_string(&jwk).unwrap().as_bytes())
                .unwrap();
        mac.update(input.as_bytes());
        let tag = mac.finalize().into_bytes();
        // Padded to the length of an ES256 signature, so only the alg can refuse it.
        let mut sig = tag.to_vec();
        sig.resize(64, 0);
        let proof = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(
            f.verify(&proof),
            Err(DpopError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
}

#[test]
fn algorithms_off_the_list_are_refused() {
    let client = Client::ed25519();
    for alg in [
        "RS256", "PS256", "ES384", "ES256K", "Ed448", "eddsa", "es256", "",
    ] {
        let proof = client.proof_with(|h, _| h["alg"] = json!(alg));
        assert_eq!(
            Fixture::new().verify(&proof),
            Err(DpopError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    // A list narrowed to ES256 refuses EdDSA.
    let f = Fixture::with(
        DpopSettings::new()
            .algorithms([DpopAlgorithm::ES256])
            .unwrap(),
    );
    assert_eq!(
        f.verify(&client.proof()),
        Err(DpopError::UnsupportedAlgorithm)
    );
    f.verify(&Client::es256().proof()).unwrap();
    assert!(DpopSettings::new().algorithms([]).is_err());
}

#[test]
fn a_crit_header_is_refused() {
    let f = Fixture::new();
    let client = Client::es256();
    let proof = client.proof_with(|h, _| h["crit"] = json!(["exp"]));
    assert_eq!(f.verify(&proof), Err(DpopError::CriticalHeader));
}

// ---- §4.3 points 6 and 7: the jwk, public, and the signature ----

#[test]
fn a_private_jwk_is_refused() {
    let f = Fixture::new();
    for client in both_keys() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let proof = client.proof_with(|h, _| h["jwk"][member] = json!("AAAA"));
            assert_eq!(
                f.verify(&proof),
                Err(DpopError::PrivateKey),
                "{} {member}",
                client.alg()
            );
        }
    }
}

#[test]
fn a_missing_jwk_or_one_of_another_type_is_refused() {
    let f = Fixture::new();
    let (es, ed) = (Client::es256(), Client::ed25519());
    let proof = es.proof_with(|h, _| {
        h.as_object_mut().unwrap().remove("jwk");
    });
    assert_eq!(f.verify(&proof), Err(DpopError::MissingKey));
    // ES256 header, Ed25519 key, and the reverse.
    let proof = es.proof_with(|h, _| h["jwk"] = ed.jwk());
    assert!(matches!(f.verify(&proof), Err(DpopError::InvalidKey(_))));
    let proof = ed.proof_with(|h, _| h["jwk"] = es.jwk());
    assert!(matches!(f.verify(&proof), Err(DpopError::InvalidKey(_))));
    for (edit, what) in [
        (json!({"crv": "P-384"}), "another curve"),
        (json!({"kty": "RSA"}), "another type"),
        (json!({"kty": null}), "no kty"),
        (json!({"x": null}), "no x"),
        (json!({"y": "AAAA"}), "short y"),
        (
            json!({"x": format!("{}A", es.jwk()["x"].as_str().unwrap())}),
            "long x",
        ),
        (json!({"x": "*".repeat(43)}), "x not base64url"),
        (json!({"alg": "EdDSA"}), "jwk alg disagrees"),
        (json!({"use": "enc"}), "an encryption key"),
    ] {
        let proof = es.proof_with(|h, _| {
            for (k, v) in edit.as_object().unwrap() {
                h["jwk"][k] = v.clone();
            }
        });
        assert!(
            matches!(f.verify(&proof), Err(DpopError::InvalidKey(_))),
            "{what}"
        );
    }
    let proof = ed.proof_with(|h, _| h["jwk"]["y"] = json!("AAAA"));
    assert!(matches!(f.verify(&proof), Err(DpopError::InvalidKey(_))));
}

#[test]
fn a_point_off_the_curve_is_refused() {
    let f = Fixture::new();
    let client = Client::es256();
    let proof = client.proof_with(|h, _| {
        let mut y = URL_SAFE_NO_PAD
            .decode(h["jwk"]["y"].as_str().unwrap())
            .unwrap();
        y[31] ^= 1;
        h["jwk"]["y"] = json!(URL_SAFE_NO_PAD.encode(y));
    });
    assert_eq!(f.verify(&proof), Err(DpopError::InvalidSignature));
}

/// The identity point (and other small-order points) would let anyone "sign" for a key
/// nobody holds: `R = sB` satisfies the equation for every message.
#[test]
fn a_small_order_ed25519_key_is_refused() {
    let f = Fixture::new();
    let client = Client::ed25519();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let proof = client.proof_with(|h, _| h["jwk"]["x"] = json!(URL_SAFE_NO_PAD.encode(identity)));
    assert!(matches!(f.verify(&proof), Err(DpopError::InvalidKey(_))));
}

#[test]
fn a_proof_signed_by_another_key_than_its_jwk_is_refused() {
    let f = Fixture::new();
    for (signer, named) in [
        (Client::es256(), Client::es256()),
        (Client::ed25519(), Client::ed25519()),
    ] {
        let proof = signer.proof_with(|h, _| h["jwk"] = named.jwk());
        assert_eq!(f.verify(&proof), Err(DpopError::InvalidSignature));
    }
}

#[test]
fn a_tampered_proof_is_refused() {
    let f = Fixture::new();
    for client in both_keys() {
        let proof = client.proof();
        let (header, rest) = proof.split_once('.').unwrap();
        let (_, sig) = rest.rsplit_once('.').unwrap();
        let mut claims = client.claims();
        claims["htu"] = json!(URL);
        let forged = format!(
            "{header}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert_eq!(f.verify(&forged), Err(DpopError::InvalidSignature));
        // A flipped bit of the signature.
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[10] ^= 0x40;
        let (input, _) = proof.rsplit_once('.').unwrap();
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(f.verify(&flipped), Err(DpopError::InvalidSignature));
    }
}

// ---- §4.3 points 8 and 9: htm and htu ----

#[test]
fn a_proof_for_another_method_is_refused() {
    let f = Fixture::new();
    let client = Client::es256();
    for htm in ["POST", "get", "HEAD", ""] {
        let proof = client.proof_with(|_, c| c["htm"] = json!(htm));
        assert_eq!(f.verify(&proof), Err(DpopError::MethodMismatch), "{htm:?}");
    }
}

#[test]
fn a_proof_for_another_url_is_refused() {
    let f = Fixture::new();
    let client = Client::es256();
    for htu in [
        "https://api.example.com/api/other",
        "https://evil.example.com/api/me",
        "http://api.example.com/api/me",
        "https://api.example.com:8443/api/me",
        "https://api.example.com/api/me/",
        "https://api.example.com/API/me",
    ] {
        let proof = client.proof_with(|_, c| c["htu"] = json!(htu));
        assert_eq!(f.verify(&proof), Err(DpopError::UriMismatch), "{htu}");
    }
    for htu in [
        "/api/me",
        "api.example.com/api/me",
        "https://user@api.example.com/api/me",
    ] {
        let proof = client.proof_with(|_, c| c["htu"] = json!(htu));
        assert_eq!(
            f.verify(&proof),
            Err(DpopError::InvalidClaim("htu")),
            "{htu}"
        );
    }
}

#[test]
fn htu_is_compared_after_normalization_and_without_query_or_fragment() {
    let f = Fixture::new();
    let client = Client::ed25519();
    for htu in [
        "HTTPS://API.EXAMPLE.COM:443/api/me",
        "https://api.example.com/api/me?page=2",
        "https://api.example.com/api/me#top",
        "https://api.example.com/api/%6De",
        "https://api.example.com/api/x/../me",
    ] {
        let proof = client.proof_with(|_, c| c["htu"] = json!(htu));
        f.verify(&proof).unwrap_or_else(|e| panic!("{htu}: {e}"));
    }
    // The request's query does not count either.
    let uri: Uri = "/api/me?x=1".parse().unwrap();
    let request = ProofRequest::new(&Method::GET, &f.origin, &uri).with_access_token(TOKEN);
    f.verify_for(&client.proof(), &request).unwrap();
}

#[test]
fn behind_a_proxy_the_public_origin_is_what_the_proof_names() {
    let f = Fixture::new();
    let client = Client::es256();
    // The server listens on 127.0.0.1:3000; clients see https://api.example.com.
    let inner: Uri = "http://127.0.0.1:3000/api/me".parse().unwrap();
    let request = ProofRequest::new(&Method::GET, &f.origin, &inner).with_access_token(TOKEN);
    f.verify_for(&client.proof(), &request).unwrap();
    let local = PublicOrigin::parse("http://127.0.0.1:3000").unwrap();
    let request = ProofRequest::new(&Method::GET, &local, &inner).with_access_token(TOKEN);
    assert_eq!(
        f.verify_for(&client.proof(), &request),
        Err(DpopError::UriMismatch)
    );
}

// ---- §4.3 point 11: iat within the window ----

#[test]
fn an_old_or_future_iat_is_refused_at_the_edges_of_the_window() {
    let f = Fixture::new();
    let client = Client::es256();
    let at = |iat: u64| client.proof_with(|_, c| c["iat"] = json!(iat));
    f.verify(&at(NOW_SECS - 60)).unwrap();
    assert_eq!(f.verify(&at(NOW_SECS - 61)), Err(DpopError::TooOld));
    f.verify(&at(NOW_SECS + 60)).unwrap();
    assert_eq!(f.verify(&at(NOW_SECS + 61)), Err(DpopError::IssuedInFuture));
    assert_eq!(f.verify(&at(0)), Err(DpopError::TooOld));
    assert_eq!(f.verify(&at(u64::MAX)), Err(DpopError::IssuedInFuture));
    // A proof ages out as the clock moves.
    let proof = client.proof();
    f.clock.advance(Duration::from_secs(61));
    assert_eq!(f.verify(&proof), Err(DpopError::TooOld));
}

#[test]
fn the_window_is_configurable_and_bounded() {
    let settings = DpopSettings::new()
        .max_age(Duration::from_secs(5))
        .unwrap()
        .clock_skew(Duration::ZERO)
        .unwrap();
    let f = Fixture::with(settings);
    let client = Client::ed25519();
    let at = |iat: u64| client.proof_with(|_, c| c["iat"] = json!(iat));
    f.verify(&at(NOW_SECS - 5)).unwrap();
    assert_eq!(f.verify(&at(NOW_SECS - 6)), Err(DpopError::TooOld));
    assert_eq!(f.verify(&at(NOW_SECS + 1)), Err(DpopError::IssuedInFuture));
    assert!(DpopSettings::new().max_age(Duration::ZERO).is_err());
    assert!(
        DpopSettings::new()
            .max_age(Duration::from_secs(301))
            .is_err()
    );
    assert!(
        DpopSettings::new()
            .clock_skew(Duration::from_secs(301))
            .is_err()
    );
}

// ---- §4.3 point 12, §7: ath and the bound key ----

#[test]
fn a_proof_for_another_access_token_is_refused() {
    let f = Fixture::new();
    let client = Client::es256();
    let proof = client.proof_with(|_, c| c["ath"] = json!(access_token_hash("another.token.x")));
    assert_eq!(f.verify(&proof), Err(DpopError::AccessTokenMismatch));
    let proof = client.proof_with(|_, c| c["ath"] = json!(""));
    assert_eq!(f.verify(&proof), Err(DpopError::AccessTokenMismatch));
    // Without an access token in the request, ath is not needed (login, refresh).
    let request = ProofRequest::new(&Method::GET, &f.origin, &f.uri);
    f.verify_for(&client.proof(), &request).unwrap();
}

#[test]
fn a_proof_by_another_key_than_the_tokens_cnf_jkt_is_refused() {
    let f = Fixture::new();
    let (owner, thief) = (Client::es256(), Client::ed25519());
    let owner_jkt = owner.jkt();
    let request = f.request().bound_to(&owner_jkt);
    assert_eq!(
        f.verify_for(&thief.proof(), &request),
        Err(DpopError::KeyMismatch)
    );
    let proof = f.verify_for(&owner.proof(), &request).unwrap();
    assert!(proof.is_bound_to(&owner_jkt));
    assert!(!proof.is_bound_to(&thief.jkt()));
    assert!(!jkt_matches(&owner_jkt, &owner_jkt[..42]));
}

// ---- §11.1: replay ----

#[test]
fn a_replayed_proof_is_refused() {
    let f = Fixture::new();
    for client in both_keys() {
        let proof = client.proof();
        f.verify(&proof).unwrap();
        assert_eq!(f.verify(&proof), Err(DpopError::Replayed));
        // The same jti in a new proof (another URL) is a replay too.
        let jti = client.claims()["jti"].clone();
        let a = client.proof_with(|_, c| c["jti"] = jti.clone());
        let b = client.proof_with(|_, c| {
            c["jti"] = jti.clone();
            c["iat"] = json!(NOW_SECS - 1);
        });
        f.verify(&a).unwrap();
        assert_eq!(f.verify(&b), Err(DpopError::Replayed));
    }
}

#[test]
fn a_refused_proof_takes_no_room_in_the_replay_cache() {
    let cache = Arc::new(MemoryReplayCache::new(100));
    let clock = ManualClock::new(NOW);
    let verifier = DpopVerifier::new(DpopSettings::new())
        .with_clock(clock)
        .with_replay_cache(cache.clone());
    let origin = PublicOrigin::parse(ORIGIN).unwrap();
    let uri: Uri = "/api/me".parse().unwrap();
    let request = ProofRequest::new(&Method::GET, &origin, &uri).with_access_token(TOKEN);
    let client = Client::es256();
    let forged = client.proof_with(|h, _| h["jwk"] = Client::es256().jwk());
    let value = HeaderValue::try_from(forged).unwrap();
    assert_eq!(
        ready(verifier.verify([&value], &request)),
        Err(DpopError::InvalidSignature)
    );
    assert!(cache.is_empty());
}

#[test]
fn a_full_replay_cache_refuses_proofs_rather_than_forget() {
    let cache = Arc::new(MemoryReplayCache::new(16));
    let clock = ManualClock::new(NOW);
    let verifier = DpopVerifier::new(DpopSettings::new())
        .with_clock(clock.clone())
        .with_replay_cache(cache.clone());
    let origin = PublicOrigin::parse(ORIGIN).unwrap();
    let uri: Uri = "/api/me".parse().unwrap();
    let request = ProofRequest::new(&Method::GET, &origin, &uri).with_access_token(TOKEN);
    let client = Client::ed25519();
    let mut refused = 0;
    for _ in 0..200 {
        let value = HeaderValue::try_from(client.proof()).unwrap();
        match ready(verifier.verify([&value], &request)) {
            Ok(_) => {}
            Err(DpopError::ReplayCheckUnavailable) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 200 - 16);
    assert_eq!(
        DpopError::ReplayCheckUnavailable.code(),
        crate::error::ErrorCode::Unavailable
    );
    // Once the proofs have aged out of the window, room comes back.
    clock.advance(Duration::from_secs(61));
    let value =
        HeaderValue::try_from(client.proof_with(|_, c| c["iat"] = json!(NOW_SECS + 61))).unwrap();
    ready(verifier.verify([&value], &request)).unwrap();
}

/// A cache in a store that cannot be reached: the proof is refused, never let through.
#[tokio::test]
async fn a_failing_replay_cache_refuses_the_proof() {
    #[derive(Debug)]
    struct Down;
    #[async_trait::async_trait]
    impl DpopReplayCache for Down {
        async fn first_use(
            &self,
            _: &str,
            _: &str,
            _: u64,
            _: u64,
        ) -> Result<bool, ReplayCacheError> {
            tokio::task::yield_now().await;
            Err(ReplayCacheError::Backend("connection refused".into()))
        }
    }
    let f = Fixture::new();
    let verifier = f.verifier.clone().with_replay_cache(Arc::new(Down));
    let value = HeaderValue::try_from(Client::es256().proof()).unwrap();
    assert_eq!(
        verifier.verify([&value], &f.request()).await,
        Err(DpopError::ReplayCheckUnavailable)
    );
}

// ---- §8, §9: server nonces ----

#[test]
fn with_nonces_required_a_proof_needs_the_current_nonce() {
    let settings = DpopSettings::new()
        .require_nonce(NONCE_KEY, Duration::from_secs(300))
        .unwrap();
    let f = Fixture::with(settings.clone());
    let client = Client::es256();
    let err = f.verify(&client.proof()).unwrap_err();
    assert_eq!(err, DpopError::NonceRequired);
    assert_eq!(err.code(), crate::error::ErrorCode::UseDpopNonce);
    assert_eq!(err.challenge_error(), Some("use_dpop_nonce"));
    assert!(err.wants_nonce());
    let nonce = f.verifier.current_nonce().unwrap();
    let nonce = nonce.to_str().unwrap().to_owned();
    let with = |n: &str, iat: u64| {
        client.proof_with(|_, c| {
            c["nonce"] = json!(n);
            c["iat"] = json!(iat);
        })
    };
    let proof = f.verify(&with(&nonce, NOW_SECS)).unwrap();
    assert!(!proof.wants_new_nonce());
    assert_eq!(
        f.verify(&with("made-up", NOW_SECS)),
        Err(DpopError::NonceInvalid)
    );
    // Another instance with the same key takes it.
    let other = Fixture::with(settings);
    other.verify(&with(&nonce, NOW_SECS)).unwrap();
    // In the next period it is still taken, and the answer should carry the new one.
    f.clock.advance(Duration::from_secs(300));
    let later = NOW_SECS + 300;
    let proof = f.verify(&with(&nonce, later)).unwrap();
    assert!(proof.wants_new_nonce());
    assert_ne!(f.verifier.current_nonce().unwrap(), nonce.as_str());
    f.clock.advance(Duration::from_secs(300));
    assert_eq!(
        f.verify(&with(&nonce, later + 300)),
        Err(DpopError::NonceInvalid)
    );
    // Without nonces required, a nonce claim is ignored, and there is no nonce to send.
    let plain = Fixture::new();
    plain.verify(&with("anything", NOW_SECS)).unwrap();
    assert!(plain.verifier.current_nonce().is_none());
    assert!(
        DpopSettings::new()
            .require_nonce(b"short", Duration::from_secs(60))
            .is_err()
    );
    assert!(
        DpopSettings::new()
            .require_nonce(NONCE_KEY, Duration::from_secs(1))
            .is_err()
    );
}

// ---- Errors, challenge, Debug ----

#[test]
fn every_error_maps_to_a_code_and_a_challenge_a_header_can_carry() {
    let f = Fixture::new();
    let all = [
        DpopError::Missing,
        DpopError::Multiple,
        DpopError::TooLarge,
        DpopError::Malformed("x"),
        DpopError::InvalidType,
        DpopError::UnsupportedAlgorithm,
        DpopError::CriticalHeader,
        DpopError::MissingKey,
        DpopError::PrivateKey,
        DpopError::InvalidKey("x"),
        DpopError::InvalidSignature,
        DpopError::MissingClaim("jti"),
        DpopError::InvalidClaim("jti"),
        DpopError::MethodMismatch,
        DpopError::UriMismatch,
        DpopError::TooOld,
        DpopError::IssuedInFuture,
        DpopError::AccessTokenMismatch,
        DpopError::KeyMismatch,
        DpopError::Replayed,
        DpopError::NonceRequired,
        DpopError::NonceInvalid,
        DpopError::ReplayCheckUnavailable,
    ];
    for e in all {
        let message = e.to_string();
        assert!(
            !message.contains('"') && !message.contains('\\'),
            "{message}"
        );
        let challenge = f.verifier.challenge(Some(&e));
        let challenge = challenge.to_str().unwrap();
        assert!(challenge.starts_with("DPoP algs=\"ES256 EdDSA\""));
        match e.code() {
            crate::error::ErrorCode::InvalidDpopProof => {
                assert!(
                    challenge.contains("error=\"invalid_dpop_proof\""),
                    "{challenge}"
                )
            }
            crate::error::ErrorCode::UseDpopNonce => {
                assert!(
                    challenge.contains("error=\"use_dpop_nonce\""),
                    "{challenge}"
                )
            }
            crate::error::ErrorCode::Unavailable => assert!(!challenge.contains("error=")),
            other => panic!("{e:?} maps to {other:?}"),
        }
    }
}

#[test]
fn debug_output_holds_no_secret() {
    let settings = DpopSettings::new()
        .require_nonce(NONCE_KEY, Duration::from_secs(300))
        .unwrap();
    let shown = format!("{:?}", DpopVerifier::new(settings));
    assert!(!shown.contains("nonce-key"), "{shown}");
    let f = Fixture::new();
    let shown = format!("{:?}", f.request());
    assert!(
        !shown.contains(TOKEN) && shown.contains("[redacted]"),
        "{shown}"
    );
}

// ---- Never a panic ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes, random text and random JWS-shaped junk: an error, never a panic.
    #[test]
    fn random_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = Fixture::new();
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let _ = ready(f.verifier.verify([&value], &f.request()));
        }
    }

    #[test]
    fn random_jws_parts_never_panic(
        header in proptest::collection::vec(any::<u8>(), 0..300),
        claims in proptest::collection::vec(any::<u8>(), 0..300),
        sig in proptest::collection::vec(any::<u8>(), 60..70),
    ) {
        let f = Fixture::new();
        let proof = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&claims),
            URL_SAFE_NO_PAD.encode(&sig),
        );
        prop_assert!(f.verify(&proof).is_err());
    }

    /// JSON-shaped headers and claims with random values where the checks look.
    #[test]
    fn random_json_fields_never_panic(
        typ in prop_oneof![Just(json!("dpop+jwt")), any::<String>().prop_map(Value::from), Just(Value::Null)],
        alg in prop_oneof![Just(json!("ES256")), Just(json!("EdDSA")), any::<String>().prop_map(Value::from)],
        kty in prop_oneof![Just(json!("EC")), Just(json!("OKP")), any::<String>().prop_map(Value::from)],
        x in any::<String>(),
        htu in any::<String>(),
        iat in prop_oneof![any::<u64>().prop_map(Value::from), any::<i64>().prop_map(Value::from), any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))],
    ) {
        let f = Fixture::new();
        let client = Client::es256();
        let proof = client.proof_with(|h, c| {
            h["typ"] = typ;
            h["alg"] = alg;
            h["jwk"]["kty"] = kty;
            h["jwk"]["x"] = json!(x);
            c["htu"] = json!(htu);
            c["iat"] = iat;
        });
        if let Ok(value) = HeaderValue::try_from(proof) {
            let _ = ready(f.verifier.verify([&value], &f.request()));
        }
    }
}

// ---- Interop: proofs made by implementations we did not write ----

/// The vectors of `interop/dpop.sh`: proofs made by panva's `dpop` (npm), by Python
/// `cryptography` alone, and by our browser client (checked by jose and `cryptography` when
/// they were made). Committed, so `cargo test` needs neither node nor Python; the script also
/// passes freshly made ones through `TJS_DPOP_VECTORS` (a directory of `vectors-*.json`).
const COMMITTED_VECTORS: [(&str, &str); 3] = [
    (
        "vectors-panva.json",
        include_str!("../../../tests/dpop/vectors-panva.json"),
    ),
    (
        "vectors-python.json",
        include_str!("../../../tests/dpop/vectors-python.json"),
    ),
    (
        "vectors-client.json",
        include_str!("../../../tests/dpop/vectors-client.json"),
    ),
];

#[derive(serde::Deserialize)]
struct VectorFile {
    source: String,
    vectors: Vec<Vector>,
}

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    proof: String,
    method: String,
    origin: String,
    path: String,
    access_token: Option<String>,
    now_ms: u64,
    nonce_key: Option<String>,
    nonce_period_s: Option<u64>,
    expect: String,
    jkt: String,
}

/// Checks every vector of one file; returns how many there were.
fn check_vectors(file: &str, json: &str) -> usize {
    let parsed: VectorFile = serde_json::from_str(json).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(!parsed.vectors.is_empty(), "{file}: no vectors");
    for v in &parsed.vectors {
        let mut settings = DpopSettings::new();
        if let (Some(key), Some(period)) = (&v.nonce_key, v.nonce_period_s) {
            settings = settings
                .require_nonce(key, Duration::from_secs(period))
                .unwrap();
        }
        let verifier = DpopVerifier::new(settings).with_clock(ManualClock::new(v.now_ms));
        let origin = PublicOrigin::parse(&v.origin).unwrap();
        let uri: Uri = v.path.parse().unwrap();
        let method = Method::from_bytes(v.method.as_bytes()).unwrap();
        let mut request = ProofRequest::new(&method, &origin, &uri);
        if let Some(token) = &v.access_token {
            request = request.with_access_token(token);
        }
        let value = HeaderValue::from_str(&v.proof).unwrap();
        let got = ready(verifier.verify([&value], &request));
        let what = format!("{file} ({}): {}", parsed.source, v.name);
        match (&got, v.expect.as_str()) {
            (Ok(proof), "accept") => {
                assert_eq!(
                    proof.jkt(),
                    v.jkt,
                    "{what}: the thumbprint the maker computed"
                );
                // And once only.
                assert_eq!(
                    ready(verifier.verify([&value], &request)),
                    Err(DpopError::Replayed),
                    "{what}"
                );
            }
            (Err(e), expected) if expected != "accept" => {
                assert!(
                    format!("{e:?}").starts_with(expected),
                    "{what}: expected {expected}, got {e:?}"
                )
            }
            _ => panic!("{what}: expected {}, got {got:?}", v.expect),
        }
        println!("{what}: {} as expected", v.expect);
    }
    parsed.vectors.len()
}

#[test]
fn interop_vectors_verify_as_their_makers_expect() {
    let mut count = 0;
    for (file, json) in COMMITTED_VECTORS {
        count += check_vectors(file, json);
    }
    if let Some(dir) = std::env::var_os("TJS_DPOP_VECTORS") {
        let mut fresh = 0;
        for entry in std::fs::read_dir(&dir).expect("TJS_DPOP_VECTORS is a directory") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let json = std::fs::read_to_string(&path).unwrap();
                fresh += check_vectors(&path.display().to_string(), &json);
            }
        }
        assert!(fresh > 0, "TJS_DPOP_VECTORS holds no vectors");
        count += fresh;
    }
    println!("{count} interop vectors checked");
}

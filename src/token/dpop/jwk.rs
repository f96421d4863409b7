//! The proof's `jwk`: a public key of the `alg`'s type, its RFC 7638 thumbprint, and the one
//! signature check.
//!
//! Backends, chosen on `bench/dpop-backends` (criterion, same machine): ES256 through ring
//! (about five times faster than p256's arithmetic; ring validates the point as it parses it),
//! Ed25519 through ed25519-dalek's `verify_strict` (as fast as ring and aws-lc-rs, and it
//! refuses small-order keys and non-canonical signatures, with which anyone could "sign" for
//! a key nobody holds). An ES256 signature with a high `s` is accepted: WebCrypto makes them
//! half of the time, and a proof's second valid form buys nothing (replay is keyed on `jti`).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest as _, Sha256};

use super::{DpopAlgorithm, DpopError};

/// Length of a P-256 coordinate and of an Ed25519 public key, in bytes.
const COORDINATE_LEN: usize = 32;
/// Their base64url form.
const COORDINATE_B64_LEN: usize = 43;
/// A raw ES256 (`r || s`) or Ed25519 signature, in bytes.
pub(super) const SIGNATURE_LEN: usize = 64;
/// Its base64url form.
pub(super) const SIGNATURE_B64_LEN: usize = 86;

/// The `jwk` header as written. Every member that would hold private key material is read
/// (and only checked for presence), so that a private key is refused, never silently used
/// as the public one. Other members (`kid`, `key_ops`, `ext`…) are ignored.
#[derive(Deserialize)]
pub(super) struct JwkIn<'a> {
    #[serde(borrow)]
    kty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    crv: Option<Cow<'a, str>>,
    #[serde(borrow)]
    x: Option<Cow<'a, str>>,
    #[serde(borrow)]
    y: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "use")]
    use_: Option<Cow<'a, str>>,
    // Private members: EC and OKP `d`; RSA `d p q dp dq qi oth`; symmetric `k`.
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

/// A public key fit for its algorithm, with the base64url coordinates it was written with
/// (canonical: exactly 43 characters, decoded strictly, so one key has one form).
pub(super) enum ProofKey<'a> {
    /// P-256: `0x04 || x || y`, as ring parses it.
    P256 {
        point: [u8; 1 + 2 * COORDINATE_LEN],
        x: &'a str,
        y: &'a str,
    },
    /// Ed25519.
    Ed25519 {
        key: ed25519_dalek::VerifyingKey,
        x: &'a str,
    },
}

impl<'a> ProofKey<'a> {
    /// The key of a `jwk` header for `alg`.
    ///
    /// # Errors
    /// [`DpopError::PrivateKey`] when any private member is present (checked first),
    /// [`DpopError::InvalidKey`] when the key is not of the algorithm's type and curve or its
    /// coordinates are not canonical base64url of the right length.
    pub(super) fn parse(jwk: &'a JwkIn<'a>, alg: DpopAlgorithm) -> Result<Self, DpopError> {
        let private = [
            &jwk.d, &jwk.p, &jwk.q, &jwk.dp, &jwk.dq, &jwk.qi, &jwk.oth, &jwk.k,
        ];
        if private.iter().any(|m| m.is_some()) {
            return Err(DpopError::PrivateKey);
        }
        if let Some(key_alg) = jwk.alg.as_deref()
            && !alg.names().contains(&key_alg)
        {
            return Err(DpopError::InvalidKey(
                "its alg member is not the proof's alg",
            ));
        }
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(DpopError::InvalidKey("its use member is not sig"));
        }
        let kty = jwk.kty.as_deref().ok_or(DpopError::InvalidKey("no kty"))?;
        let crv = jwk.crv.as_deref();
        match alg {
            DpopAlgorithm::ES256 => {
                if kty != "EC" || crv != Some("P-256") {
                    return Err(DpopError::InvalidKey("ES256 needs an EC key on P-256"));
                }
                let (x, y) = (coordinate(&jwk.x, "x")?, coordinate(&jwk.y, "y")?);
                let mut point = [0u8; 1 + 2 * COORDINATE_LEN];
                point[0] = 0x04;
                decode_coordinate(x, &mut point[1..=COORDINATE_LEN], "x")?;
                decode_coordinate(y, &mut point[1 + COORDINATE_LEN..], "y")?;
                Ok(ProofKey::P256 { point, x, y })
            }
            DpopAlgorithm::EdDSA => {
                if kty != "OKP" || crv != Some("Ed25519") {
                    return Err(DpopError::InvalidKey("EdDSA needs an OKP key on Ed25519"));
                }
                if jwk.y.is_some() {
                    return Err(DpopError::InvalidKey("an Ed25519 key has no y"));
                }
                let x = coordinate(&jwk.x, "x")?;
                let mut raw = [0u8; COORDINATE_LEN];
                decode_coordinate(x, &mut raw, "x")?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map_err(|_| DpopError::InvalidKey("x is not a point of Ed25519"))?;
                if key.is_weak() {
                    return Err(DpopError::InvalidKey(
                        "x is a small-order point, which anyone can sign for",
                    ));
                }
                Ok(ProofKey::Ed25519 { key, x })
            }
        }
    }

    /// Checks `signature` (raw, 64 bytes) over `signed` (the ASCII `header.claims`).
    ///
    /// # Errors
    /// [`DpopError::InvalidSignature`].
    pub(super) fn verify(
        &self,
        signed: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<(), DpopError> {
        let ok = match self {
            ProofKey::P256 { point, .. } => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                &point[..],
            )
            .verify(signed, signature)
            .is_ok(),
            ProofKey::Ed25519 { key, .. } => key
                .verify_strict(signed, &ed25519_dalek::Signature::from_bytes(signature))
                .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(DpopError::InvalidSignature)
        }
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256) of the required members in lexicographic
    /// order, without whitespace. The coordinates are written as they came: strict decoding
    /// of exactly 43 characters admits one form per value.
    pub(super) fn thumbprint(&self) -> String {
        let mut hash = Sha256::new();
        match self {
            ProofKey::P256 { x, y, .. } => {
                hash.update(br#"{"crv":"P-256","kty":"EC","x":""#);
                hash.update(x.as_bytes());
                hash.update(br#"","y":""#);
                hash.update(y.as_bytes());
                hash.update(br#""}"#);
            }
            ProofKey::Ed25519 { x, .. } => {
                hash.update(br#"{"crv":"Ed25519","kty":"OKP","x":""#);
                hash.update(x.as_bytes());
                hash.update(br#""}"#);
            }
        }
        URL_SAFE_NO_PAD.encode(hash.finalize())
    }
}

/// A coordinate member, present and of the one length a 32-byte value has in base64url.
fn coordinate<'a>(
    member: &'a Option<Cow<'a, str>>,
    name: &'static str,
) -> Result<&'a str, DpopError> {
    let value = member.as_deref().ok_or(DpopError::InvalidKey(match name {
        "x" => "no x coordinate",
        _ => "no y coordinate",
    }))?;
    if value.len() == COORDINATE_B64_LEN {
        Ok(value)
    } else {
        Err(DpopError::InvalidKey(match name {
            "x" => "x is not 32 bytes of base64url",
            _ => "y is not 32 bytes of base64url",
        }))
    }
}

fn decode_coordinate(b64: &str, out: &mut [u8], name: &'static str) -> Result<(), DpopError> {
    match URL_SAFE_NO_PAD.decode_slice(b64, out) {
        Ok(COORDINATE_LEN) => Ok(()),
        _ => Err(DpopError::InvalidKey(match name {
            "x" => "x is not 32 bytes of base64url",
            _ => "y is not 32 bytes of base64url",
        })),
    }
}

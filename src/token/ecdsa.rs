//! ECDSA signatures in one form only: low S (`s <= n/2`, `n` the order of the curve).
//!
//! For a valid ECDSA signature `(r, s)`, `(r, n - s)` verifies too: a token signed with ES256 or
//! ES384 would have a byte-different twin that is just as valid, a second entry in the cache of
//! verified tokens and a second key for anything keyed on a token's bytes. `p256` and `p384`
//! sign with either form (their `NORMALIZE_S` is `false`, as the curves' standards do not
//! require one), so tokens issued here are put in the low form, and a presented token in the
//! high form is refused before its signature is checked. The comparison with `n/2` is the curve
//! crates' (`Scalar::is_high`); what is written here is where it runs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use p256::elliptic_curve::scalar::IsHigh as _;

/// The longest ECDSA signature: P-384's, `r` and `s` of 48 bytes each.
const MAX_SIGNATURE: usize = 96;

/// Whether `signature` (the base64url third part of a JWS) is an `alg` ECDSA signature with a
/// high S. `false` for other algorithms, and for a signature that does not decode as one of
/// `alg` (verification refuses it).
pub(super) fn is_high_s(alg: Algorithm, signature: &[u8]) -> bool {
    let mut bytes = [0u8; MAX_SIGNATURE];
    let Ok(len) = URL_SAFE_NO_PAD.decode_slice(signature, &mut bytes) else {
        return false;
    };
    let bytes = &bytes[..len];
    match alg {
        Algorithm::ES256 => p256::ecdsa::Signature::from_slice(bytes)
            .is_ok_and(|signature| signature.s().is_high().into()),
        Algorithm::ES384 => p384::ecdsa::Signature::from_slice(bytes)
            .is_ok_and(|signature| signature.s().is_high().into()),
        _ => false,
    }
}

/// `signature` (base64url, as `jsonwebtoken::crypto::sign` returns it) in the low-S form when
/// `alg` is ES256 or ES384; unchanged otherwise.
pub(super) fn low_s(alg: Algorithm, signature: String) -> String {
    let normalized = match alg {
        Algorithm::ES256 => URL_SAFE_NO_PAD
            .decode(&signature)
            .ok()
            .and_then(|bytes| p256::ecdsa::Signature::from_slice(&bytes).ok())
            .map(|signature| URL_SAFE_NO_PAD.encode(signature.normalize_s().to_bytes())),
        Algorithm::ES384 => URL_SAFE_NO_PAD
            .decode(&signature)
            .ok()
            .and_then(|bytes| p384::ecdsa::Signature::from_slice(&bytes).ok())
            .map(|signature| URL_SAFE_NO_PAD.encode(signature.normalize_s().to_bytes())),
        _ => None,
    };
    normalized.unwrap_or(signature)
}

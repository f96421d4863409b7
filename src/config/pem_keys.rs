//! Asymmetric keys from PEM: loading a private or public key for an algorithm, refusing keys
//! that do not fit it (another key type, another curve, a point off the curve, an RSA modulus
//! under 2048 bits), and reading the key variables of the environment (`JWT_ALGORITHM`,
//! `JWT_PRIVATE_KEY[_FILE]`, `JWT_PREVIOUS_PUBLIC_KEYS[_FILE]`, `JWT_NEXT_PUBLIC_KEYS[_FILE]`).
//!
//! PEM parsing and the key arithmetic are `jsonwebtoken`'s, the `pem` crate's (to split a
//! variable into its blocks), the `pkcs8` crate's (to read which key type and curve a key's own
//! algorithm identifier names: jsonwebtoken guesses an EC key's curve from its length, which
//! takes a secp256k1 key for a P-256 one) and `p256`/`p384`'s (to check a public point is on its
//! curve). What is written here is which checks run, what the error says, and the one piece of
//! syntax that is this crate's own: the `alg: PS256` line that states the algorithm of the PEM
//! block after it, which an RSA key needs because its PEM cannot say whether it verifies RS256 or
//! PS512. A key's public half comes from its JWK form, so the `kid` (its RFC 7638 thumbprint) and
//! the JWKS are computed from the same numbers whatever PEM wrapping the key came in.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, ThumbprintHash};
use jsonwebtoken::{DecodingKey, EncodingKey};
use pkcs8::SubjectPublicKeyInfoRef;

use super::keys::PemKey;
use super::{Algorithm, ConfigError};

mod environment;
mod kinds;

pub(crate) use environment::read_env_keys;
use environment::stated_blocks;
use kinds::kind_of;

/// Shortest accepted RSA modulus, in bits (RFC 7518 §3.3: "a key of size 2048 bits or larger
/// MUST be used").
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// The algorithms `JWT_ALGORITHM` takes: HS256 (the secret), or one signed with a private key.
const ENV_ALGORITHMS: &str =
    "HS256, EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, PS384 or PS512";

/// The algorithms an RSA key may verify; its PEM does not say which.
const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The kinds of asymmetric key, as `jsonwebtoken` loads them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

fn family(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(Family::Ec),
        Algorithm::EdDSA => Some(Family::Ed),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
    }
}

fn key_error(name: &'static str, alg: Algorithm, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        name,
        alg,
        reason: reason.into(),
    }
}

fn refused(name: &'static str, alg: Algorithm, reason: impl Into<String>) -> ConfigError {
    ConfigError::KeyRefused {
        name,
        alg,
        reason: reason.into(),
    }
}

fn no_algorithm(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::KeyAlgorithm {
        name,
        reason: reason.into(),
    }
}

pub(crate) fn not_a_pem_algorithm(name: &'static str, alg: Algorithm) -> ConfigError {
    key_error(
        name,
        alg,
        "HMAC algorithms take the secret (JWT_SECRET), not a PEM key",
    )
}
/// Refuses a public EC point that is not on its curve (P-256 or P-384): jsonwebtoken would take
/// it, publish it, and refuse every token at verification.
fn check_point(name: &'static str, alg: Algorithm, block: &pem::Pem) -> Result<(), ConfigError> {
    let Ok(spki) = SubjectPublicKeyInfoRef::try_from(block.contents()) else {
        return Ok(());
    };
    let point = spki.subject_public_key.raw_bytes();
    let on_curve = match alg {
        Algorithm::ES256 => p256::PublicKey::from_sec1_bytes(point).is_ok(),
        Algorithm::ES384 => p384::PublicKey::from_sec1_bytes(point).is_ok(),
        _ => true,
    };
    if on_curve {
        Ok(())
    } else {
        Err(refused(
            name,
            alg,
            "the public key is not a point on the curve its PEM names",
        ))
    }
}

/// Reads the one PEM block of `pem` and refuses it unless it holds the `private` or public half
/// of a key for `alg`; `fix` says how to name the key's own algorithm.
fn checked_block(
    name: &'static str,
    alg: Algorithm,
    pem: &[u8],
    private: bool,
    fix: &str,
) -> Result<(), ConfigError> {
    let half = if private { "private" } else { "public" };
    let block = pem::parse(pem)
        .map_err(|e| key_error(name, alg, format!("expected a PKCS#8 PEM {half} key ({e})")))?;
    let (is_private, kind) = kind_of(&block).map_err(|reason| key_error(name, alg, reason))?;
    if is_private != private {
        return Err(refused(
            name,
            alg,
            format!(
                "the PEM holds a {} key where a {half} key is expected",
                if private { "public" } else { "private" }
            ),
        ));
    }
    if !kind.algorithms().contains(&alg) {
        return Err(refused(
            name,
            alg,
            format!(
                "the PEM holds {}, not {alg}: {fix}, or give a key for {alg}",
                kind.describe()
            ),
        ));
    }
    if !private {
        check_point(name, alg, &block)?;
    }
    Ok(())
}

/// Refuses an RSA key under [`MIN_RSA_BITS`] (the type and curve of every key are
/// [`checked_block`]'s).
fn check_rsa_bits(name: &'static str, alg: Algorithm, jwk: &Jwk) -> Result<(), ConfigError> {
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return Ok(());
    };
    use base64::Engine as _;
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&rsa.n)
        .map_err(|e| key_error(name, alg, e.to_string()))?;
    let bits = modulus_bits(&n);
    if bits < MIN_RSA_BITS {
        return Err(refused(
            name,
            alg,
            format!(
                "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required \
                 (make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072`)"
            ),
        ));
    }
    Ok(())
}

/// The size of a big-endian modulus in bits.
fn modulus_bits(n: &[u8]) -> usize {
    let n = match n.iter().position(|&b| b != 0) {
        Some(first) => &n[first..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
}

/// Refuses a PEM whose `alg:` line names another algorithm than the one it is given for.
fn check_stated(name: &'static str, alg: Algorithm, pem: &[u8]) -> Result<(), ConfigError> {
    let Ok(text) = std::str::from_utf8(pem) else {
        return Ok(());
    };
    match stated_blocks(name, text)?
        .into_iter()
        .find_map(|stated| stated.alg.filter(|&stated| stated != alg))
    {
        None => Ok(()),
        Some(stated) => Err(ConfigError::Conflict {
            name,
            reason: format!(
                "the key in {name} is used for {alg}, and its PEM says `alg: {stated}`"
            ),
            fix:
                "give the key the one algorithm it signs, on its `alg:` line and in JWT_ALGORITHM \
                  (or the builder's algorithm argument), or remove the line"
                    .to_owned(),
        }),
    }
}

/// A private key for `alg` and the public key derived from it.
///
/// # Errors
/// [`ConfigError::Key`] when the PEM is no private key, [`ConfigError::KeyRefused`] when it is
/// one of another type or curve, or a weak RSA key.
pub(crate) fn load_private(
    name: &'static str,
    alg: Algorithm,
    pem: &[u8],
) -> Result<PemKey, ConfigError> {
    let family = family(alg).ok_or_else(|| not_a_pem_algorithm(name, alg))?;
    check_stated(name, alg, pem)?;
    checked_block(
        name,
        alg,
        pem,
        true,
        "set the algorithm (JWT_ALGORITHM) to match the key",
    )?;
    let encoding = match family {
        Family::Rsa => EncodingKey::from_rsa_pem(pem),
        Family::Ec => EncodingKey::from_ec_pem(pem),
        Family::Ed => EncodingKey::from_ed_pem(pem),
    }
    .map_err(|e| {
        key_error(
            name,
            alg,
            format!("expected a PKCS#8 PEM private key ({e})"),
        )
    })?;
    let jwk = Jwk::from_encoding_key(&encoding, alg.to_jwt()).map_err(|e| {
        key_error(
            name,
            alg,
            format!("expected a PKCS#8 PEM private key ({e})"),
        )
    })?;
    check_rsa_bits(name, alg, &jwk)?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| key_error(name, alg, e.to_string()))?;
    Ok(PemKey {
        alg,
        name,
        encoding: Some(encoding),
        decoding,
    })
}

/// A public key for `alg`.
///
/// # Errors
/// As [`load_private`].
pub(crate) fn load_public(
    name: &'static str,
    alg: Algorithm,
    pem: &[u8],
) -> Result<PemKey, ConfigError> {
    let family = family(alg).ok_or_else(|| not_a_pem_algorithm(name, alg))?;
    check_stated(name, alg, pem)?;
    checked_block(
        name,
        alg,
        pem,
        false,
        "state the key's own algorithm (`alg: NAME` on the line before its PEM block)",
    )?;
    let decoding = match family {
        Family::Rsa => DecodingKey::from_rsa_pem(pem),
        Family::Ec => DecodingKey::from_ec_pem(pem),
        Family::Ed => DecodingKey::from_ed_pem(pem),
    }
    .map_err(|e| key_error(name, alg, format!("expected a PKCS#8 PEM public key ({e})")))?;
    let jwk = Jwk::from_decoding_key(&decoding, Some(alg.to_jwt()))
        .map_err(|e| key_error(name, alg, format!("expected a PKCS#8 PEM public key ({e})")))?;
    check_rsa_bits(name, alg, &jwk)?;
    Ok(PemKey {
        alg,
        name,
        encoding: None,
        decoding,
    })
}

/// The RFC 7638 thumbprint of a key's public half.
pub(crate) fn thumbprint(key: &PemKey) -> Option<String> {
    Jwk::from_decoding_key(&key.decoding, Some(key.alg.to_jwt()))
        .and_then(|jwk| jwk.thumbprint(ThumbprintHash::SHA256))
        .ok()
}

/// Refuses a public key that is not the private key's (`with_signing_key_pem` takes both).
pub(crate) fn check_pair(
    name: &'static str,
    private: &PemKey,
    public: &PemKey,
) -> Result<(), ConfigError> {
    if thumbprint(private).is_some() && thumbprint(private) == thumbprint(public) {
        return Ok(());
    }
    Err(refused(
        name,
        private.alg,
        "the public key is not the public half of the private key",
    ))
}
#[cfg(test)]
mod tests;

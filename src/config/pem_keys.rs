//! Asymmetric keys from PEM: loading a private or public key for an algorithm, refusing keys
//! that do not fit it (another key type, another curve, an RSA modulus under 2048 bits), and
//! reading the key variables of the environment (`JWT_ALGORITHM`, `JWT_PRIVATE_KEY[_FILE]`,
//! `JWT_PREVIOUS_PUBLIC_KEYS[_FILE]`, `JWT_NEXT_PUBLIC_KEYS[_FILE]`).
//!
//! PEM parsing and the key arithmetic are `jsonwebtoken`'s (and the `pem` crate's, to split a
//! file of several public keys): what is written here is which checks run and what the error
//! says. A key's public half comes from its JWK form, so the `kid` (its RFC 7638 thumbprint)
//! and the JWKS are computed from the same numbers whatever PEM wrapping the key came in.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{DecodingKey, EncodingKey};

use super::env::Env;
use super::keys::PemKey;
use super::{Algorithm, ConfigError};

/// Shortest accepted RSA modulus, in bits (RFC 7518 §3.3: "a key of size 2048 bits or larger
/// MUST be used").
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// The algorithms `JWT_ALGORITHM` takes: HS256 (the secret), or one signed with a private key.
const ENV_ALGORITHMS: &str =
    "HS256, EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, PS384 or PS512";

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

pub(crate) fn not_a_pem_algorithm(name: &'static str, alg: Algorithm) -> ConfigError {
    key_error(
        name,
        alg,
        "HMAC algorithms take the secret (JWT_SECRET), not a PEM key",
    )
}

/// What a PEM holds, as an error message says it: the key type and the algorithms it signs,
/// or `None` when it is no key `jsonwebtoken` reads.
fn describe(pem: &[u8], private: bool) -> Option<(&'static str, &'static str)> {
    let is = |f: Family| {
        if private {
            match f {
                Family::Rsa => EncodingKey::from_rsa_pem(pem).is_ok(),
                Family::Ec => EncodingKey::from_ec_pem(pem).is_ok(),
                Family::Ed => EncodingKey::from_ed_pem(pem).is_ok(),
            }
        } else {
            match f {
                Family::Rsa => DecodingKey::from_rsa_pem(pem).is_ok(),
                Family::Ec => DecodingKey::from_ec_pem(pem).is_ok(),
                Family::Ed => DecodingKey::from_ed_pem(pem).is_ok(),
            }
        }
    };
    if is(Family::Ed) {
        return Some(("an Ed25519 key", "EdDSA"));
    }
    if is(Family::Rsa) {
        return Some(("an RSA key", "RS256, RS384, RS512, PS256, PS384 or PS512"));
    }
    if is(Family::Ec) {
        return Some(match ec_curve(pem, private) {
            Some(EllipticCurve::P256) => ("a P-256 EC key", "ES256"),
            Some(EllipticCurve::P384) => ("a P-384 EC key", "ES384"),
            _ => ("an EC key on a curve this crate does not use", "none"),
        });
    }
    None
}

/// The curve of an EC key in PEM.
fn ec_curve(pem: &[u8], private: bool) -> Option<EllipticCurve> {
    let jwk = if private {
        let key = EncodingKey::from_ec_pem(pem).ok()?;
        [
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::Algorithm::ES384,
        ]
        .into_iter()
        .find_map(|alg| Jwk::from_encoding_key(&key, alg).ok())?
    } else {
        Jwk::from_decoding_key(&DecodingKey::from_ec_pem(pem).ok()?, None).ok()?
    };
    match jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => Some(ec.curve),
        _ => None,
    }
}

/// The error for a PEM that did not load as a key for `alg`: a mismatch when it is another kind
/// of key, else what the parser said.
fn unreadable(
    name: &'static str,
    alg: Algorithm,
    pem: &[u8],
    private: bool,
    parser: &jsonwebtoken::errors::Error,
) -> ConfigError {
    let half = if private { "private" } else { "public" };
    match describe(pem, private) {
        Some((what, algs)) if !algs.split(", ").any(|a| a == alg.as_str()) => refused(
            name,
            alg,
            format!(
                "the PEM holds {what}, which signs {algs}, not {alg}: set the algorithm \
                 (JWT_ALGORITHM) to match the key, or give a key for {alg}"
            ),
        ),
        None if describe(pem, !private).is_some() => refused(
            name,
            alg,
            format!(
                "the PEM holds a {} key where a {half} key is expected",
                if private { "public" } else { "private" }
            ),
        ),
        _ => key_error(
            name,
            alg,
            format!("expected a PKCS#8 PEM {half} key ({parser})"),
        ),
    }
}

/// Refuses a public key that does not fit `alg`: an RSA modulus under [`MIN_RSA_BITS`], an EC
/// key on another curve.
fn check_public(name: &'static str, alg: Algorithm, jwk: &Jwk) -> Result<(), ConfigError> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
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
        AlgorithmParameters::EllipticCurve(ec) => {
            let wanted = match alg {
                Algorithm::ES384 => EllipticCurve::P384,
                _ => EllipticCurve::P256,
            };
            if ec.curve == wanted {
                Ok(())
            } else {
                Err(refused(
                    name,
                    alg,
                    format!(
                        "the EC key is on curve {:?}, and {alg} needs {wanted:?}",
                        ec.curve
                    ),
                ))
            }
        }
        _ => Ok(()),
    }
}

/// The size of a big-endian modulus in bits.
fn modulus_bits(n: &[u8]) -> usize {
    let n = match n.iter().position(|&b| b != 0) {
        Some(first) => &n[first..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
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
    let encoding = match family {
        Family::Rsa => EncodingKey::from_rsa_pem(pem),
        Family::Ec => EncodingKey::from_ec_pem(pem),
        Family::Ed => EncodingKey::from_ed_pem(pem),
    }
    .map_err(|e| unreadable(name, alg, pem, true, &e))?;
    let jwk = Jwk::from_encoding_key(&encoding, alg.to_jwt())
        .map_err(|e| unreadable(name, alg, pem, true, &e))?;
    check_public(name, alg, &jwk)?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| key_error(name, alg, e.to_string()))?;
    Ok(PemKey {
        alg,
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
    let decoding = match family {
        Family::Rsa => DecodingKey::from_rsa_pem(pem),
        Family::Ec => DecodingKey::from_ec_pem(pem),
        Family::Ed => DecodingKey::from_ed_pem(pem),
    }
    .map_err(|e| unreadable(name, alg, pem, false, &e))?;
    let jwk = Jwk::from_decoding_key(&decoding, Some(alg.to_jwt()))
        .map_err(|e| unreadable(name, alg, pem, false, &e))?;
    check_public(name, alg, &jwk)?;
    Ok(PemKey {
        alg,
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

/// The algorithm a published public key verifies: its own for Ed25519 and EC keys; for RSA, the
/// signing algorithm when that is an RSA one, else RS256.
fn public_algorithm(
    name: &'static str,
    pem: &[u8],
    signing: Algorithm,
) -> Result<Algorithm, ConfigError> {
    if DecodingKey::from_ed_pem(pem).is_ok() {
        return Ok(Algorithm::EdDSA);
    }
    if DecodingKey::from_rsa_pem(pem).is_ok() {
        return Ok(match family(signing) {
            Some(Family::Rsa) => signing,
            _ => Algorithm::RS256,
        });
    }
    match ec_curve(pem, false) {
        Some(EllipticCurve::P256) => Ok(Algorithm::ES256),
        Some(EllipticCurve::P384) => Ok(Algorithm::ES384),
        _ => Err(refused(
            name,
            signing,
            "a PEM block there is no Ed25519, RSA, P-256 or P-384 public key",
        )),
    }
}

/// The PEM in `inline` (the PEM itself) or in the file `file` names, which may not both be
/// set; with the name of the variable it came from. In an inline value a literal `\n` stands
/// for a line break, as many deployment tools cannot hold one.
fn pem_variable(
    env: &Env<'_>,
    inline: &'static str,
    file: &'static str,
) -> Result<Option<(&'static str, Vec<u8>)>, ConfigError> {
    match (env.raw(inline), env.get(file)) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict {
            name: inline,
            reason: format!("both {inline} and {file} are set"),
            fix: format!("set one of them: {inline} to the PEM itself, or {file} to its path"),
        }),
        (Some(pem), None) => {
            let pem = if pem.contains('\n') {
                pem
            } else {
                pem.replace("\\n", "\n")
            };
            Ok(Some((inline, pem.into_bytes())))
        }
        (None, Some(path)) => std::fs::read(&path)
            .map(|pem| Some((file, pem)))
            .map_err(|e| ConfigError::KeyFile {
                name: file,
                path,
                reason: e.to_string(),
            }),
        (None, None) => Ok(None),
    }
}

/// The PEM blocks of a variable of public keys, each one re-encoded on its own; a private key
/// there is refused.
fn public_blocks(
    name: &'static str,
    pem: &[u8],
    signing: Algorithm,
) -> Result<Vec<String>, ConfigError> {
    let blocks = pem::parse_many(pem).map_err(|e| key_error(name, signing, e.to_string()))?;
    if blocks.is_empty() {
        return Err(key_error(
            name,
            signing,
            "no PEM block found (expected one or more `-----BEGIN PUBLIC KEY-----` blocks)",
        ));
    }
    blocks
        .iter()
        .map(|block| match block.tag() {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => Ok(pem::encode(block)),
            tag => Err(refused(
                name,
                signing,
                format!(
                    "it holds a `{tag}` block, and only public keys belong there \
                     (`openssl pkey -in private.pem -pubout` prints the public key)"
                ),
            )),
        })
        .collect()
}

/// What the key variables of the environment say.
pub(crate) struct EnvKeys {
    /// The signing key, when `JWT_ALGORITHM` is asymmetric.
    pub(crate) signing: Option<PemKey>,
    /// Previous and next public keys: accepted and published.
    pub(crate) published: Vec<PemKey>,
}

/// Reads `JWT_ALGORITHM`, `JWT_PRIVATE_KEY` / `JWT_PRIVATE_KEY_FILE`, and the previous and next
/// public keys.
///
/// # Errors
/// A [`ConfigError`] naming the variable: an unknown algorithm, a private key with HS256 or
/// none with an asymmetric algorithm, both the inline and the file variable set, a file that
/// cannot be read, a key that does not load, does not fit the algorithm or is too weak.
pub(crate) fn read_env_keys(env: &Env<'_>) -> Result<EnvKeys, ConfigError> {
    let alg = match env.get("JWT_ALGORITHM") {
        None => Algorithm::HS256,
        Some(text) => match text.parse::<Algorithm>() {
            Ok(alg) if alg == Algorithm::HS256 || family(alg).is_some() => alg,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "JWT_ALGORITHM",
                    value: text,
                    expected: ENV_ALGORITHMS,
                });
            }
        },
    };
    let private = pem_variable(env, "JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_FILE")?;
    let signing = match (family(alg), private) {
        (None, None) => None,
        (None, Some((name, _))) => {
            return Err(ConfigError::Conflict {
                name: "JWT_ALGORITHM",
                reason: format!(
                    "{name} is set, but JWT_ALGORITHM is HS256 (the default), which signs with JWT_SECRET"
                ),
                fix: format!(
                    "set JWT_ALGORITHM to the key's algorithm (EdDSA, ES256, RS256, ...), or unset {name}"
                ),
            });
        }
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                name: "JWT_PRIVATE_KEY_FILE",
                hint: "JWT_ALGORITHM names an asymmetric algorithm, which signs with a private key: \
                       set JWT_PRIVATE_KEY_FILE to a PKCS#8 PEM file (or JWT_PRIVATE_KEY to the PEM itself)",
            });
        }
        (Some(_), Some((name, pem))) => Some(load_private(name, alg, &pem)?),
    };
    let mut published = Vec::new();
    for (inline, file) in [
        ("JWT_PREVIOUS_PUBLIC_KEYS", "JWT_PREVIOUS_PUBLIC_KEYS_FILE"),
        ("JWT_NEXT_PUBLIC_KEYS", "JWT_NEXT_PUBLIC_KEYS_FILE"),
    ] {
        let Some((name, pem)) = pem_variable(env, inline, file)? else {
            continue;
        };
        for block in public_blocks(name, &pem, alg)? {
            let key_alg = public_algorithm(name, block.as_bytes(), alg)?;
            published.push(load_public(name, key_alg, block.as_bytes())?);
        }
    }
    Ok(EnvKeys { signing, published })
}

#[cfg(test)]
mod tests {
    use super::modulus_bits;

    #[test]
    fn modulus_bits_count_from_the_first_set_bit() {
        assert_eq!(modulus_bits(&[]), 0);
        assert_eq!(modulus_bits(&[0, 0]), 0);
        assert_eq!(modulus_bits(&[0, 1]), 1);
        assert_eq!(modulus_bits(&[0x80; 256]), 2048);
        assert_eq!(modulus_bits(&[0, 0x7f, 0]), 15);
    }
}

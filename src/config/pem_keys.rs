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
use pkcs8::{ObjectIdentifier, PrivateKeyInfoRef, SubjectPublicKeyInfoRef};

use super::env::Env;
use super::keys::PemKey;
use super::{Algorithm, ConfigError};

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

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Names of the key types and curves an operator may have at hand that this crate does not
/// verify, for the error message.
const OTHER_NAMES: [(&str, &str); 10] = [
    ("1.3.132.0.10", "secp256k1"),
    ("1.3.132.0.35", "P-521"),
    ("1.3.36.3.3.2.8.1.1.7", "brainpoolP256r1"),
    ("1.3.36.3.3.2.8.1.1.11", "brainpoolP384r1"),
    ("1.3.36.3.3.2.8.1.1.13", "brainpoolP512r1"),
    ("1.3.101.113", "Ed448"),
    ("1.3.101.110", "X25519"),
    ("1.3.101.111", "X448"),
    ("1.2.840.113549.1.1.10", "RSASSA-PSS (a PSS-only RSA key)"),
    ("1.2.840.10040.4.1", "DSA"),
];

fn oid_name(oid: Option<ObjectIdentifier>) -> String {
    let Some(oid) = oid else {
        return "no named curve".to_owned();
    };
    let dotted = oid.to_string();
    match OTHER_NAMES.iter().find(|(o, _)| *o == dotted) {
        Some((_, name)) => format!("{name} (OID {dotted})"),
        None => format!("OID {dotted}"),
    }
}

/// Which key a PEM block holds, as the key's own algorithm identifier says (PKCS#8
/// `PrivateKeyInfo`, SubjectPublicKeyInfo), or the block's tag for PKCS#1 RSA keys.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Rsa,
    Ed25519,
    P256,
    P384,
    /// An EC key on another curve, named.
    OtherCurve(String),
    /// Another type of key, named.
    Other(String),
}

impl Kind {
    fn from_oids(oid: ObjectIdentifier, parameters: Option<ObjectIdentifier>) -> Self {
        match (oid, parameters) {
            (RSA_ENCRYPTION, _) => Self::Rsa,
            (ID_ED25519, _) => Self::Ed25519,
            (ID_EC_PUBLIC_KEY, Some(SECP256R1)) => Self::P256,
            (ID_EC_PUBLIC_KEY, Some(SECP384R1)) => Self::P384,
            (ID_EC_PUBLIC_KEY, curve) => Self::OtherCurve(oid_name(curve)),
            (oid, _) => Self::Other(oid_name(Some(oid))),
        }
    }

    /// The algorithms a key of this kind verifies.
    fn algorithms(&self) -> &'static [Algorithm] {
        match self {
            Self::Rsa => &RSA_ALGORITHMS,
            Self::Ed25519 => &[Algorithm::EdDSA],
            Self::P256 => &[Algorithm::ES256],
            Self::P384 => &[Algorithm::ES384],
            Self::OtherCurve(_) | Self::Other(_) => &[],
        }
    }

    /// The algorithm of a key of this kind, when its PEM says it (all but RSA keys).
    fn implied(&self) -> Option<Algorithm> {
        match self.algorithms() {
            [alg] => Some(*alg),
            _ => None,
        }
    }

    /// The key and what it signs, as an error message says them.
    fn describe(&self) -> String {
        let algs = self
            .algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>();
        let what = match self {
            Self::Rsa => "an RSA key".to_owned(),
            Self::Ed25519 => "an Ed25519 key".to_owned(),
            Self::P256 => "a P-256 EC key".to_owned(),
            Self::P384 => "a P-384 EC key".to_owned(),
            Self::OtherCurve(curve) => format!("an EC key on curve {curve}"),
            Self::Other(kind) => format!("a key of type {kind}"),
        };
        match algs.as_slice() {
            [] => format!(
                "{what}, which this crate does not verify (it takes Ed25519, P-256, P-384 and \
                 RSA keys)"
            ),
            [.., last] if algs.len() > 1 => format!(
                "{what}, which signs {} or {last}",
                algs[..algs.len() - 1].join(", ")
            ),
            _ => format!("{what}, which signs {}", algs.join(", ")),
        }
    }
}

/// Whether a PEM block holds a private key, and which kind of key; `Err` with the reason when it
/// holds no key this crate reads.
fn kind_of(block: &pem::Pem) -> Result<(bool, Kind), String> {
    let der = block.contents();
    let asn1 = |e: &dyn std::fmt::Display| format!("the `{}` block is no key: {e}", block.tag());
    match block.tag() {
        "RSA PUBLIC KEY" => Ok((false, Kind::Rsa)),
        "RSA PRIVATE KEY" => Ok((true, Kind::Rsa)),
        "PUBLIC KEY" => {
            let spki = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| asn1(&e))?;
            let (oid, parameters) = spki.algorithm.oids().map_err(|e| asn1(&e))?;
            Ok((false, Kind::from_oids(oid, parameters)))
        }
        "PRIVATE KEY" => {
            let info = PrivateKeyInfoRef::try_from(der).map_err(|e| asn1(&e))?;
            let (oid, parameters) = info.algorithm.oids().map_err(|e| asn1(&e))?;
            Ok((true, Kind::from_oids(oid, parameters)))
        }
        "ENCRYPTED PRIVATE KEY" => Err("the private key is encrypted: decrypt it \
             (`openssl pkey -in key.pem -out plain.pem`) and keep the result as secret"
            .to_owned()),
        "EC PRIVATE KEY" => Err("a SEC1 `EC PRIVATE KEY` block: convert it to PKCS#8 \
             (`openssl pkcs8 -topk8 -nocrypt -in key.pem -out pkcs8.pem`)"
            .to_owned()),
        tag => Err(format!("a `{tag}` block, which holds no key")),
    }
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

/// The PEM in `inline` (the PEM itself) or in the file `file` names, which may not both be
/// set; with the name of the variable it came from. In an inline value a literal `\n` stands
/// for a line break, as many deployment tools cannot hold one.
fn pem_variable(
    env: &Env<'_>,
    inline: &'static str,
    file: &'static str,
) -> Result<Option<(&'static str, String)>, ConfigError> {
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
            Ok(Some((inline, pem)))
        }
        (None, Some(path)) => std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "it is not text".to_owned()))
            .map(|pem| Some((file, pem)))
            .map_err(|reason| ConfigError::KeyFile {
                name: file,
                path,
                reason,
            }),
        (None, None) => Ok(None),
    }
}

/// A PEM block of a key variable, with the algorithm an `alg:` line before it states.
struct Stated<'a> {
    alg: Option<Algorithm>,
    pem: &'a str,
}

/// Splits the text of a key variable into its PEM blocks, each with the algorithm stated on a
/// line `alg: NAME` before it (after the previous block). Other text between blocks is ignored,
/// as every PEM reader ignores it (RFC 7468 §2), so a file with `alg:` lines stays a PEM file
/// for `openssl`; a line that starts `alg` and a `:` or `=` must be an exact statement.
///
/// # Errors
/// [`ConfigError::KeyAlgorithm`] for an `alg:` line that names no asymmetric algorithm, two of
/// them before one block, or one after the last block.
fn stated_blocks<'a>(name: &'static str, text: &'a str) -> Result<Vec<Stated<'a>>, ConfigError> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    let mut blocks = Vec::new();
    let mut rest = text;
    loop {
        let number = blocks.len() + 1;
        let block_end = rest.find(BEGIN).map(|start| {
            // The end of `-----END TAG-----`, or of the text (then `pem` says what is missing).
            let end = rest[start..]
                .find(END)
                .map(|e| start + e + END.len())
                .and_then(|e| rest[e..].find("-----").map(|c| e + c + "-----".len()))
                .unwrap_or(rest.len());
            (start, end)
        });
        let before = &rest[..block_end.map_or(rest.len(), |(start, _)| start)];
        let alg = alg_line(name, before, number)?;
        let Some((start, end)) = block_end else {
            if alg.is_some() {
                return Err(no_algorithm(
                    name,
                    "an `alg:` line after the last PEM block states the algorithm of no key",
                ));
            }
            return Ok(blocks);
        };
        blocks.push(Stated {
            alg,
            pem: &rest[start..end],
        });
        rest = &rest[end..];
    }
}

/// The algorithm an `alg: NAME` line in `text` states for PEM block `number`, if any.
fn alg_line(
    name: &'static str,
    text: &str,
    number: usize,
) -> Result<Option<Algorithm>, ConfigError> {
    let mut stated = None;
    for line in text.lines().map(str::trim) {
        let Some(rest) = line
            .get(..3)
            .filter(|word| word.eq_ignore_ascii_case("alg"))
            .map(|_| line[3..].trim_start())
        else {
            continue;
        };
        let value = match rest.strip_prefix(':') {
            Some(value) => value.trim(),
            None if rest.starts_with('=') => {
                return Err(no_algorithm(
                    name,
                    format!(
                        "the line `{line}` before PEM block {number}: write the algorithm as \
                         `alg: NAME`, e.g. `alg: PS256`"
                    ),
                ));
            }
            // A word that starts with "alg" (explanatory text).
            None => continue,
        };
        let alg = match value.parse::<Algorithm>() {
            Ok(alg) if !alg.is_hmac() => alg,
            Ok(alg) => {
                return Err(no_algorithm(
                    name,
                    format!(
                        "the line `{line}` before PEM block {number} names {alg}, which is \
                         keyed with JWT_SECRET, not a PEM key"
                    ),
                ));
            }
            Err(unknown) => {
                return Err(no_algorithm(
                    name,
                    format!("the line `{line}` before PEM block {number}: {unknown}"),
                ));
            }
        };
        if stated.replace(alg).is_some() {
            return Err(no_algorithm(
                name,
                format!("PEM block {number} has two `alg:` lines before it; keep one"),
            ));
        }
    }
    Ok(stated)
}

/// The public keys of a key variable, each with its own algorithm: the one its `alg:` line
/// states, else the one its curve implies. An RSA key must state it.
fn public_keys(
    name: &'static str,
    text: &str,
    signing: Algorithm,
) -> Result<Vec<PemKey>, ConfigError> {
    let blocks = stated_blocks(name, text)?;
    if blocks.is_empty() {
        return Err(key_error(
            name,
            signing,
            "no PEM block found (expected one or more `-----BEGIN PUBLIC KEY-----` blocks)",
        ));
    }
    let mut keys = Vec::with_capacity(blocks.len());
    for (index, stated) in blocks.iter().enumerate() {
        let number = index + 1;
        let block = pem::parse(stated.pem).map_err(|e| key_error(name, signing, e.to_string()))?;
        if !matches!(block.tag(), "PUBLIC KEY" | "RSA PUBLIC KEY") {
            return Err(refused(
                name,
                signing,
                format!(
                    "it holds a `{}` block, and only public keys belong there \
                     (`openssl pkey -in private.pem -pubout` prints the public key)",
                    block.tag()
                ),
            ));
        }
        let alg = match stated.alg {
            Some(alg) => alg,
            None => {
                let (_, kind) =
                    kind_of(&block).map_err(|reason| key_error(name, signing, reason))?;
                match kind.implied() {
                    Some(alg) => alg,
                    None if kind == Kind::Rsa => {
                        return Err(no_algorithm(
                            name,
                            format!(
                                "PEM block {number} is an RSA public key, which may verify RS256, \
                                 RS384, RS512, PS256, PS384 or PS512, and its PEM cannot say which: \
                                 write the algorithm of its tokens on the line before its \
                                 `-----BEGIN` line, e.g. `alg: PS256`"
                            ),
                        ));
                    }
                    None => {
                        return Err(no_algorithm(
                            name,
                            format!("PEM block {number} holds {}", kind.describe()),
                        ));
                    }
                }
            }
        };
        keys.push(load_public(name, alg, stated.pem.as_bytes())?);
    }
    Ok(keys)
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
/// cannot be read, a key that does not load, does not fit the algorithm or is too weak, an RSA
/// public key without its `alg:` line.
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
        (Some(_), Some((name, pem))) => Some(load_private(name, alg, pem.as_bytes())?),
    };
    let mut published = Vec::new();
    for (inline, file) in [
        ("JWT_PREVIOUS_PUBLIC_KEYS", "JWT_PREVIOUS_PUBLIC_KEYS_FILE"),
        ("JWT_NEXT_PUBLIC_KEYS", "JWT_NEXT_PUBLIC_KEYS_FILE"),
    ] {
        if let Some((name, text)) = pem_variable(env, inline, file)? {
            published.extend(public_keys(name, &text, alg)?);
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

//! Signing and verification keys: one per `kid`, each bound to one algorithm.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Sha256, Sha384, Sha512};

use crate::config::{Algorithm as Alg, ConfigError, PemKey, SessionConfig, key_id};

use super::claims::OutHeader;

#[derive(Clone)]
pub(super) enum HmacKey {
    S256(Hmac<Sha256>),
    S384(Hmac<Sha384>),
    S512(Hmac<Sha512>),
}

impl HmacKey {
    pub(super) fn new(alg: Algorithm, secret: &[u8]) -> Self {
        match alg {
            Algorithm::HS384 => {
                HmacKey::S384(Hmac::new_from_slice(secret).expect("HMAC takes any key"))
            }
            Algorithm::HS512 => {
                HmacKey::S512(Hmac::new_from_slice(secret).expect("HMAC takes any key"))
            }
            _ => HmacKey::S256(Hmac::new_from_slice(secret).expect("HMAC takes any key")),
        }
    }

    /// Constant-time check of `signature` over `message`.
    pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        fn check<M: Mac + Clone>(key: &M, message: &[u8], signature: &[u8]) -> bool {
            let mut mac = key.clone();
            mac.update(message);
            mac.verify_slice(signature).is_ok()
        }
        match self {
            HmacKey::S256(k) => check(k, message, signature),
            HmacKey::S384(k) => check(k, message, signature),
            HmacKey::S512(k) => check(k, message, signature),
        }
    }

    pub(super) fn sign(&self, message: &[u8]) -> Vec<u8> {
        fn tag<M: Mac + Clone>(key: &M, message: &[u8]) -> Vec<u8> {
            let mut mac = key.clone();
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            HmacKey::S256(k) => tag(k, message),
            HmacKey::S384(k) => tag(k, message),
            HmacKey::S512(k) => tag(k, message),
        }
    }
}

// The HMAC state is the hot path and sits inline on purpose; a key set holds a handful of keys.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(super) enum Verifier {
    Hmac(HmacKey),
    Public(DecodingKey),
}

#[derive(Clone)]
pub(super) struct VerifyKey {
    pub(super) kid: Box<str>,
    pub(super) alg: Algorithm,
    pub(super) verifier: Verifier,
}

#[allow(clippy::large_enum_variant)]
pub(super) enum SignerKey {
    Hmac(HmacKey),
    Private(EncodingKey),
}

/// Exact, case-sensitive names (RFC 7518): `none`, `None`, `NONE` and friends are all refused.
pub(super) fn parse_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

pub(super) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

impl VerifyKey {
    /// The HS256 key of a secret, named by its key id.
    fn hmac(secret: &[u8]) -> Self {
        Self {
            kid: key_id(Alg::HS256, secret).into(),
            alg: Algorithm::HS256,
            verifier: Verifier::Hmac(HmacKey::new(Algorithm::HS256, secret)),
        }
    }

    /// The public key of a PEM, bound to its algorithm and named by its JWK thumbprint.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when the key has no JWK form (a malformed RSA key).
    fn public(pem: &PemKey, name: &'static str) -> Result<Self, ConfigError> {
        Ok(Self {
            kid: thumbprint(pem, name)?.into(),
            alg: pem.alg.to_jwt(),
            verifier: Verifier::Public(pem.decoding.clone()),
        })
    }
}

/// A public key's `kid`: its RFC 7638 JWK thumbprint (SHA-256 over the canonical JSON of the
/// required members, base64url), the name a JWKS consumer computes for itself. It depends on
/// the key alone, not on the PEM's wrapping or on how another crate prints an algorithm.
fn thumbprint(pem: &PemKey, name: &'static str) -> Result<String, ConfigError> {
    Jwk::from_decoding_key(&pem.decoding, Some(pem.alg.to_jwt()))
        .and_then(|jwk| jwk.thumbprint(ThumbprintHash::SHA256))
        .map_err(|e| ConfigError::Key {
            name,
            alg: pem.alg,
            reason: e.to_string(),
        })
}

/// The keys of a configuration: the signer, and every key a token may name.
pub(super) struct KeySet {
    /// The algorithm new tokens are signed with.
    pub(super) alg: Algorithm,
    /// base64url of the JSON header of new tokens, computed once.
    pub(super) header_b64: String,
    pub(super) signer: SignerKey,
    pub(super) keys: Vec<VerifyKey>,
}

impl KeySet {
    /// The current secret (or the signing PEM), then previous secrets and verification PEMs.
    ///
    /// # Errors
    /// [`ConfigError::Conflict`] when the signing PEM has no private key.
    pub(super) fn from_config(config: &SessionConfig) -> Result<Self, ConfigError> {
        let tokens = config.tokens();
        let current = VerifyKey::hmac(tokens.secret().expose());
        let signing = tokens
            .signing_pem()
            .map(|pem| VerifyKey::public(pem, "signing_key_pem"))
            .transpose()?;
        let (alg, kid, signer) = match tokens.signing_pem().zip(signing.as_ref()) {
            Some((pem, key)) => {
                let encoding = pem.encoding.clone().ok_or(ConfigError::Conflict {
                    name: "signing_key_pem",
                    reason: "the signing key has no private key".to_owned(),
                    fix: "give signing_key_pem the private key too".to_owned(),
                })?;
                (key.alg, key.kid.to_string(), SignerKey::Private(encoding))
            }
            None => (
                current.alg,
                current.kid.to_string(),
                SignerKey::Hmac(HmacKey::new(current.alg, tokens.secret().expose())),
            ),
        };
        // The signing PEM's key first, then the current secret, previous secrets, and the
        // verification PEMs.
        let mut keys: Vec<VerifyKey> = signing.into_iter().collect();
        keys.push(current);
        keys.extend(
            tokens
                .previous_secrets()
                .iter()
                .map(|old| VerifyKey::hmac(old.expose())),
        );
        for pem in tokens.verification_pems() {
            keys.push(VerifyKey::public(pem, "verification_key_pem")?);
        }
        let header = OutHeader {
            alg: alg_name(alg),
            typ: "at+jwt",
            kid: &kid,
        };
        let header_b64 =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("a header serializes"));
        Ok(Self {
            alg,
            header_b64,
            signer,
            keys,
        })
    }
}

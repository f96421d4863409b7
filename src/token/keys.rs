//! Signing and verification keys: one per `kid`, each bound to one algorithm and carrying the
//! `jsonwebtoken::Validation` its tokens are checked with, built once here.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};

use crate::config::{Algorithm as Alg, ConfigError, PemKey, TokenSettings, key_id};

use super::claims::OutHeader;
use super::jwks::Jwks;

/// The key new tokens are signed with: the HMAC secret, or the signing PEM's private key.
pub(super) type SignerKey = EncodingKey;

/// A key a token may name by its `kid`.
pub(super) struct VerifyKey {
    pub(super) kid: Box<str>,
    pub(super) alg: Algorithm,
    pub(super) decoding: DecodingKey,
    pub(super) validation: Validation,
}

impl VerifyKey {
    /// The HS256 key of a secret, named by its key id.
    fn hmac(secret: &[u8], tokens: &TokenSettings) -> Self {
        Self {
            kid: key_id(Alg::HS256, secret).into(),
            alg: Algorithm::HS256,
            decoding: DecodingKey::from_secret(secret).expect("a secret is at least 32 bytes"),
            validation: validation(Algorithm::HS256, tokens),
        }
    }

    /// The public key of a PEM, bound to its algorithm and named by its JWK thumbprint.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when the key has no JWK form (a malformed RSA key).
    fn public(pem: &PemKey, tokens: &TokenSettings) -> Result<Self, ConfigError> {
        let alg = pem.alg.to_jwt();
        Ok(Self {
            kid: thumbprint(pem)?.into(),
            alg,
            decoding: pem.decoding.clone(),
            validation: validation(alg, tokens),
        })
    }
}

/// What jsonwebtoken checks for a key: its one algorithm, `exp` present, and `iss` / `aud`
/// when configured.
///
/// The time window is left to `TokenCodec::check_time`, which reads the codec's clock and runs
/// on every cache hit too; jsonwebtoken would read the system clock, and a verdict cached from
/// a decode that read a clock would hold only at that instant. A configured `iss` or `aud` that
/// is absent is refused by `session_from` rather than through `required_spec_claims`: that set
/// is a `HashSet`, so with both absent the error it names would vary from run to run.
fn validation(alg: Algorithm, tokens: &TokenSettings) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.leeway = tokens.leeway().as_secs();
    v.set_required_spec_claims(&["exp"]);
    if let Some(iss) = tokens.issuer() {
        v.set_issuer(&[iss]);
    }
    match tokens.audience() {
        Some(aud) => v.set_audience(&[aud]),
        // jsonwebtoken refuses any `aud` when none is expected; this codec has ignored it.
        None => v.validate_aud = false,
    }
    v
}

/// A public key's `kid`: its RFC 7638 JWK thumbprint (SHA-256 over the canonical JSON of the
/// required members, base64url), the name a JWKS consumer computes for itself. It depends on
/// the key alone, not on the PEM's wrapping or on how another crate prints an algorithm.
fn thumbprint(pem: &PemKey) -> Result<String, ConfigError> {
    Jwk::from_decoding_key(&pem.decoding, Some(pem.alg.to_jwt()))
        .and_then(|jwk| jwk.thumbprint(ThumbprintHash::SHA256))
        .map_err(|e| ConfigError::Key {
            name: pem.name,
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
    /// The allow-list when none is configured: the signing algorithm, then those of the
    /// verification keys.
    pub(super) default_allowed: Vec<Algorithm>,
    /// The public keys as a JWKS document, when there is any public key.
    pub(super) jwks: Option<Jwks>,
}

impl KeySet {
    /// The current secret (or the signing PEM), then previous secrets and verification PEMs.
    ///
    /// # Errors
    /// [`ConfigError::Conflict`] when the signing PEM has no private key, [`ConfigError::Key`]
    /// when a public key has no JWK form.
    pub(super) fn from_tokens(tokens: &TokenSettings) -> Result<Self, ConfigError> {
        let current = VerifyKey::hmac(tokens.secret().expose(), tokens);
        let signing = tokens
            .signing_pem()
            .map(|pem| VerifyKey::public(pem, tokens))
            .transpose()?;
        let (alg, kid, signer) = signer(tokens, signing.as_ref(), &current)?;
        // The signing PEM's key first, then the current secret, previous secrets, and the
        // verification PEMs.
        let mut keys: Vec<VerifyKey> = signing.into_iter().collect();
        keys.push(current);
        keys.extend(
            tokens
                .previous_secrets()
                .iter()
                .map(|old| VerifyKey::hmac(old.expose(), tokens)),
        );
        // Public keys, for the JWKS: the signing key's first.
        let mut public: Vec<(&PemKey, Box<str>)> = tokens
            .signing_pem()
            .zip(keys.first())
            .map(|(pem, key)| (pem, key.kid.clone()))
            .into_iter()
            .collect();
        let mut default_allowed = vec![alg.to_jwt()];
        if tokens.hs256_accepted() && !default_allowed.contains(&Algorithm::HS256) {
            default_allowed.push(Algorithm::HS256);
        }
        for pem in tokens.verification_pems() {
            let key = VerifyKey::public(pem, tokens)?;
            // The same key named twice (a next key that now signs, still listed as next) is
            // one key (`TokenSettings::validate` refused it under two algorithms).
            if keys.iter().any(|k| k.kid == key.kid) {
                continue;
            }
            if !default_allowed.contains(&key.alg) {
                default_allowed.push(key.alg);
            }
            public.push((pem, key.kid.clone()));
            keys.push(key);
        }
        let jwks = Jwks::build(&public)?;
        let header = OutHeader {
            alg: alg.as_str(),
            typ: "at+jwt",
            kid: &kid,
        };
        let header_b64 =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("a header serializes"));
        Ok(Self {
            alg: alg.to_jwt(),
            header_b64,
            signer,
            keys,
            default_allowed,
            jwks,
        })
    }
}

/// What signs access tokens: the signing PEM's private key when there is one (with its key's
/// `kid`), else the current secret, HS256.
fn signer(
    tokens: &TokenSettings,
    signing: Option<&VerifyKey>,
    current: &VerifyKey,
) -> Result<(Alg, String, EncodingKey), ConfigError> {
    let signer = match tokens.signing_pem().zip(signing) {
        Some((pem, key)) => {
            let encoding = pem.encoding.clone().ok_or(ConfigError::Conflict {
                name: "TokenSettings::with_signing_key_pem",
                reason: "the signing key has no private key".to_owned(),
                fix: "give TokenSettings::with_signing_key_pem the private key too".to_owned(),
            })?;
            (pem.alg, key.kid.to_string(), encoding)
        }
        None => (
            Alg::HS256,
            current.kid.to_string(),
            EncodingKey::from_secret(tokens.secret().expose())
                .expect("a secret is at least 32 bytes"),
        ),
    };
    Ok(signer)
}

//! The JWKS document of the public keys (RFC 7517 §5), built once with its `ETag`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use sha2::Digest as _;

use crate::config::{ConfigError, PemKey};

/// The public keys of a [`TokenCodec`](super::TokenCodec) as a JWKS document: each key with
/// `kty`, `kid` (its RFC 7638 thumbprint, the `kid` its tokens carry), `alg`, `use: "sig"`
/// and its public parameters (`n`/`e`, `crv`/`x`/`y`, `crv`/`x`). Never an HMAC secret, never a
/// private part: the document is written from the public half of each key alone.
///
/// Serve [`json`](Self::json) with [`etag`](Self::etag);
/// [`TokenRoutes`](crate::routes::TokenRoutes) does, at `/.well-known/jwks.json`.
#[derive(Clone)]
pub struct Jwks {
    json: Bytes,
    etag: String,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("json", &String::from_utf8_lossy(&self.json))
            .field("etag", &self.etag)
            .finish()
    }
}

impl Jwks {
    /// The document of `keys` (each with its `kid`), or `None` when there is none.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when a key has no JWK form.
    pub(super) fn build(keys: &[(&PemKey, Box<str>)]) -> Result<Option<Self>, ConfigError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let keys = keys
            .iter()
            .map(|(pem, kid)| {
                let mut jwk = Jwk::from_decoding_key(&pem.decoding, Some(pem.alg.to_jwt()))
                    .map_err(|e| ConfigError::Key {
                        name: pem.name,
                        alg: pem.alg,
                        reason: e.to_string(),
                    })?;
                jwk.common.key_id = Some(kid.to_string());
                jwk.common.public_key_use = Some(PublicKeyUse::Signature);
                Ok(jwk)
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let json = serde_json::to_vec(&JwkSet { keys }).expect("a JWK set serializes");
        let digest = sha2::Sha256::digest(&json);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
        Ok(Some(Self {
            json: json.into(),
            etag,
        }))
    }

    /// The document, `{"keys":[...]}`, as served (`application/json`).
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// A strong entity tag of the document (quotes included): a hash of its bytes, so every
    /// instance with the same keys answers the same tag.
    pub fn etag(&self) -> &str {
        &self.etag
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::config::Algorithm;
    use crate::config::{SessionRules, TokenSettings};
    use crate::session::SessionId;
    use crate::token::TokenCodec;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const ED: &[u8] = include_bytes!("../../tests/keys/ed_private.pem");
    const ED2: &[u8] = include_bytes!("../../tests/keys/ed2_private.pem");
    const ED2_PUBLIC: &[u8] = include_bytes!("../../tests/keys/ed2_public.pem");
    const RSA: &[u8] = include_bytes!("../../tests/keys/rsa_private.pem");
    const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/keys/rsa_public.pem");
    const EC: &[u8] = include_bytes!("../../tests/keys/ec_private.pem");

    fn tokens() -> TokenSettings {
        TokenSettings::new(SECRET).unwrap()
    }

    fn codec_of(tokens: &TokenSettings) -> TokenCodec {
        TokenCodec::new(tokens, &SessionRules::default()).unwrap()
    }

    fn jwks_of(codec: &TokenCodec) -> Value {
        serde_json::from_slice(codec.jwks().expect("a JWKS").json()).unwrap()
    }

    fn kid(token: &str) -> String {
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
    }

    #[test]
    fn hmac_alone_publishes_nothing() {
        let codec = codec_of(&tokens());
        assert!(codec.jwks().is_none());
        let codec = codec_of(
            &tokens()
                .with_previous_secret("an-older-secret-that-was-rotated-out")
                .unwrap(),
        );
        assert!(codec.jwks().is_none());
    }

    #[test]
    fn each_key_has_its_public_parameters_and_the_kid_its_tokens_carry() {
        for (alg, pem, kty, params, private) in [
            (Algorithm::EdDSA, ED, "OKP", &["crv", "x"][..], &["d"][..]),
            (Algorithm::ES256, EC, "EC", &["crv", "x", "y"], &["d"]),
            (
                Algorithm::RS256,
                RSA,
                "RSA",
                &["n", "e"],
                &["d", "p", "q", "dp", "dq", "qi"],
            ),
        ] {
            let config = tokens().with_private_key_pem(alg, pem).unwrap();
            let codec = codec_of(&config);
            let doc = jwks_of(&codec);
            let keys = doc["keys"].as_array().unwrap();
            assert_eq!(keys.len(), 1, "{doc}");
            let key = &keys[0];
            assert_eq!(key["kty"], kty);
            assert_eq!(key["alg"], alg.as_str());
            assert_eq!(key["use"], "sig");
            let token = codec.issue("alice", SessionId::random(), &[]).token;
            assert_eq!(key["kid"], kid(&token).as_str());
            for p in params {
                assert!(key[p].is_string(), "{alg}: {p} in {key}");
            }
            for p in private {
                assert!(key.get(p).is_none(), "{alg}: private {p} in {key}");
            }
            assert!(key.get("k").is_none(), "never an HMAC secret");
            // A verifier that knows nothing but this JWKS accepts the token.
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg.to_jwt());
            validation.validate_aud = false;
            jsonwebtoken::decode::<Value>(
                &token,
                &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
                &validation,
            )
            .unwrap();
        }
    }

    #[test]
    fn previous_and_next_keys_are_published_after_the_signing_key_once_each() {
        let config = tokens()
            .with_private_key_pem(Algorithm::EdDSA, ED)
            .unwrap()
            .with_verification_key_pem(Algorithm::EdDSA, ED2_PUBLIC)
            .unwrap()
            .with_verification_key_pem(Algorithm::RS256, RSA_PUBLIC)
            .unwrap()
            // Named twice: published once.
            .with_verification_key_pem(Algorithm::EdDSA, ED2_PUBLIC)
            .unwrap();
        let codec = codec_of(&config);
        let doc = jwks_of(&codec);
        let keys = doc["keys"].as_array().unwrap();
        let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
        assert_eq!(algs, ["EdDSA", "EdDSA", "RS256"]);
        assert_eq!(
            keys[0]["kid"],
            kid(&codec.issue("a", SessionId::random(), &[]).token).as_str()
        );

        // The signing key also listed as "next" (the runbook's phase 2 before cleaning up):
        // one entry.
        let config = tokens()
            .with_private_key_pem(Algorithm::EdDSA, ED2)
            .unwrap()
            .with_verification_key_pem(Algorithm::EdDSA, ED2_PUBLIC)
            .unwrap();
        let codec = codec_of(&config);
        assert_eq!(jwks_of(&codec)["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn the_etag_follows_the_keys_and_nothing_else() {
        let make = |pem: &[u8]| {
            let config = tokens()
                .with_private_key_pem(Algorithm::EdDSA, pem)
                .unwrap();
            codec_of(&config).jwks().unwrap().clone()
        };
        let (a, again, b) = (make(ED), make(ED), make(ED2));
        assert_eq!(a.etag(), again.etag(), "another instance, the same tag");
        assert_ne!(a.etag(), b.etag());
        assert!(a.etag().starts_with('"') && a.etag().ends_with('"'));
        assert!(!a.etag().starts_with("W/"), "a strong tag");
    }

    fn env(vars: &[(&str, &str)]) -> Result<TokenSettings, crate::config::ConfigError> {
        let map: std::collections::HashMap<&str, &str> = vars
            .iter()
            .copied()
            .chain([("JWT_SECRET", SECRET)])
            .collect();
        TokenSettings::from_lookup(|k| map.get(k).map(|v| v.to_string()))
    }

    const RSA_STR: &str = include_str!("../../tests/keys/rsa_private.pem");
    const RSA_PUBLIC_STR: &str = include_str!("../../tests/keys/rsa_public.pem");
    const ED_STR: &str = include_str!("../../tests/keys/ed_private.pem");

    /// Moving to another algorithm: the previous key's tokens still verify, because the default
    /// allow-list holds the algorithms of every configured key (each key still bound to its own).
    #[test]
    fn a_previous_key_of_another_algorithm_is_on_the_default_allow_list() {
        let old = TokenCodec::new(
            &env(&[("JWT_ALGORITHM", "RS256"), ("JWT_PRIVATE_KEY", RSA_STR)]).unwrap(),
            &SessionRules::default(),
        )
        .unwrap();
        let token = old.issue("alice", SessionId::random(), &[]).token;
        let new = TokenCodec::new(
            &env(&[
                ("JWT_ALGORITHM", "EdDSA"),
                ("JWT_PRIVATE_KEY", ED_STR),
                (
                    "JWT_PREVIOUS_PUBLIC_KEYS",
                    &format!("alg: RS256\n{RSA_PUBLIC_STR}"),
                ),
            ])
            .unwrap(),
            &SessionRules::default(),
        )
        .unwrap();
        assert_eq!(new.verify(&token).unwrap().user_id(), "alice");
        // Without the previous key it is refused.
        let alone = TokenCodec::new(
            &env(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY", ED_STR)]).unwrap(),
            &SessionRules::default(),
        )
        .unwrap();
        assert!(alone.verify(&token).is_err());
    }
}

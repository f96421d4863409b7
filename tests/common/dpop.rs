//! A DPoP client for the tests (RFC 9449 §4.2): an ES256 key made with ring, and proofs made
//! with it, right or wrong in one chosen way.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self as rsig, KeyPair as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// A client's DPoP key.
pub struct DpopKey {
    pair: rsig::EcdsaKeyPair,
}

impl Default for DpopKey {
    fn default() -> Self {
        Self::new()
    }
}

impl DpopKey {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let alg = &rsig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = rsig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Self {
            pair: rsig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        })
    }

    /// RFC 7638: the required members in order, hashed.
    pub fn jkt(&self) -> String {
        let jwk = self.jwk();
        let text = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
    }

    /// A right proof for `method url` now, naming `access_token` when there is one.
    pub fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        self.proof_with(method, url, access_token, |_, _| {})
    }

    /// A proof for `method url`, changed by `edit` (header, claims) before it is signed.
    pub fn proof_with(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        edit: impl FnOnce(&mut Value, &mut Value),
    ) -> String {
        let mut header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()});
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "htm": method,
            "htu": url,
            "iat": now,
        });
        if let Some(token) = access_token {
            claims["ath"] = json!(ath(token));
        }
        edit(&mut header, &mut claims);
        self.sign(&header, &claims)
    }

    /// A compact JWS of `header` and `claims` signed with this key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// `ath`: the base64url SHA-256 of the access token.
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// The claims of a JWT, unverified.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

//! Key material: [`Secret`], which is never printed, the checks a secret must pass, and the
//! public key id derived from a key.

use std::fmt;

use super::{Algorithm, ConfigError};

/// The placeholder secret of the Node guide this crate replaces; refused everywhere.
pub(crate) const PLACEHOLDER_SECRET: &str = "your-super-secret-jwt-key-here";
/// Shortest accepted HMAC secret, in bytes (RFC 7518 §3.2: at least the hash output size).
pub(crate) const MIN_SECRET_LEN: usize = 32;

/// Key material, never printed.
#[derive(Clone)]
pub(crate) struct Secret(Box<[u8]>);

impl Secret {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A stable, non-secret key id: a short hash of the algorithm and the key bytes. For HMAC the
/// hash input is the secret, but 64 bits of a SHA-256 reveal nothing usable about it.
pub(crate) fn key_id(alg: Algorithm, key: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"tower-jwt-session kid v1\0");
    h.update(alg.as_str().as_bytes());
    h.update(b"\0");
    h.update(key);
    let digest = h.finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9])
}

pub(crate) fn check_secret(name: &'static str, secret: &[u8]) -> Result<Secret, ConfigError> {
    if secret == PLACEHOLDER_SECRET.as_bytes() {
        return Err(ConfigError::WeakSecret {
            name,
            reason: "it is the placeholder from the documentation; set a random string of at least 32 bytes, e.g. `openssl rand -base64 48`",
        });
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(ConfigError::WeakSecret {
            name,
            reason: "it is shorter than 32 bytes; set a random string of at least 32 bytes, e.g. `openssl rand -base64 48`",
        });
    }
    Ok(Secret::new(secret))
}

//! The refresh-token format: `tjs1.<session>.<generation>.<expires_at_ms>.<HMAC>`, or for a
//! session bound to a DPoP key `tjs1.<session>.<generation>.<expires_at_ms>.<jkt>.<HMAC>`: the
//! MAC covers the key's thumbprint, so the binding is checked before the store is asked, and
//! cannot be cut off.
//!
//! A refresh token is derived from a server key and never stored: the store keeps only the
//! session's current generation, and the MAC proves this server issued the token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::TokenSettings;
use crate::session::SessionId;

const REFRESH_PREFIX: &str = "tjs1";
/// Longest refresh token parsed; longer ones are refused before any work.
const MAX_REFRESH_LEN: usize = 200;

/// The parts of a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefreshClaims {
    pub(crate) session_id: SessionId,
    pub(crate) generation: u64,
    /// When the refresh token expires, in milliseconds since the epoch (the wire unit).
    pub(crate) expires_at_ms: u64,
    /// The thumbprint of the DPoP key the session is bound to.
    pub(crate) jkt: Option<Thumbprint>,
}

/// An RFC 7638 thumbprint as its 43 base64url characters, kept inline so that
/// [`RefreshClaims`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thumbprint([u8; 43]);

impl Thumbprint {
    /// `jkt`, when it is a thumbprint.
    pub(crate) fn new(jkt: &str) -> Option<Self> {
        if !crate::session::is_thumbprint(jkt) {
            return None;
        }
        let mut bytes = [0u8; 43];
        bytes.copy_from_slice(jkt.as_bytes());
        Some(Self(bytes))
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("checked base64url")
    }
}

impl std::fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RefreshClaims {
    fn mac_input(&self, mac: &mut Hmac<Sha256>) {
        mac.update(REFRESH_PREFIX.as_bytes());
        mac.update(self.session_id.as_bytes());
        mac.update(&self.generation.to_be_bytes());
        mac.update(&self.expires_at_ms.to_be_bytes());
        if let Some(jkt) = &self.jkt {
            mac.update(b"jkt");
            mac.update(&jkt.0);
        }
    }
}

/// The MAC keys of refresh tokens: the current one first, then those of previous secrets.
#[derive(Clone)]
pub(crate) struct RefreshKeys(Vec<Hmac<Sha256>>);

impl RefreshKeys {
    /// The keys derived from the secret and the previous secrets of `tokens`.
    pub(crate) fn from_tokens(tokens: &TokenSettings) -> Self {
        Self(
            std::iter::once(tokens.secret())
                .chain(tokens.previous_secrets())
                .map(|secret| refresh_key(secret.expose()))
                .collect(),
        )
    }

    /// Fingerprints of the keys, current first (hex, 128 bits each): what a shared store
    /// remembers of the application that uses it, telling nothing of the keys themselves.
    #[cfg(any(feature = "redis", feature = "postgres"))]
    pub(crate) fn owner_fingerprints(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|key| {
                let mut mac = key.clone();
                mac.update(b"tower-jwt-session store owner v1");
                let digest = mac.finalize().into_bytes();
                digest[..16].iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect()
    }

    /// Writes a refresh token for `claims`, MAC'd with the current key.
    pub(crate) fn mint(&self, claims: &RefreshClaims) -> String {
        let mut mac = self.0[0].clone();
        claims.mac_input(&mut mac);
        let jkt = claims
            .jkt
            .as_ref()
            .map_or(String::new(), |jkt| format!("{}.", jkt.as_str()));
        format!(
            "{REFRESH_PREFIX}.{}.{}.{}.{jkt}{}",
            claims.session_id,
            claims.generation,
            claims.expires_at_ms,
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// Parses a refresh token and checks its MAC (constant-time) against every key.
    pub(crate) fn parse(&self, token: &str) -> Option<RefreshClaims> {
        if token.len() > MAX_REFRESH_LEN {
            return None;
        }
        let mut parts = token.split('.');
        let (prefix, sid, generation, expires_at, fifth) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let (jkt, mac) = match parts.next() {
            None => (None, fifth),
            Some(mac) => (Some(Thumbprint::new(fifth)?), mac),
        };
        if prefix != REFRESH_PREFIX || parts.next().is_some() {
            return None;
        }
        if !canonical_decimal(generation) || !canonical_decimal(expires_at) {
            return None;
        }
        let claims = RefreshClaims {
            session_id: SessionId::parse(sid.as_bytes())?,
            generation: generation.parse().ok()?,
            expires_at_ms: expires_at.parse().ok()?,
            jkt,
        };
        let mut tag = [0u8; 33];
        let n = URL_SAFE_NO_PAD.decode_slice(mac, &mut tag).ok()?;
        if n != 32 {
            return None;
        }
        self.0.iter().find_map(|key| {
            let mut mac = key.clone();
            claims.mac_input(&mut mac);
            mac.verify_slice(&tag[..32]).ok().map(|()| claims)
        })
    }
}

/// Canonical decimal only (no sign, no leading zero): one spelling per token.
fn canonical_decimal(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
}

/// The refresh-token MAC key for a secret: HMAC(secret, label), so it differs from the JWT key.
fn refresh_key(secret: &[u8]) -> Hmac<Sha256> {
    let mut derive = <Hmac<Sha256>>::new_from_slice(secret).expect("HMAC takes any key");
    derive.update(b"tower-jwt-session refresh-token key v1");
    let key = derive.finalize().into_bytes();
    <Hmac<Sha256>>::new_from_slice(&key).expect("HMAC takes any key")
}

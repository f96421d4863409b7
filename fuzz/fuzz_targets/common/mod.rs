//! Shared by the fuzz targets: the secret, a fixed clock, HS256 signing, and a runtime.

#![allow(dead_code)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use tower_jwt_session::config::ManualClock;
use tower_jwt_session::{SessionConfig, SessionManager};

/// The HMAC secret every target configures.
pub const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-fuzz";
/// The fixed time of every target, in milliseconds since the epoch (2027-01-15).
pub const NOW_MS: u64 = 1_800_000_000_000;
pub const NOW: u64 = NOW_MS / 1000;
/// The default leeway, in seconds.
pub const LEEWAY: u64 = 30;

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(NOW_MS))
}

pub fn config() -> SessionConfig {
    SessionConfig::new(SECRET).expect("a valid secret")
}

/// A manager over a fresh memory store, on the fixed clock.
pub fn manager() -> SessionManager {
    SessionManager::builder(config())
        .clock(ManualClock::new(NOW_MS))
        .build()
        .expect("the default configuration builds")
}

/// A current-thread runtime: the memory store answers without waiting.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

/// The server's `kid` for an HS256 secret.
pub fn kid(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tower-jwt-session kid v1\0");
    h.update(b"HS256");
    h.update(b"\0");
    h.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize()[..9])
}

pub fn hs256(message: &[u8], key: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// `b64(header).b64(payload).b64(HS256(secret))`.
pub fn sign(header: &[u8], payload: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let signature = hs256(token.as_bytes(), SECRET.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// Replaces each `(placeholder, value)` in `input`.
pub fn substitute(input: &[u8], values: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    'outer: while i < input.len() {
        for (from, to) in values {
            if input[i..].starts_with(from) {
                out.extend_from_slice(to);
                i += from.len();
                continue 'outer;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

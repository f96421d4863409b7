//! What a proof must name ([`ProofRequest`](super::ProofRequest)), what a checked proof tells
//! ([`DpopProof`](super::DpopProof)), and the thumbprint and `ath` helpers.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, Uri};
use sha2::{Digest as _, Sha256};

use super::DpopAlgorithm;
use super::htu::PublicOrigin;
use crate::clock::system_time;

/// What a proof must name: the request it came with, and the token it came with.
#[derive(Clone, Copy)]
pub struct ProofRequest<'a> {
    pub(super) method: &'a Method,
    pub(super) origin: &'a PublicOrigin,
    pub(super) path: &'a str,
    pub(super) access_token: Option<&'a str>,
    pub(super) bound_to: Option<&'a str>,
}

impl fmt::Debug for ProofRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofRequest")
            .field("method", self.method)
            .field("origin", self.origin)
            .field("path", &self.path)
            .field("access_token", &self.access_token.map(|_| "[redacted]"))
            .field("bound_to", &self.bound_to)
            .finish()
    }
}

impl<'a> ProofRequest<'a> {
    /// A request with this method, reached at `origin` (the server's public origin) and this
    /// URI (its path counts; its query, and any scheme and authority in it, do not).
    pub fn new(method: &'a Method, origin: &'a PublicOrigin, uri: &'a Uri) -> Self {
        Self {
            method,
            origin,
            path: uri.path(),
            access_token: None,
            bound_to: None,
        }
    }

    /// The access token sent with the proof: the proof's `ath` must be its hash.
    pub fn with_access_token(mut self, token: &'a str) -> Self {
        self.access_token = Some(token);
        self
    }

    /// The thumbprint the token is bound to (its `cnf.jkt`): the proof must be signed by
    /// that key.
    pub fn bound_to(mut self, jkt: &'a str) -> Self {
        self.bound_to = Some(jkt);
        self
    }
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    pub(super) jkt: Box<str>,
    pub(super) alg: DpopAlgorithm,
    pub(super) issued_at_ms: u64,
    pub(super) wants_new_nonce: bool,
}

impl DpopProof {
    /// The RFC 7638 thumbprint of the proof's key (base64url SHA-256, 43 characters): the
    /// `cnf.jkt` to bind a session to.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The algorithm it was signed with.
    pub fn algorithm(&self) -> DpopAlgorithm {
        self.alg
    }

    /// Its `iat`.
    pub fn issued_at(&self) -> SystemTime {
        system_time(self.issued_at_ms)
    }

    /// Whether its key is the one with thumbprint `jkt` (a token's `cnf.jkt`), compared in
    /// constant time.
    pub fn is_bound_to(&self, jkt: &str) -> bool {
        jkt_matches(&self.jkt, jkt)
    }

    /// Whether its nonce was of the previous period: still accepted, but the answer should
    /// carry the current one in `DPoP-Nonce`, so the client moves on before it expires.
    pub fn wants_new_nonce(&self) -> bool {
        self.wants_new_nonce
    }
}

/// Whether two JWK thumbprints are equal, in constant time (for a given length).
///
/// ```
/// use tower_jwt_session::token::dpop::jkt_matches;
///
/// assert!(jkt_matches("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
/// assert!(!jkt_matches("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "1ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
/// ```
pub fn jkt_matches(a: &str, b: &str) -> bool {
    constant_time_eq(a.as_bytes(), b.as_bytes())
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

/// `ath`: base64url of the SHA-256 of the access token's ASCII.
///
/// ```
/// use tower_jwt_session::token::dpop::access_token_hash;
///
/// // RFC 9449 §7.1's example.
/// assert_eq!(
///     access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
///     "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo",
/// );
/// ```
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

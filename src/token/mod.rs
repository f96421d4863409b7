//! Issuing and verifying access tokens (RFC 9068 / RFC 8725).
//!
//! Tokens carry `typ: at+jwt` and a `kid`; each key is bound to one algorithm and the `alg` of a
//! presented token must be both on the allow-list and the algorithm of the key its `kid` names,
//! which rules out `alg: none` and algorithm confusion. `jku`, `jwk`, `x5u` and `x5c` are never
//! followed: a token carrying them is refused, as is `crit`.
//!
//! Verification goes through `jsonwebtoken`: `decode_header` for the rules above, then `decode`
//! with the `Validation` each key carries, built once at construction. No JWT parsing is written
//! here; what this module adds is what jsonwebtoken leaves to its caller: the claims of RFC 9068
//! and the session id, strict types for the registered claims, and UTF-8 for the whole claims
//! set. `decode` reads no clock: the time window is `check_time`'s, on every request, so the
//! cache of verified tokens in front of it (`verified.rs`) keeps a verdict that holds at any
//! time. A public key's `kid` is its RFC 7638 JWK thumbprint.

//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`TokenCodec`], [`IssuedToken`], construction |
//! | `access.rs` | issuing and verifying access tokens |
//! | `claims.rs` | the JOSE header and claims as they are written, the claims as they are read |
//! | `ecdsa.rs` | ECDSA signatures in the low-S form only, issued and required |
//! | `keys.rs` | signing and verification keys, each with its `kid` and `Validation` |
//! | `jwks.rs` | [`Jwks`]: the public keys as a JWKS document, built once |
//! | `refresh.rs` | the `tjs1.` refresh-token format |
//! | `verified.rs` | the cache of verified tokens in front of verification |
//! | `dpop/` | [`dpop`]: DPoP proofs (RFC 9449), the proof of possession of a token's key |

mod access;
mod claims;
pub mod dpop;
mod ecdsa;
mod jwks;
mod keys;
pub(crate) mod refresh;
#[cfg(test)]
mod tests;
mod verified;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use jsonwebtoken::Algorithm;

use crate::clock::{Clock, SharedClock, SystemClock, duration_ms, secs_to_ms};
use crate::config::{ConfigError, SessionRules, TokenSettings};
use crate::session::Session;

pub use jwks::Jwks;
use keys::{KeySet, SignerKey, VerifyKey};

/// Longest token accepted, in bytes. Larger ones are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

struct Inner {
    /// base64url of the JSON header, computed once.
    header_b64: String,
    alg: Algorithm,
    signer: SignerKey,
    /// Length of a signature in its base64url form (fixed for each key).
    signature_len: usize,
    keys: Vec<VerifyKey>,
    /// The public keys as a JWKS, built once.
    jwks: Option<Jwks>,
    allowed: Vec<Algorithm>,
    issuer: Option<Box<str>>,
    audience: Option<Box<str>>,
    /// Whole seconds, in milliseconds: `exp` and `nbf` are whole seconds too.
    leeway_ms: u64,
    access_ttl_ms: u64,
    /// Time left at or under which a refresh is advised, whole seconds in milliseconds.
    refresh_threshold_ms: u64,
    realm: Arc<str>,
    /// Tokens that verified, so a token seen again is not verified again.
    verified: verified::VerifiedCache,
    clock: SharedClock,
}

/// Issues and verifies access tokens. Cheap to clone.
///
/// ```
/// use tower_jwt_session::config::{SessionRules, TokenSettings};
/// use tower_jwt_session::{session::SessionId, token::TokenCodec};
///
/// let tokens = TokenSettings::new("0123456789abcdef0123456789abcdef")?;
/// let codec = TokenCodec::new(&tokens, &SessionRules::default())?;
/// let sid = SessionId::random();
/// let token = codec.issue("alice", sid, &["user".to_owned()]);
/// let session = codec.verify(&token.token).expect("a fresh token verifies");
/// assert_eq!(session.user_id(), "alice");
/// assert_eq!(session.session_id(), sid);
/// # Ok::<(), tower_jwt_session::config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct TokenCodec {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCodec")
            .field("alg", &self.inner.alg)
            .field(
                "kids",
                &self.inner.keys.iter().map(|k| &*k.kid).collect::<Vec<_>>(),
            )
            .field("allowed", &self.inner.allowed)
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

/// What is left of an access token's lifetime at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeLeft {
    left_ms: u64,
    refresh_advised: bool,
}

impl TimeLeft {
    /// Milliseconds left (0 once expired): `expiresIn` / `timeUntilExpiry` on the wire.
    pub(crate) fn millis(self) -> u64 {
        self.left_ms
    }

    /// Seconds left, rounded up: `X-Token-Expires-In` on the wire.
    pub(crate) fn whole_secs(self) -> u64 {
        self.left_ms.div_ceil(1000)
    }

    /// Whether the time left is at or under the refresh threshold.
    pub(crate) fn refresh_advised(self) -> bool {
        self.refresh_advised
    }
}

/// A freshly issued access token.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// When it expires (`exp`, a whole second).
    pub expires_at: SystemTime,
    /// When it was issued (`iat`, a whole second).
    pub issued_at: SystemTime,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A token whose signature and claims were checked, except for its time window.
pub(crate) struct Decoded {
    pub(crate) session: Session,
    /// `nbf`, in milliseconds since the epoch.
    pub(crate) not_before_ms: Option<u64>,
}

impl TokenCodec {
    /// A codec for the keys, algorithms, issuer, audience, leeway, realm and verified-token
    /// cache of `tokens`, issuing access tokens that live as long as `rules` says and advising a
    /// refresh at its threshold; on the system clock.
    ///
    /// ```
    /// use tower_jwt_session::config::{SessionRules, TokenSettings};
    /// use tower_jwt_session::token::TokenCodec;
    ///
    /// let tokens = TokenSettings::new("0123456789abcdef0123456789abcdef")?
    ///     .with_issuer("https://auth.example.com");
    /// let codec = TokenCodec::new(&tokens, &SessionRules::default())?;
    /// # let _ = codec;
    /// # Ok::<(), tower_jwt_session::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError`] when the settings do not validate, or do not fit together (a leeway as
    /// long as the access token's lifetime).
    pub fn new(tokens: &TokenSettings, rules: &SessionRules) -> Result<Self, ConfigError> {
        Self::with_clock(tokens, rules, Arc::new(SystemClock))
    }

    /// As [`new`](Self::new), reading time from `clock`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_clock(
        tokens: &TokenSettings,
        rules: &SessionRules,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        rules.validate()?;
        tokens.validate_with(rules)?;
        let KeySet {
            alg,
            header_b64,
            signer,
            keys,
            default_allowed,
            jwks,
        } = KeySet::from_tokens(tokens)?;
        let allowed = tokens.allowed_algorithms().map_or_else(
            || default_allowed,
            |algs| algs.iter().map(|a| a.to_jwt()).collect(),
        );
        let signature_len = jsonwebtoken::crypto::sign(b"length", &signer, alg)
            .expect("a key loaded for its algorithm signs")
            .len();
        Ok(Self {
            inner: Arc::new(Inner {
                header_b64,
                alg,
                signer,
                signature_len,
                keys,
                jwks,
                allowed,
                issuer: tokens.issuer().map(Into::into),
                audience: tokens.audience().map(Into::into),
                leeway_ms: secs_to_ms(tokens.leeway().as_secs()),
                access_ttl_ms: duration_ms(rules.access_token_ttl()),
                refresh_threshold_ms: secs_to_ms(rules.refresh_threshold().as_secs()),
                realm: crate::error::sanitize_realm(tokens.realm()).into(),
                verified: verified::VerifiedCache::new(
                    tokens.verified_cache(),
                    tokens.leeway(),
                    rules.access_token_ttl(),
                ),
                clock,
            }),
        })
    }

    /// The clock this codec reads.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// Milliseconds since the epoch, on this codec's clock.
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// What is left of `session`'s access token at `now_ms`, and whether a refresh is advised:
    /// the one place the layer, validate and auto-refresh compare it with the threshold.
    #[inline]
    pub(crate) fn time_left(&self, session: &Session, now_ms: u64) -> TimeLeft {
        let left_ms = session.expires_at_ms().saturating_sub(now_ms);
        TimeLeft {
            left_ms,
            refresh_advised: left_ms <= self.inner.refresh_threshold_ms,
        }
    }

    /// The public keys tokens may be verified with, as a JWKS document (RFC 7517 §5): the
    /// signing key's and those of the verification keys (previous and next ones), never an
    /// HMAC secret nor a private part. `None` when no key is public (HMAC signing alone).
    /// Built once, when the codec is.
    ///
    /// ```
    /// use tower_jwt_session::config::{Algorithm, SessionRules, TokenSettings};
    /// use tower_jwt_session::token::TokenCodec;
    ///
    /// let rules = SessionRules::default();
    /// let tokens = TokenSettings::new("0123456789abcdef0123456789abcdef")?;
    /// let hmac = TokenCodec::new(&tokens, &rules)?;
    /// assert!(hmac.jwks().is_none());
    ///
    /// let pem = b"-----BEGIN PRIVATE KEY-----
    /// MC4CAQAwBQYDK2VwBCIEIJXAiS6KjV+utZioVnAvWREv3l8Am2IEIveQr7ixe8Om
    /// -----END PRIVATE KEY-----";
    /// let tokens = tokens.with_private_key_pem(Algorithm::EdDSA, pem)?;
    /// let jwks = TokenCodec::new(&tokens, &rules)?.jwks().expect("a public key").clone();
    /// let doc: serde_json::Value = serde_json::from_slice(jwks.json())?;
    /// assert_eq!(doc["keys"][0]["kty"], "OKP");
    /// assert_eq!(doc["keys"][0]["use"], "sig");
    /// assert!(doc["keys"][0].get("d").is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn jwks(&self) -> Option<&Jwks> {
        self.inner.jwks.as_ref()
    }

    /// The realm of `WWW-Authenticate` challenges.
    pub(crate) fn realm(&self) -> &Arc<str> {
        &self.inner.realm
    }
}

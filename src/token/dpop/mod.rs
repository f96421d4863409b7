//! DPoP proofs (RFC 9449): tokens bound to a key the client holds.
//!
//! A DPoP client keeps a key pair whose private half script cannot read, and sends with every
//! request a *proof*: a small JWT signed with that key, naming the request's method and URL,
//! the time, a unique id and (with an access token) the token's hash. A server that binds a
//! session to the key's thumbprint (`cnf.jkt` in its tokens) then refuses the token without a
//! fresh proof by that key: a token copied out of the browser is useless elsewhere.
//!
//! [`DpopVerifier::verify`] makes every check of RFC 9449 §4.3, in this order (cheap ones
//! first, the signature once everything else holds, the replay cache last so that only
//! proofs that verified take room in it):
//!
//! 1. exactly one `DPoP` header, one value, at most [`MAX_PROOF_LEN`] bytes;
//! 2. a compact JWS of three base64url parts (strict: no padding, no stray bits), whose header
//!    and claims are JSON objects;
//! 3. `typ` is `dpop+jwt`; `alg` is on the allow-list ([`DpopAlgorithm`]: ES256, EdDSA; never
//!    `none` or an HMAC); no `crit`;
//! 4. `jwk` is a public key (no private member) of the `alg`'s type and curve;
//! 5. the claims `jti` (at most [`MAX_JTI_LEN`] bytes), `htm`, `htu` and `iat` are present;
//!    `htm` is the request's method, `htu` its URL without query and fragment after RFC 3986
//!    normalization, against the [`PublicOrigin`] the caller gives;
//! 6. `iat` is within the window ([`DpopSettings::max_age`] in the past,
//!    [`DpopSettings::clock_skew`] in the future);
//! 7. with an access token, `ath` is the base64url SHA-256 of it;
//! 8. when nonces are required, `nonce` is a current server nonce ([`DpopSettings::require_nonce`]);
//! 9. the signature verifies with the `jwk`;
//! 10. with a bound token, the key's RFC 7638 thumbprint is the token's `cnf.jkt`
//!     (compared in constant time);
//! 11. the proof (`jkt`, `jti`) was not seen before within the window ([`DpopReplayCache`]).
//!
//! ```
//! use std::sync::Arc;
//! use http::{HeaderMap, Method, Uri};
//! use tower_jwt_session::token::dpop::{DpopError, DpopSettings, DpopVerifier, MemoryReplayCache, ProofRequest, PublicOrigin};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let verifier = DpopVerifier::new(DpopSettings::new())
//!     .with_replay_cache(Arc::new(MemoryReplayCache::new(100_000)));
//! let origin = PublicOrigin::parse("https://api.example.com").unwrap();
//! let uri: Uri = "/api/me".parse().unwrap();
//! let headers = HeaderMap::new(); // the request's headers: here, no DPoP proof
//! let request = ProofRequest::new(&Method::GET, &origin, &uri).with_access_token("eyJ...");
//! let refused = verifier.verify(headers.get_all("dpop"), &request).await.unwrap_err();
//! assert_eq!(refused, DpopError::Missing);
//! assert_eq!(refused.challenge_error(), Some("invalid_dpop_proof"));
//! # }
//! ```
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`DpopSettings`], [`DpopVerifier`], [`ProofRequest`], [`DpopProof`] |
//! //! | `jwk.rs` | the proof's key, its thumbprint, the signature check |
//! | `htu.rs` | [`PublicOrigin`], RFC 3986 normalization of `htu` |
//! | `nonce.rs` | stateless server nonces |
//! | `replay.rs` | [`DpopReplayCache`], [`MemoryReplayCache`] |

mod htu;
mod jwk;
mod nonce;
mod replay;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderName, HeaderValue, Method, Uri};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest as _, Sha256};

use crate::clock::{Clock, SharedClock, SystemClock, duration_ms, system_time};
use crate::config::ConfigError;

pub use crate::error::DpopError;
pub use htu::{InvalidOrigin, PublicOrigin};
pub use replay::{DpopReplayCache, MemoryReplayCache, ReplayCacheError};

use jwk::{JwkIn, ProofKey, SIGNATURE_B64_LEN, SIGNATURE_LEN};
use nonce::{NonceCheck, NonceSource};

/// Longest proof accepted, in bytes: refused before any decoding. An ES256 proof with `ath`
/// and a nonce is about 600 bytes.
pub const MAX_PROOF_LEN: usize = 4 * 1024;

/// Longest `jti` accepted, in bytes (a UUID is 36, base64url of 32 random bytes 43).
pub const MAX_JTI_LEN: usize = 128;

/// The `DPoP` request header, which carries the proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The `DPoP-Nonce` response header, which carries the server nonce (RFC 9449 §8, §9).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The signature algorithms a proof may use. Only asymmetric ones exist here: `none` and the
/// HMACs are never accepted, whatever the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpopAlgorithm {
    /// ECDSA on P-256 with SHA-256: what every browser's WebCrypto makes.
    ES256,
    /// Ed25519, named `EdDSA` (RFC 8037) or `Ed25519` (its fully specified name).
    EdDSA,
}

impl DpopAlgorithm {
    /// The `alg` name written into `WWW-Authenticate: DPoP algs="…"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DpopAlgorithm::ES256 => "ES256",
            DpopAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// Every `alg` value that names it.
    fn names(self) -> &'static [&'static str] {
        match self {
            DpopAlgorithm::ES256 => &["ES256"],
            DpopAlgorithm::EdDSA => &["EdDSA", "Ed25519"],
        }
    }

    fn from_alg(alg: &str) -> Option<Self> {
        [DpopAlgorithm::ES256, DpopAlgorithm::EdDSA]
            .into_iter()
            .find(|a| a.names().contains(&alg))
    }
}

/// The bounds of the proof window: neither may exceed five minutes (a longer window lets a
/// captured proof be used longer, and makes the replay cache hold more).
const MAX_WINDOW: Duration = Duration::from_secs(300);

/// How proofs are checked: the algorithms, the time window, and server nonces.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::token::dpop::{DpopAlgorithm, DpopSettings};
///
/// let settings = DpopSettings::new()
///     .algorithms([DpopAlgorithm::EdDSA])?
///     .max_age(Duration::from_secs(30))?
///     .require_nonce(b"a-server-key-of-at-least-32-bytes!", Duration::from_secs(300))?;
/// # Ok::<(), tower_jwt_session::config::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct DpopSettings {
    algorithms: Vec<DpopAlgorithm>,
    max_age: Duration,
    clock_skew: Duration,
    nonce: Option<NonceSource>,
}

impl fmt::Debug for DpopSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopSettings")
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("clock_skew", &self.clock_skew)
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl DpopSettings {
    /// ES256 and EdDSA, proofs up to 60 s old and up to 60 s ahead of the server's clock, no
    /// server nonce.
    pub fn new() -> Self {
        Self {
            algorithms: vec![DpopAlgorithm::ES256, DpopAlgorithm::EdDSA],
            max_age: Duration::from_secs(60),
            clock_skew: Duration::from_secs(60),
            nonce: None,
        }
    }

    /// The algorithms a proof may be signed with. The default is ES256 and EdDSA.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for an empty list.
    pub fn algorithms(
        mut self,
        algorithms: impl IntoIterator<Item = DpopAlgorithm>,
    ) -> Result<Self, ConfigError> {
        let mut list = Vec::new();
        for alg in algorithms {
            if !list.contains(&alg) {
                list.push(alg);
            }
        }
        if list.is_empty() {
            return Err(ConfigError::Invalid {
                name: "dpop algorithms",
                value: String::new(),
                expected: "at least one of ES256, EdDSA",
            });
        }
        self.algorithms = list;
        Ok(self)
    }

    /// How old a proof's `iat` may be. The default is 60 s. Each proof is remembered this
    /// long (plus the clock skew) by the replay cache.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] outside 1 s ..= 5 min.
    pub fn max_age(mut self, max_age: Duration) -> Result<Self, ConfigError> {
        if max_age < Duration::from_secs(1) || max_age > MAX_WINDOW {
            return Err(ConfigError::Invalid {
                name: "dpop max_age",
                value: humantime::format_duration(max_age).to_string(),
                expected: "a duration between 1s and 5m",
            });
        }
        self.max_age = max_age;
        Ok(self)
    }

    /// How far a proof's `iat` may be ahead of the server's clock (clients' clocks are often
    /// off by some seconds). The default is 60 s.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] above 5 min.
    pub fn clock_skew(mut self, skew: Duration) -> Result<Self, ConfigError> {
        if skew > MAX_WINDOW {
            return Err(ConfigError::Invalid {
                name: "dpop clock_skew",
                value: humantime::format_duration(skew).to_string(),
                expected: "a duration of at most 5m",
            });
        }
        self.clock_skew = skew;
        Ok(self)
    }

    /// Requires every proof to carry a server nonce (RFC 9449 §8, §9), so that no proof can be
    /// made ahead of time. Nonces are made from `key` and the time, one per `period`; every
    /// instance given the same key makes and accepts the same nonces, without shared state.
    /// A proof without the current nonce is refused with [`DpopError::NonceRequired`] or
    /// [`DpopError::NonceInvalid`] (`use_dpop_nonce`); the answer carries the current one in a
    /// `DPoP-Nonce` header ([`DpopVerifier::current_nonce`]) and the client makes the proof
    /// again. The default is no nonce.
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] for a key under 32 bytes, [`ConfigError::Invalid`] for a
    /// period outside 10 s ..= 1 h.
    pub fn require_nonce(
        mut self,
        key: impl AsRef<[u8]>,
        period: Duration,
    ) -> Result<Self, ConfigError> {
        if key.as_ref().len() < 32 {
            return Err(ConfigError::WeakSecret {
                name: "dpop nonce key",
                reason: "it must be at least 32 bytes",
            });
        }
        if period < Duration::from_secs(10) || period > Duration::from_secs(3600) {
            return Err(ConfigError::Invalid {
                name: "dpop nonce period",
                value: humantime::format_duration(period).to_string(),
                expected: "a duration between 10s and 1h",
            });
        }
        self.nonce = Some(NonceSource::new(key.as_ref(), duration_ms(period)));
        Ok(self)
    }
}

/// Checks DPoP proofs. Cheap to clone.
///
/// Made from [`DpopSettings`], with a [`MemoryReplayCache`] of the default capacity and the
/// system clock unless told otherwise. See the [module docs](self) for the checks.
#[derive(Clone)]
#[must_use]
pub struct DpopVerifier {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    settings: DpopSettings,
    max_age_ms: u64,
    skew_ms: u64,
    replay: Arc<dyn DpopReplayCache>,
    clock: SharedClock,
    /// `algs="ES256 EdDSA"`, for the challenge.
    algs: String,
}

impl fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("settings", &self.inner.settings)
            .field("replay", &self.inner.replay)
            .finish_non_exhaustive()
    }
}

/// What [`DpopVerifier::check`] leaves for the replay cache.
struct Checked {
    proof: DpopProof,
    jti: String,
    expires_at_ms: u64,
    now_ms: u64,
}

impl DpopVerifier {
    /// A verifier with these settings, a [`MemoryReplayCache::default`] and the system clock.
    pub fn new(settings: DpopSettings) -> Self {
        let algs = settings
            .algorithms
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            inner: Arc::new(Inner {
                max_age_ms: duration_ms(settings.max_age),
                skew_ms: duration_ms(settings.clock_skew),
                settings,
                replay: Arc::new(MemoryReplayCache::default()),
                clock: Arc::new(SystemClock),
                algs,
            }),
        }
    }

    /// Remembers proofs in `cache` instead of a [`MemoryReplayCache`] of this process: a
    /// cache in the shared store when several instances serve the same clients.
    pub fn with_replay_cache(mut self, cache: Arc<dyn DpopReplayCache>) -> Self {
        Arc::make_mut(&mut self.inner).replay = cache;
        self
    }

    /// Reads the time from `clock` (tests use a [`ManualClock`](crate::config::ManualClock)).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        Arc::make_mut(&mut self.inner).clock = Arc::new(clock);
        self
    }

    /// Reads the time from the manager's clock.
    pub(crate) fn with_shared_clock(mut self, clock: SharedClock) -> Self {
        Arc::make_mut(&mut self.inner).clock = clock;
        self
    }

    /// The settings it checks with.
    pub fn settings(&self) -> &DpopSettings {
        &self.inner.settings
    }

    /// Checks the proof of a request: `proofs` are the values of its `DPoP` headers
    /// (`headers.get_all(DPOP)`), `request` says what the proof must name. On success, the
    /// proof's key thumbprint, to bind a session to (`cnf.jkt`) or, with
    /// [`ProofRequest::bound_to`], already compared with the token's.
    ///
    /// Every check but the replay cache runs before the returned future is first polled; with
    /// a [`MemoryReplayCache`] the future is ready at its first poll.
    ///
    /// # Errors
    /// [`DpopError`]: the first check that fails.
    pub fn verify<'h>(
        &self,
        proofs: impl IntoIterator<Item = &'h HeaderValue>,
        request: &ProofRequest<'_>,
    ) -> impl Future<Output = Result<DpopProof, DpopError>> + Send + 'static {
        let checked = self.check(proofs, request);
        let replay = self.inner.replay.clone();
        async move {
            let checked = checked?;
            let (jkt, jti) = (checked.proof.jkt(), checked.jti.as_str());
            let first = match replay.try_first_use(jkt, jti, checked.expires_at_ms, checked.now_ms)
            {
                Some(answer) => answer,
                None => {
                    replay
                        .first_use(jkt, jti, checked.expires_at_ms, checked.now_ms)
                        .await
                }
            };
            match first {
                Ok(true) => Ok(checked.proof),
                Ok(false) => Err(DpopError::Replayed),
                Err(ReplayCacheError::Full { .. } | ReplayCacheError::KeyShareFull { .. }) => {
                    Err(DpopError::ReplayCheckUnavailable)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DPoP proof refused: the replay cache failed");
                    Err(DpopError::ReplayCheckUnavailable)
                }
            }
        }
    }

    /// The server nonce of now, for a `DPoP-Nonce` header; `None` when nonces are not
    /// required. Send it with every `use_dpop_nonce` refusal and whenever
    /// [`DpopProof::wants_new_nonce`] says so (any answer may carry it).
    pub fn current_nonce(&self) -> Option<HeaderValue> {
        let source = self.inner.settings.nonce.as_ref()?;
        let nonce = source.current(self.inner.clock.now_ms());
        Some(HeaderValue::try_from(nonce).expect("a nonce is base64url"))
    }

    /// The `WWW-Authenticate` challenge of the DPoP scheme (RFC 9449 §7.1): the accepted
    /// algorithms and, for a refusal, its `error` and `error_description`.
    ///
    /// ```
    /// use tower_jwt_session::token::dpop::{DpopError, DpopSettings, DpopVerifier};
    ///
    /// let verifier = DpopVerifier::new(DpopSettings::new());
    /// assert_eq!(
    ///     verifier.challenge(Some(&DpopError::Replayed)),
    ///     "DPoP algs=\"ES256 EdDSA\", error=\"invalid_dpop_proof\", error_description=\"the DPoP proof has been used before (jti): make a new proof for every request\"",
    /// );
    /// assert_eq!(verifier.challenge(None), "DPoP algs=\"ES256 EdDSA\"");
    /// ```
    pub fn challenge(&self, error: Option<&DpopError>) -> HeaderValue {
        let mut value = format!("DPoP algs=\"{}\"", self.inner.algs);
        if let Some(error) = error
            && let Some(code) = error.challenge_error()
        {
            // The messages are ASCII without quotes or backslashes (a test holds them to it).
            value.push_str(&format!(
                ", error=\"{code}\", error_description=\"{error}\""
            ));
        }
        HeaderValue::try_from(value).expect("the challenge is visible ASCII")
    }

    /// Every check but the replay cache, synchronously.
    fn check<'h>(
        &self,
        proofs: impl IntoIterator<Item = &'h HeaderValue>,
        request: &ProofRequest<'_>,
    ) -> Result<Checked, DpopError> {
        let mut proofs = proofs.into_iter();
        let proof = proofs.next().ok_or(DpopError::Missing)?;
        if proofs.next().is_some() {
            return Err(DpopError::Multiple);
        }
        let proof = proof.as_bytes();
        if proof.len() > MAX_PROOF_LEN {
            return Err(DpopError::TooLarge);
        }
        if proof.contains(&b',') {
            // Two proofs folded into one header line.
            return Err(DpopError::Multiple);
        }
        let proof = std::str::from_utf8(proof)
            .map_err(|_| DpopError::Malformed("it is not ASCII"))?
            .trim_matches([' ', '\t']);

        let mut parts = proof.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DpopError::Malformed(
                "it is not a JWS of three base64url parts separated by dots",
            ));
        };
        if signature_b64.len() != SIGNATURE_B64_LEN {
            return Err(DpopError::Malformed(
                "the signature is not 64 bytes of base64url (ES256 or EdDSA)",
            ));
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        if URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut signature) != Ok(SIGNATURE_LEN) {
            return Err(DpopError::Malformed("the signature is not base64url"));
        }

        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| DpopError::Malformed("the header is not base64url"))?;
        let header: Header<'_> = serde_json::from_slice(&header_json).map_err(|_| {
            DpopError::Malformed("the header is not a JSON object of the JOSE form")
        })?;
        let typ = header.typ.as_deref().ok_or(DpopError::InvalidType)?;
        // RFC 7515 §4.1.9: media types compare case-insensitively, `application/` implied.
        if !(typ.eq_ignore_ascii_case("dpop+jwt")
            || typ.eq_ignore_ascii_case("application/dpop+jwt"))
        {
            return Err(DpopError::InvalidType);
        }
        let alg = header
            .alg
            .as_deref()
            .and_then(DpopAlgorithm::from_alg)
            .filter(|a| self.inner.settings.algorithms.contains(a))
            .ok_or(DpopError::UnsupportedAlgorithm)?;
        if header.crit.is_some() {
            return Err(DpopError::CriticalHeader);
        }
        let jwk = header.jwk.as_ref().ok_or(DpopError::MissingKey)?;
        let key = ProofKey::parse(jwk, alg)?;

        let claims_json = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| DpopError::Malformed("the claims are not base64url"))?;
        let claims: Claims<'_> = serde_json::from_slice(&claims_json).map_err(|_| {
            DpopError::Malformed(
                "the claims are not a JSON object with string jti, htm, htu, ath, nonce and a numeric iat",
            )
        })?;
        let jti = claims.jti.ok_or(DpopError::MissingClaim("jti"))?;
        if jti.is_empty() || jti.len() > MAX_JTI_LEN {
            return Err(DpopError::InvalidClaim("jti"));
        }
        let htm = claims.htm.ok_or(DpopError::MissingClaim("htm"))?;
        let htu = claims.htu.ok_or(DpopError::MissingClaim("htu"))?;
        let iat_ms = claims.iat.ok_or(DpopError::MissingClaim("iat"))?.0;

        if htm != request.method.as_str() {
            return Err(DpopError::MethodMismatch);
        }
        if htu::normalize_htu(&htu).is_none() {
            return Err(DpopError::InvalidClaim("htu"));
        }
        if !htu::htu_matches(&htu, request.origin, request.path) {
            return Err(DpopError::UriMismatch);
        }

        let now_ms = self.inner.clock.now_ms();
        if iat_ms.saturating_add(self.inner.max_age_ms) < now_ms {
            return Err(DpopError::TooOld);
        }
        if iat_ms > now_ms.saturating_add(self.inner.skew_ms) {
            return Err(DpopError::IssuedInFuture);
        }

        if let Some(token) = request.access_token {
            let ath = claims.ath.ok_or(DpopError::MissingClaim("ath"))?;
            if !constant_time_eq(ath.as_bytes(), access_token_hash(token).as_bytes()) {
                return Err(DpopError::AccessTokenMismatch);
            }
        }

        let mut wants_new_nonce = false;
        if let Some(source) = &self.inner.settings.nonce {
            let nonce = claims.nonce.ok_or(DpopError::NonceRequired)?;
            match source.check(&nonce, now_ms) {
                NonceCheck::Current => {}
                NonceCheck::Previous => wants_new_nonce = true,
                NonceCheck::Invalid => return Err(DpopError::NonceInvalid),
            }
        }

        // `header.claims`: everything before the last dot.
        let signed = &proof[..header_b64.len() + 1 + claims_b64.len()];
        key.verify(signed.as_bytes(), &signature)?;

        let jkt = key.thumbprint();
        if let Some(bound) = request.bound_to
            && !jkt_matches(&jkt, bound)
        {
            return Err(DpopError::KeyMismatch);
        }
        Ok(Checked {
            proof: DpopProof {
                jkt: jkt.into(),
                alg,
                issued_at_ms: iat_ms,
                wants_new_nonce,
            },
            jti: jti.into_owned(),
            // Accepted while `now <= iat + max_age`; kept until just after.
            expires_at_ms: iat_ms
                .saturating_add(self.inner.max_age_ms)
                .saturating_add(1),
            now_ms,
        })
    }
}

/// What a proof must name: the request it came with, and the token it came with.
#[derive(Clone, Copy)]
pub struct ProofRequest<'a> {
    method: &'a Method,
    origin: &'a PublicOrigin,
    path: &'a str,
    access_token: Option<&'a str>,
    bound_to: Option<&'a str>,
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
    jkt: Box<str>,
    alg: DpopAlgorithm,
    issued_at_ms: u64,
    wants_new_nonce: bool,
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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

/// The JOSE header of a proof. Duplicate members are refused by serde (an ambiguous header).
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    jwk: Option<JwkIn<'a>>,
    crit: Option<IgnoredAny>,
}

/// The claims of a proof.
#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow)]
    jti: Option<Cow<'a, str>>,
    #[serde(borrow)]
    htm: Option<Cow<'a, str>>,
    #[serde(borrow)]
    htu: Option<Cow<'a, str>>,
    iat: Option<NumericDate>,
    #[serde(borrow)]
    ath: Option<Cow<'a, str>>,
    #[serde(borrow)]
    nonce: Option<Cow<'a, str>>,
}

/// A JWT NumericDate (seconds, possibly fractional, RFC 7519 §2) in milliseconds.
struct NumericDate(u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds since the epoch, not negative")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v.saturating_mul(1000)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map(|v| NumericDate(v.saturating_mul(1000)))
                    .map_err(|_| E::custom("a negative iat"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v >= 0.0 {
                    // `as` saturates at u64::MAX.
                    Ok(NumericDate((v * 1000.0).floor() as u64))
                } else {
                    Err(E::custom("a negative or infinite iat"))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

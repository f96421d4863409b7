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

mod check;
mod proof;
mod settings;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::clock::{Clock, SharedClock, SystemClock, duration_ms};

pub use crate::error::DpopError;
pub use htu::{InvalidOrigin, PublicOrigin};
pub use proof::{DpopProof, ProofRequest, access_token_hash, jkt_matches};
pub use replay::{DpopReplayCache, MemoryReplayCache, ReplayCacheError};
pub use settings::{DpopAlgorithm, DpopSettings};

/// Longest proof accepted, in bytes: refused before any decoding. An ES256 proof with `ath`
/// and a nonce is about 600 bytes.
pub const MAX_PROOF_LEN: usize = 4 * 1024;

/// Longest `jti` accepted, in bytes (a UUID is 36, base64url of 32 random bytes 43).
pub const MAX_JTI_LEN: usize = 128;

/// The `DPoP` request header, which carries the proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The `DPoP-Nonce` response header, which carries the server nonce (RFC 9449 §8, §9).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

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
}

//! How proofs are checked: [`DpopAlgorithm`](super::DpopAlgorithm) and
//! [`DpopSettings`](super::DpopSettings) (the algorithms, the time window, server nonces).

use std::fmt;
use std::time::Duration;

use super::nonce::NonceSource;
use crate::clock::duration_ms;
use crate::config::ConfigError;

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
    pub(super) fn names(self) -> &'static [&'static str] {
        match self {
            DpopAlgorithm::ES256 => &["ES256"],
            DpopAlgorithm::EdDSA => &["EdDSA", "Ed25519"],
        }
    }

    pub(super) fn from_alg(alg: &str) -> Option<Self> {
        [DpopAlgorithm::ES256, DpopAlgorithm::EdDSA]
            .into_iter()
            .find(|a| a.names().contains(&alg))
    }
}

/// The bounds of the proof window: neither may exceed five minutes (a longer window lets a
/// captured proof be used longer, and makes the replay cache hold more).
pub(super) const MAX_WINDOW: Duration = Duration::from_secs(300);

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
    pub(super) algorithms: Vec<DpopAlgorithm>,
    pub(super) max_age: Duration,
    pub(super) clock_skew: Duration,
    pub(super) nonce: Option<NonceSource>,
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
    ///
    /// [`DpopError::NonceRequired`]: super::DpopError::NonceRequired
    /// [`DpopError::NonceInvalid`]: super::DpopError::NonceInvalid
    /// [`DpopVerifier::current_nonce`]: super::DpopVerifier::current_nonce
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

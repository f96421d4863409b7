//! [`TokenCacheSettings`]: how many verified access tokens are kept in memory, so a token seen
//! again is not verified again.

use super::ConfigError;
use super::env::Env;

/// The in-process cache of verified access tokens in front of verification (as Envoy's
/// `jwt_authn` keeps one).
///
/// A token that verified is kept with its session until its `exp` (plus the leeway) or until
/// the capacity evicts it; a request carrying it again skips the signature check and the JSON
/// parsing. The time window (`exp`, `nbf`) and the revocation status are still checked on every
/// request, and only tokens that verified ever enter.
///
/// `JWT_VERIFIED_CACHE_CAPACITY` sets the capacity; `0` turns the cache off.
///
/// ```
/// use tower_jwt_session::config::TokenCacheSettings;
///
/// let cache = TokenCacheSettings::default();
/// assert_eq!(cache.capacity(), 10_000);
/// assert!(cache.is_enabled());
/// assert!(!TokenCacheSettings::off().is_enabled());
/// assert!(!TokenCacheSettings::default().with_capacity(0).is_enabled());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct TokenCacheSettings {
    capacity: u64,
}

/// The default capacity. An entry of a typical token (330 bytes: HS256, an e-mail-sized user
/// id, two roles) takes about 0.55 KiB with the cache's own bookkeeping (measured by
/// `tests/verified_cache.rs`), so 10 000 entries stay near 5.5 MiB; 10 000 distinct tokens within
/// one access-token lifetime is more than most single instances serve, and past it the cache
/// keeps the tokens in use.
const DEFAULT_CAPACITY: u64 = 10_000;

impl Default for TokenCacheSettings {
    /// On, 10 000 tokens.
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
        }
    }
}

impl TokenCacheSettings {
    /// No cache: every token is verified on every request.
    pub fn off() -> Self {
        Self { capacity: 0 }
    }

    /// How many verified tokens are kept; `0` turns the cache off. The default is 10 000.
    ///
    /// Memory grows with the capacity, about 0.2 KiB plus the token's length per entry (tokens
    /// are at most 8 KiB; a typical one is 300 to 500 bytes): size it to the distinct tokens one
    /// instance sees within an access-token lifetime. A flood of more distinct tokens than that
    /// evicts; it never grows past the bound.
    pub fn with_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// How many verified tokens are kept (0 when off).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether verified tokens are cached at all.
    pub fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    /// `JWT_VERIFIED_CACHE_CAPACITY`, a whole number (`0` = off).
    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        if let Some(capacity) = env.count("JWT_VERIFIED_CACHE_CAPACITY")? {
            settings.capacity = capacity;
        }
        Ok(settings)
    }
}

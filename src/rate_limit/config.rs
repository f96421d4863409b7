//! [`RateLimitConfig`]: window, budget, trusted proxies, clock.

use std::sync::Arc;
use std::time::Duration;

use super::cidr::Cidr;
use super::memory::MemoryBackend;
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, SessionConfig};

/// Settings of [`RateLimitLayer`](crate::RateLimitLayer).
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::{RateLimitConfig, SessionConfig};
///
/// let session = SessionConfig::new("0123456789abcdef0123456789abcdef")?; // or from_env()
/// let config = RateLimitConfig::from_session_config(&session) // RATE_LIMIT_* : 15 min, 100
///     .trusted_proxies(["10.0.0.0/8".parse()?, "fd00::/8".parse()?]);
/// assert_eq!(config.window_value(), Duration::from_secs(900));
/// assert_eq!(config.max_requests_value(), 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RateLimitConfig {
    pub(crate) window: Duration,
    pub(crate) max_requests: u32,
    pub(crate) trusted_proxies: Arc<[Cidr]>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_keys: u64,
    pub(crate) ipv6_prefix_len: u8,
    pub(crate) exempt_paths: Arc<[Box<str>]>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimitConfig {
    /// The defaults of SPEC §2: 100 requests per client per 15 minutes, no trusted proxies,
    /// the system clock, and the health route of the token routes,
    /// [`DEFAULT_HEALTH_PATH`](Self::DEFAULT_HEALTH_PATH), exempt.
    pub fn new() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            max_requests: 100,
            trusted_proxies: Arc::from([]),
            clock: Arc::new(SystemClock),
            max_keys: MemoryBackend::DEFAULT_MAX_KEYS,
            ipv6_prefix_len: 64,
            exempt_paths: Arc::from([Box::from(Self::DEFAULT_HEALTH_PATH)]),
        }
    }

    /// The health route of [`TokenRoutes`](crate::TokenRoutes) under its default prefix,
    /// `/api/token/health`: exempt from the limit unless [`exempt_paths`](Self::exempt_paths)
    /// says otherwise.
    pub const DEFAULT_HEALTH_PATH: &'static str = "/api/token/health";

    /// The defaults, with the window and budget of `config` (`RATE_LIMIT_WINDOW_MS`,
    /// `RATE_LIMIT_MAX_REQUESTS` under [`SessionConfig::from_env`]).
    pub fn from_session_config(config: &SessionConfig) -> Self {
        Self::new()
            .window(config.rate_limit_window_value())
            .max_requests(config.rate_limit_max_requests_value())
    }

    /// The window over which requests are counted. The default is 15 minutes.
    ///
    /// The window is fixed and starts at a client's first request, so a client can send
    /// `max_requests` at the end of one window and again at the start of the next. A zero
    /// window counts as one millisecond.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Requests allowed per client per window. The default is 100. Zero refuses every request.
    pub fn max_requests(mut self, max: u32) -> Self {
        self.max_requests = max;
        self
    }

    /// The proxies whose `X-Forwarded-For` is believed. The default is none: the client is the
    /// peer address, and `X-Forwarded-For` is ignored.
    ///
    /// When the peer is in one of these networks, the client is the right-most
    /// `X-Forwarded-For` entry that is not. List every proxy between the internet and this
    /// server, and nothing else: a network listed here that clients can send from directly
    /// lets them pick any address they like. Plain addresses work too (`"10.0.0.5".parse()`,
    /// or `Cidr::from(ip)`). Only `X-Forwarded-For` is read, not `Forwarded` or `X-Real-IP`.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = Cidr>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// [`trusted_proxies`](Self::trusted_proxies) from the environment variable
    /// `TRUSTED_PROXIES`: comma-separated networks or plain addresses
    /// (`10.0.0.0/8, fd00::/8, 192.0.2.7`). Unset or empty leaves the list as it is (none by
    /// default). Read it where you build the layer, next to
    /// [`from_session_config`](Self::from_session_config):
    ///
    /// ```
    /// use tower_jwt_session::{RateLimitConfig, SessionConfig};
    ///
    /// let session = SessionConfig::new("0123456789abcdef0123456789abcdef")?; // from_env()
    /// let config = RateLimitConfig::from_session_config(&session).trusted_proxies_from_env()?;
    /// # Ok::<(), tower_jwt_session::ConfigError>(())
    /// ```
    ///
    /// The warning of [`trusted_proxies`](Self::trusted_proxies) holds: list your proxies and
    /// nothing else.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `TRUSTED_PROXIES` and its value when an entry is not an
    /// address or network.
    pub fn trusted_proxies_from_env(self) -> Result<Self, ConfigError> {
        self.trusted_proxies_from(std::env::var("TRUSTED_PROXIES").ok())
    }

    fn trusted_proxies_from(self, value: Option<String>) -> Result<Self, ConfigError> {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Ok(self);
        };
        let proxies = value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::parse::<Cidr>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError::Invalid {
                name: "TRUSTED_PROXIES",
                value: value.clone(),
                expected: "comma-separated IP addresses or CIDR networks, e.g. 10.0.0.0/8, 127.0.0.1",
            })?;
        Ok(self.trusted_proxies(proxies))
    }

    /// The clock windows are measured with. The default is the system clock; tests use
    /// [`ManualClock`](crate::clock::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many clients the default in-memory backend tracks at most. The default is
    /// [`MemoryBackend::DEFAULT_MAX_KEYS`] (100 000). Ignored with another backend.
    pub fn max_tracked_clients(mut self, max: u64) -> Self {
        self.max_keys = max;
        self
    }

    /// IPv6 clients are counted per network of this prefix length. The default is 64: a
    /// subscriber usually holds a whole /64 and could otherwise take a fresh address, and a
    /// fresh budget, for every request. 128 counts each address alone; values over 128 count
    /// as 128.
    pub fn ipv6_prefix_len(mut self, prefix_len: u8) -> Self {
        self.ipv6_prefix_len = prefix_len.min(128);
        self
    }

    /// Paths that are never limited: a request whose path is exactly one of these goes
    /// straight to the inner service, is not counted, and gets no `RateLimit-*` headers. The
    /// default is [`DEFAULT_HEALTH_PATH`](Self::DEFAULT_HEALTH_PATH) alone (SPEC §5: health is
    /// never rate limited, so a load balancer probing every few seconds never marks a healthy
    /// instance down). An empty list limits every request.
    ///
    /// The list replaces the default, so keep the health path in it. Paths are compared with
    /// the request's path as this layer sees it, whatever the method and without the query:
    /// with the layer around a router that nests the token routes (as in the
    /// [module docs](crate::rate_limit)) that is the full path, `/api/token/health`; with the
    /// layer applied to the nested service itself, axum has already stripped the prefix, and
    /// the path is `/health`. Under another
    /// [`TokenRoutes::prefix`](crate::TokenRoutes::prefix), list that prefix's
    /// `/health`.
    ///
    /// Why a list of paths, not a rule inside the token routes: the layer answers before the
    /// inner service runs, and it may sit around any router; a path is what it can see. Only
    /// list routes that are cheap and safe to call without limit: an exempt route is open to
    /// floods.
    ///
    /// ```
    /// use tower_jwt_session::RateLimitConfig;
    ///
    /// let config = RateLimitConfig::new().exempt_paths(["/auth/health", "/livez"]);
    /// assert_eq!(config.exempt_paths_value(), ["/auth/health", "/livez"]);
    /// assert!(config.is_exempt("/livez"));
    /// assert!(!config.is_exempt("/api/token/health"));
    /// assert!(RateLimitConfig::new().is_exempt("/api/token/health"));
    /// ```
    pub fn exempt_paths(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.exempt_paths = paths
            .into_iter()
            .map(|p| p.into().into_boxed_str())
            .collect();
        self
    }

    /// The paths that are never limited.
    pub fn exempt_paths_value(&self) -> Vec<&str> {
        self.exempt_paths.iter().map(|p| &**p).collect()
    }

    /// Whether a request to `path` (without the query) bypasses the limit.
    #[inline]
    pub fn is_exempt(&self, path: &str) -> bool {
        self.exempt_paths.iter().any(|p| **p == *path)
    }

    /// The window.
    pub fn window_value(&self) -> Duration {
        self.window
    }

    /// The request budget per window.
    pub fn max_requests_value(&self) -> u32 {
        self.max_requests
    }

    /// The trusted proxies.
    pub fn trusted_proxies_value(&self) -> &[Cidr] {
        &self.trusted_proxies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_session_config() {
        let c = RateLimitConfig::new();
        assert_eq!(c.window_value(), Duration::from_secs(900));
        assert_eq!(c.max_requests_value(), 100);
        assert!(c.trusted_proxies_value().is_empty());
        let session = SessionConfig::new("0123456789abcdef0123456789abcdef")
            .unwrap()
            .rate_limit_window(Duration::from_secs(60))
            .rate_limit_max_requests(7);
        let c = RateLimitConfig::from_session_config(&session)
            .trusted_proxies([Cidr::from(std::net::IpAddr::from([10, 0, 0, 1]))])
            .ipv6_prefix_len(200);
        assert_eq!(c.window_value(), Duration::from_secs(60));
        assert_eq!(c.max_requests_value(), 7);
        assert_eq!(c.trusted_proxies_value(), &["10.0.0.1/32".parse().unwrap()]);
        assert_eq!(c.ipv6_prefix_len, 128);
        assert_eq!(c.exempt_paths_value(), ["/api/token/health"]);
        assert!(c.is_exempt("/api/token/health"));
        assert!(!c.is_exempt("/api/token/health/"));
        assert!(!c.is_exempt("/api/token/refresh"));
        assert!(!c.is_exempt("/health"));
        let none = c.clone().exempt_paths(Vec::<String>::new());
        assert!(!none.is_exempt("/api/token/health"));
    }

    #[test]
    fn trusted_proxies_from_the_environment() {
        let read =
            |v: Option<&str>| RateLimitConfig::new().trusted_proxies_from(v.map(String::from));
        assert!(read(None).unwrap().trusted_proxies_value().is_empty());
        assert!(read(Some(" ")).unwrap().trusted_proxies_value().is_empty());
        let c = read(Some("127.0.0.1, 10.0.0.0/8,fd00::/8,")).unwrap();
        assert_eq!(
            c.trusted_proxies_value(),
            &[
                "127.0.0.1/32".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
                "fd00::/8".parse().unwrap()
            ]
        );
        let err = read(Some("10.0.0.0/8, proxy.internal")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("TRUSTED_PROXIES")
                && text.contains("proxy.internal")
                && text.contains("CIDR"),
            "{text}"
        );
    }
}

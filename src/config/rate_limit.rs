//! [`RateLimitConfig`]: window, budget, trusted proxies, clock.

use std::sync::Arc;
use std::time::Duration;

use super::DEFAULT_MAX_TRACKED_KEYS;
use super::cidr::Cidr;
use crate::clock::{Clock, SystemClock};
use crate::config::ConfigError;
use crate::config::env::{Env, split_list};

/// Settings of [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer).
///
/// Read it from the environment with [`from_env`](Self::from_env) (`RATE_LIMIT_WINDOW_MS`,
/// `RATE_LIMIT_MAX_REQUESTS`, `TRUSTED_PROXIES`), or build it:
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::rate_limit::RateLimitConfig;
///
/// let config = RateLimitConfig::new() // 100 requests per 15 minutes
///     .window(Duration::from_secs(60))
///     .trusted_proxies(["10.0.0.0/8".parse()?, "fd00::/8".parse()?])?;
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
    /// The defaults of [the configuration](crate::routes#configuration): 100 requests per client per 15 minutes, no trusted proxies,
    /// the system clock, and the health route of the token routes,
    /// [`DEFAULT_HEALTH_PATH`](Self::DEFAULT_HEALTH_PATH), exempt.
    pub fn new() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            max_requests: 100,
            trusted_proxies: Arc::from([]),
            clock: Arc::new(SystemClock),
            max_keys: DEFAULT_MAX_TRACKED_KEYS,
            ipv6_prefix_len: 64,
            exempt_paths: Arc::from([Box::from(Self::DEFAULT_HEALTH_PATH)]),
        }
    }

    /// The health route of [`TokenRoutes`](crate::routes::TokenRoutes) under its default prefix,
    /// `/api/token/health`: exempt from the limit unless [`exempt_paths`](Self::exempt_paths)
    /// says otherwise.
    pub const DEFAULT_HEALTH_PATH: &'static str = "/api/token/health";

    /// The defaults, with the variables of [the configuration](crate::routes#configuration) read from the process environment:
    /// `RATE_LIMIT_WINDOW_MS` (a number of milliseconds such as `900000`, or a duration such as
    /// `15m`), `RATE_LIMIT_MAX_REQUESTS`, and `TRUSTED_PROXIES` (comma-separated networks or
    /// plain addresses, `10.0.0.0/8, fd00::/8, 192.0.2.7`; see
    /// [`trusted_proxies`](Self::trusted_proxies): list your proxies and nothing else).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable, its value and the expected form.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(crate::config::process_env)
    }

    /// As [`from_env`](Self::from_env), with variables looked up through `lookup`.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use tower_jwt_session::rate_limit::RateLimitConfig;
    ///
    /// let vars = HashMap::from([("RATE_LIMIT_WINDOW_MS", "15m"), ("TRUSTED_PROXIES", "10.0.0.0/8")]);
    /// let config = RateLimitConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string()))?;
    /// # Ok::<(), tower_jwt_session::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Env::new(&lookup))
    }

    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut config = Self::new();
        let form = "a whole number of milliseconds such as 900000, or a duration such as 15m";
        if let Some(window) = env.duration_or_ms("RATE_LIMIT_WINDOW_MS", form)? {
            if window.is_zero() {
                let value = env.get("RATE_LIMIT_WINDOW_MS").unwrap_or_default();
                return Err(crate::config::env::invalid(
                    "RATE_LIMIT_WINDOW_MS",
                    value,
                    form,
                ));
            }
            config.window = window;
        }
        if let Some(max) = env.positive("RATE_LIMIT_MAX_REQUESTS")? {
            config.max_requests = max;
        }
        config.trusted_proxies_from(env.get("TRUSTED_PROXIES"))
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
    ///
    /// ```
    /// use tower_jwt_session::rate_limit::RateLimitConfig;
    ///
    /// let config = RateLimitConfig::new().trusted_proxies(["10.0.0.0/8".parse()?])?;
    /// // Every client could name its own address: refused.
    /// assert!(RateLimitConfig::new().trusted_proxies(["0.0.0.0/0".parse()?]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the networks cover every IPv4 or every IPv6 address
    /// together (`0.0.0.0/0`, `::/0`, `0.0.0.0/1` with `128.0.0.0/1`), or one of them is wider
    /// than a proxy fleet can be (an IPv4 network wider than /8, an IPv6 network wider than
    /// /7): every client, or a large part of the internet, could then choose the address its
    /// rate limit and lock-out are counted on.
    pub fn trusted_proxies(
        self,
        proxies: impl IntoIterator<Item = Cidr>,
    ) -> Result<Self, ConfigError> {
        self.trusted_proxies_named("trusted_proxies", proxies.into_iter().collect())
    }

    fn trusted_proxies_named(
        mut self,
        name: &'static str,
        proxies: Vec<Cidr>,
    ) -> Result<Self, ConfigError> {
        if let Some(why) = super::cidr::too_wide(&proxies) {
            let listed: Vec<String> = proxies.iter().map(ToString::to_string).collect();
            return Err(ConfigError::Invalid {
                name,
                value: listed.join(", "),
                expected: why,
            });
        }
        self.trusted_proxies = proxies.into();
        Ok(self)
    }

    /// [`trusted_proxies`](Self::trusted_proxies) from the environment variable
    /// `TRUSTED_PROXIES`: comma-separated networks or plain addresses
    /// (`10.0.0.0/8, fd00::/8, 192.0.2.7`). Unset or empty leaves the list as it is (none by
    /// default). [`from_env`](Self::from_env) reads it too.
    ///
    /// ```
    /// use tower_jwt_session::rate_limit::RateLimitConfig;
    ///
    /// let config = RateLimitConfig::new().trusted_proxies_from_env()?;
    /// # Ok::<(), tower_jwt_session::config::ConfigError>(())
    /// ```
    ///
    /// The warning of [`trusted_proxies`](Self::trusted_proxies) holds: list your proxies and
    /// nothing else.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `TRUSTED_PROXIES` and its value when an entry is not an
    /// address or network, or when the list is refused as [`trusted_proxies`](Self::trusted_proxies)
    /// says.
    pub fn trusted_proxies_from_env(self) -> Result<Self, ConfigError> {
        self.trusted_proxies_from(std::env::var("TRUSTED_PROXIES").ok())
    }

    fn trusted_proxies_from(self, value: Option<String>) -> Result<Self, ConfigError> {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Ok(self);
        };
        let proxies = split_list(&value)
            .iter()
            .map(|entry| entry.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError::Invalid {
                name: "TRUSTED_PROXIES",
                value: value.clone(),
                expected: "comma-separated IP addresses or CIDR networks, e.g. 10.0.0.0/8, 127.0.0.1",
            })?;
        self.trusted_proxies_named("TRUSTED_PROXIES", proxies)
    }

    /// The clock windows are measured with. The default is the system clock; tests use
    /// [`ManualClock`](crate::config::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many clients the default in-memory backend tracks at most. The default is
    /// 100 000. Ignored with another backend.
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
    /// default is [`DEFAULT_HEALTH_PATH`](Self::DEFAULT_HEALTH_PATH) alone (health is
    /// never rate limited, so a load balancer probing every few seconds never marks a healthy
    /// instance down). An empty list limits every request.
    ///
    /// The list replaces the default, so keep the health path in it. Paths are compared with
    /// the request's path as this layer sees it, whatever the method and without the query:
    /// with the layer around a router that nests the token routes (as in the
    /// [module docs](crate::rate_limit)) that is the full path, `/api/token/health`; with the
    /// layer applied to the nested service itself, axum has already stripped the prefix, and
    /// the path is `/health`. Under another
    /// [`TokenRoutes::prefix`](crate::routes::TokenRoutes::prefix), list that prefix's
    /// `/health`.
    ///
    /// Why a list of paths, not a rule inside the token routes: the layer answers before the
    /// inner service runs, and it may sit around any router; a path is what it can see. Only
    /// list routes that are cheap and safe to call without limit: an exempt route is open to
    /// floods.
    ///
    /// ```
    /// use tower_jwt_session::rate_limit::RateLimitConfig;
    ///
    /// let config = RateLimitConfig::new().exempt_paths(["/auth/health", "/livez"]);
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
    #[cfg(test)]
    pub(crate) fn exempt_path_list(&self) -> Vec<&str> {
        self.exempt_paths.iter().map(|p| &**p).collect()
    }

    /// Whether a request to `path` (without the query) bypasses the limit.
    #[inline]
    pub fn is_exempt(&self, path: &str) -> bool {
        self.exempt_paths.iter().any(|p| **p == *path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<RateLimitConfig, ConfigError> {
        let map: std::collections::HashMap<&str, &str> = vars.iter().copied().collect();
        RateLimitConfig::from_lookup(|k| map.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn defaults_and_variables() {
        let c = RateLimitConfig::new();
        assert_eq!(c.window, Duration::from_secs(900));
        assert_eq!(c.max_requests, 100);
        assert!(c.trusted_proxies.is_empty());
        let c = from(&[]).unwrap();
        assert_eq!((c.window, c.max_requests), (Duration::from_secs(900), 100));
        let c = from(&[
            ("RATE_LIMIT_WINDOW_MS", "60000"),
            ("RATE_LIMIT_MAX_REQUESTS", "7"),
        ])
        .unwrap()
        .trusted_proxies([Cidr::from(std::net::IpAddr::from([10, 0, 0, 1]))])
        .unwrap()
        .ipv6_prefix_len(200);
        assert_eq!(c.window, Duration::from_secs(60));
        assert_eq!(c.max_requests, 7);
        assert_eq!(&*c.trusted_proxies, &["10.0.0.1/32".parse().unwrap()]);
        assert_eq!(c.ipv6_prefix_len, 128);
        assert_eq!(c.exempt_path_list(), ["/api/token/health"]);
        assert!(c.is_exempt("/api/token/health"));
        assert!(!c.is_exempt("/api/token/health/"));
        assert!(!c.is_exempt("/api/token/refresh"));
        assert!(!c.is_exempt("/health"));
        let none = c.clone().exempt_paths(Vec::<String>::new());
        assert!(!none.is_exempt("/api/token/health"));
    }

    /// A list of proxies that lets every client, or a large part of the internet, name its
    /// own address is refused at startup, naming the variable; a real fleet's list starts.
    #[test]
    fn trusted_proxies_that_cover_everyone_are_refused() {
        let read = |v: &str| RateLimitConfig::new().trusted_proxies_from(Some(v.to_owned()));
        for everyone in [
            "0.0.0.0/0",
            "::/0",
            "10.0.0.0/8, ::/0",
            "0.0.0.0/1, 128.0.0.0/1",
            "::ffff:0.0.0.0/96",
            "0.0.0.0/2, 64.0.0.0/2, 128.0.0.0/2, 192.0.0.0/2",
            "::/1, 8000::/1",
            "0.0.0.0/1",
        ] {
            let err = read(everyone).expect_err(everyone);
            let text = err.to_string();
            assert!(text.starts_with("TRUSTED_PROXIES="), "{everyone}: {text}");
            assert!(text.contains("X-Forwarded-For"), "{everyone}: {text}");
        }
        // Eight /3 networks cover IPv4 but for one: not everyone, but each is too wide.
        assert!(read("0.0.0.0/3, 32.0.0.0/3").is_err());
        for fleet in [
            "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16",
            "fc00::/7, 127.0.0.1, ::1",
            "173.245.48.0/20, 2400:cb00::/32",
        ] {
            assert!(read(fleet).is_ok(), "{fleet}");
        }
        // The same rule for the builder, which names its setter.
        let err = RateLimitConfig::new()
            .trusted_proxies(["0.0.0.0/0".parse().unwrap()])
            .unwrap_err();
        assert!(err.to_string().starts_with("trusted_proxies="), "{err}");
    }

    #[test]
    fn trusted_proxies_from_the_environment() {
        let read =
            |v: Option<&str>| RateLimitConfig::new().trusted_proxies_from(v.map(String::from));
        assert!(read(None).unwrap().trusted_proxies.is_empty());
        assert!(read(Some(" ")).unwrap().trusted_proxies.is_empty());
        let c = read(Some("127.0.0.1, 10.0.0.0/8,fd00::/8,")).unwrap();
        assert_eq!(
            &*c.trusted_proxies,
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

    #[test]
    fn the_window_takes_milliseconds_or_a_duration() {
        for (value, window) in [
            ("900000", Duration::from_secs(900)),
            ("15m", Duration::from_secs(900)),
            ("90s", Duration::from_secs(90)),
            ("1", Duration::from_millis(1)),
        ] {
            let c = from(&[("RATE_LIMIT_WINDOW_MS", value)]).unwrap();
            assert_eq!(c.window, window, "{value}");
        }
        let c = from(&[("TRUSTED_PROXIES", "10.0.0.0/8")]).unwrap();
        assert_eq!(&*c.trusted_proxies, &["10.0.0.0/8".parse().unwrap()]);
    }

    #[test]
    fn bad_values_name_variable_value_and_form() {
        for (name, value) in [
            ("RATE_LIMIT_WINDOW_MS", "15 parsecs"),
            ("RATE_LIMIT_WINDOW_MS", "-5"),
            ("RATE_LIMIT_WINDOW_MS", "0"),
            ("RATE_LIMIT_MAX_REQUESTS", "-5"),
            ("RATE_LIMIT_MAX_REQUESTS", "0"),
            ("TRUSTED_PROXIES", "proxy.internal"),
        ] {
            let err = from(&[(name, value)]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name) && text.contains(value), "{text}");
            assert!(text.contains("expected"), "{text}");
        }
    }
}

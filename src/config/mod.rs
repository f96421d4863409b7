//! Settings: one struct per component, composed by [`SessionConfig`].
//!
//! | component | holds | variables |
//! |---|---|---|
//! | [`TokenSettings`] | keys, algorithms, `iss`, `aud`, leeway, realm, the cache of verified tokens ([`TokenCacheSettings`]) | `JWT_SECRET`, `JWT_PREVIOUS_SECRETS`, `JWT_ALGORITHM`, `JWT_PRIVATE_KEY[_FILE]`, `JWT_PREVIOUS_PUBLIC_KEYS[_FILE]`, `JWT_NEXT_PUBLIC_KEYS[_FILE]`, `JWT_ACCEPT_HS256`, `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_LEEWAY`, `JWT_VERIFIED_CACHE_CAPACITY` |
//! | [`SessionRules`] | lifetimes, session limit, refresh threshold, reuse interval | `JWT_*_EXPIRY`, `JWT_MAX_CONCURRENT_SESSIONS`, `JWT_SESSION_LIMIT_POLICY`, `JWT_AUTO_REFRESH_THRESHOLD`, `JWT_REFRESH_REUSE_INTERVAL` |
//! | [`CookieSettings`] | the refresh-token cookie, trusted origins | `SESSION_COOKIE_*`, `ALLOWED_ORIGINS` |
//! | [`RedisSettings`] | the store's URLs, prefix, TLS CA, sealing keys, replica confirmation, eviction | `REDIS_URL`, `REDIS_KEY_PREFIX`, `REDIS_CA_CERT`, `SESSION_ENCRYPTION_*`, `REDIS_WAIT_REPLICAS`, `REDIS_WAIT_TIMEOUT`, `REDIS_ALLOW_EVICTION` |
//! | [`PostgresSettings`] | the database URL, pool size, timeout, table prefix, migrations, sealing keys | `DATABASE_URL`, `DATABASE_MAX_CONNECTIONS`, `DATABASE_STATEMENT_TIMEOUT`, `DATABASE_TABLE_PREFIX`, `DATABASE_MIGRATE`, `SESSION_ENCRYPTION_*` |
//! | [`StoreChoice`] | which store holds the sessions when several URLs are set | `SESSION_STORE` |
//! | [`RevocationCacheSettings`] | the revocation cache, fail-open | — |
//! | [`DeviceSettings`] | what a session's device metadata keeps of the client's address | `SESSION_DEVICE_IP` |
//!
//! The rate limiter's settings: [`RateLimitConfig`]
//! reads `RATE_LIMIT_WINDOW_MS` and `RATE_LIMIT_MAX_REQUESTS` itself.
//!
//! Every setting has a secure default; only the HMAC secret has to be supplied.
//! Durations take `500ms`, `90s`, `15m`, `2h`, `30d` ([`parse_duration`]). Bad values are
//! refused with a [`ConfigError`] that names the setting, the value and the expected form;
//! settings that contradict each other are refused with the values in force and the setting
//! that fixes them. Nothing falls back silently: a `REDIS_URL` that this build cannot honour
//! is an error.
//!
//! # Which store
//!
//! `SESSION_STORE` (`memory`, `redis` or `postgres`) names the store when it is set. When it
//! is not, `DATABASE_URL` selects PostgreSQL and `REDIS_URL` selects Redis; both set is a
//! startup error ([`ConfigError::Conflict`]) rather than a guess, and a URL whose store this
//! build lacks (no `postgres` or `redis` feature) is [`ConfigError::StoreNotBuilt`], never a
//! silent fall-back to memory. Applications that set `DATABASE_URL` or `REDIS_URL` for their
//! own data and keep sessions elsewhere say so with `SESSION_STORE`; the other URL is then not
//! read for sessions at all.

use std::time::Duration;

mod algorithm;
mod attempts;
mod cache;
mod cidr;
mod cookies;
mod device;
mod dpop;
mod duration;
pub(crate) mod env;
mod error;
mod keys;
mod pem_keys;
#[cfg(test)]
mod pem_keys_tests;
mod postgres;
mod rate_limit;
mod redis;
mod rules;
mod sealing;
mod secret;
#[cfg(test)]
mod tests;
mod token_cache;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use attempts::AttemptConfig;
pub use cache::RevocationCacheSettings;
pub(crate) use cidr::mask as cidr_mask;
pub use cidr::{Cidr, ParseCidrError};
pub use cookies::{CookieSettings, SameSite};
pub use device::{DeviceIp, DeviceSettings};
pub use dpop::{DpopConfig, DpopMode};
pub use duration::{DurationError, parse_duration};
pub use error::{ConfigError, SessionLimitPolicy};
pub(crate) use keys::PemKey;
pub use keys::TokenSettings;
// `Secret` is read by the stores' sealing only.
pub use postgres::{MigrateMode, PostgresSettings, StoreChoice};
#[cfg(feature = "postgres")]
pub(crate) use postgres::{check_url as check_database_url, redact_database_url};
pub use rate_limit::RateLimitConfig;
pub use redis::{RedisSettings, StoreSettings};
pub(crate) use rules::MAX_ACTIVITY_RETENTION;
pub use rules::{DEFAULT_REFRESH_THRESHOLD, MAX_REUSE_INTERVAL, SessionRules};
#[cfg_attr(
    not(any(feature = "redis", feature = "postgres")),
    allow(unused_imports)
)]
pub(crate) use secret::{Secret, key_id};
pub use token_cache::TokenCacheSettings;

use env::Env;

/// How many clients (or attempt keys) an in-memory rate limiter or attempt tracker follows at
/// most, by default: 100 000.
pub(crate) const DEFAULT_MAX_TRACKED_KEYS: u64 = 100_000;

/// The longest clock-skew leeway (`JWT_LEEWAY`) a configuration may set: five minutes. The
/// leeway is how long past its `exp` a token is still accepted; clocks kept by NTP disagree by
/// milliseconds, so minutes are already generous, and more is expired tokens accepted.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// Every environment variable [`SessionConfig::from_env`] reads.
pub const ENV_VARS: &[&str] = &[
    "JWT_SECRET",
    "JWT_PREVIOUS_SECRETS",
    "JWT_ACCESS_TOKEN_EXPIRY",
    "JWT_REFRESH_TOKEN_EXPIRY",
    "JWT_SESSION_EXPIRY",
    "JWT_MAX_CONCURRENT_SESSIONS",
    "JWT_SESSION_LIMIT_POLICY",
    "JWT_AUTO_REFRESH_THRESHOLD",
    "JWT_REFRESH_REUSE_INTERVAL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTP_ONLY",
    "SESSION_COOKIE_SAME_SITE",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "ALLOWED_ORIGINS",
    "SESSION_ENCRYPTION_KEY",
    "SESSION_ENCRYPTION_PREVIOUS_KEYS",
    "SESSION_ENCRYPTION_ACCEPT_UNSEALED",
    "REDIS_CA_CERT",
    "JWT_VERIFIED_CACHE_CAPACITY",
    "JWT_ALGORITHM",
    "JWT_PRIVATE_KEY",
    "JWT_PRIVATE_KEY_FILE",
    "JWT_PREVIOUS_PUBLIC_KEYS",
    "JWT_PREVIOUS_PUBLIC_KEYS_FILE",
    "JWT_NEXT_PUBLIC_KEYS",
    "JWT_NEXT_PUBLIC_KEYS_FILE",
    "JWT_ACCEPT_HS256",
    "SESSION_DEVICE_IP",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_STATEMENT_TIMEOUT",
    "DATABASE_TABLE_PREFIX",
    "DATABASE_MIGRATE",
    "SESSION_STORE",
    "RATE_LIMIT_WINDOW_MS",
    "RATE_LIMIT_MAX_REQUESTS",
    "TRUSTED_PROXIES",
    "SESSION_DPOP",
    "SESSION_PUBLIC_ORIGIN",
    "SESSION_DPOP_NONCE_KEY",
];

/// Looks a variable up in the process environment.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// All settings of the crate, one component each, with the defaults of [the configuration](crate::routes#configuration).
///
/// Read it from the environment with [`SessionConfig::from_env`], or build it from its
/// components: each component owns its settings and their setters ([`TokenSettings`],
/// [`SessionRules`], [`CookieSettings`], ...), and `SessionConfig` only composes them
/// ([`with_tokens`](Self::with_tokens), [`with_rules`](Self::with_rules), ...). Read a setting
/// through its component: [`tokens`](Self::tokens), [`rules`](Self::rules),
/// [`cookies`](Self::cookies), [`redis`](Self::redis) (and [`store`](Self::store)),
/// [`revocation_cache`](Self::revocation_cache).
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::SessionConfig;
/// use tower_jwt_session::config::{SessionRules, TokenSettings};
///
/// let tokens = TokenSettings::new("a-long-random-secret-of-at-least-32-bytes")?
///     .with_issuer("https://auth.example.com");
/// let rules = SessionRules::default().with_access_token_ttl(Duration::from_secs(30 * 60));
/// let config = SessionConfig::from_tokens(tokens).with_rules(rules);
/// assert_eq!(config.rules().access_token_ttl(), Duration::from_secs(1800));
/// assert_eq!(config.tokens().issuer(), Some("https://auth.example.com"));
/// # Ok::<(), tower_jwt_session::config::ConfigError>(())
/// ```
///
/// `Debug` output never contains key material, nor a password in a Redis URL
/// (`redis://user:[redacted]@host`); the Redis CA certificate shows as its length.
#[derive(Debug, Clone)]
#[must_use]
pub struct SessionConfig {
    tokens: TokenSettings,
    rules: SessionRules,
    cookies: CookieSettings,
    redis: RedisSettings,
    postgres: PostgresSettings,
    store_choice: Option<StoreChoice>,
    revocation_cache: RevocationCacheSettings,
    device: DeviceSettings,
    dpop: DpopConfig,
    rate_limit: RateLimitConfig,
    attempts: AttemptConfig,
}

impl SessionConfig {
    /// Settings with the secure defaults of [the configuration](crate::routes#configuration) and `secret` as the HMAC key (its raw bytes).
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] when the secret is under 32 bytes or is the placeholder
    /// `your-super-secret-jwt-key-here`.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Ok(Self::from_tokens(TokenSettings::new(secret)?))
    }

    /// Settings with these token settings and the defaults for the rest.
    pub fn from_tokens(tokens: TokenSettings) -> Self {
        Self {
            tokens,
            rules: SessionRules::default(),
            cookies: CookieSettings::default(),
            redis: RedisSettings::default(),
            postgres: PostgresSettings::default(),
            store_choice: None,
            revocation_cache: RevocationCacheSettings::default(),
            device: DeviceSettings::default(),
            dpop: DpopConfig::default(),
            rate_limit: RateLimitConfig::default(),
            attempts: AttemptConfig::default(),
        }
    }

    /// Reads the variables of [the configuration](crate::routes#configuration) ([`ENV_VARS`]) from the process environment, and logs
    /// at `info` what the startup rules of [`SessionRules`] adjusted.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is missing (only `JWT_SECRET` is
    /// required) or malformed, its value (unless secret) and the expected form; or the
    /// settings that conflict; or [`ConfigError::StoreNotBuilt`] when `REDIS_URL` is set in a
    /// build without the `redis` feature.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Like [`from_env`](Self::from_env), with variables looked up through `lookup` instead of
    /// the process environment (handy in tests and for other configuration sources).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use tower_jwt_session::SessionConfig;
    ///
    /// let vars = HashMap::from([
    ///     ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
    ///     ("JWT_ACCESS_TOKEN_EXPIRY", "30m"),
    /// ]);
    /// let config = SessionConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string()))?;
    /// assert_eq!(config.rules().access_token_ttl().as_secs(), 1800);
    ///
    /// let bad = HashMap::from([("JWT_SECRET", "0123456789abcdef0123456789abcdef"), ("JWT_LEEWAY", "soon")]);
    /// let err = SessionConfig::from_lookup(|k| bad.get(k).map(|v| v.to_string())).unwrap_err();
    /// assert!(err.to_string().contains("JWT_LEEWAY"));
    /// # Ok::<(), tower_jwt_session::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let env = Env::new(&lookup);
        let config = Self {
            tokens: TokenSettings::read(&env)?,
            rules: SessionRules::read(&env)?,
            cookies: CookieSettings::read(&env)?,
            redis: RedisSettings::read(&env)?,
            postgres: PostgresSettings::read(&env)?,
            store_choice: postgres::read_store_choice(&env)?,
            revocation_cache: RevocationCacheSettings::default(),
            device: DeviceSettings::read(&env)?,
            dpop: DpopConfig::read(&env)?,
            rate_limit: RateLimitConfig::read(&env)?,
            attempts: AttemptConfig::default(),
        };
        config.validate()?;
        if matches!(config.store(), StoreSettings::Postgres(_)) && !cfg!(feature = "postgres") {
            return Err(ConfigError::StoreNotBuilt {
                name: "DATABASE_URL",
                feature: "postgres",
            });
        }
        config.rules.log_adjustments();
        Ok(config)
    }

    /// Checks that the settings fit together: non-zero lifetimes, a threshold shorter than the
    /// access token, `SameSite=None` only with `Secure`, a cookie prefix browsers keep, a
    /// non-empty algorithm allow-list. [`from_env`](Self::from_env) and the session manager
    /// call it; call it yourself to fail early.
    ///
    /// # Errors
    /// The first contradiction found, as [`ConfigError::Invalid`] or [`ConfigError::Conflict`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.rules.validate()?;
        self.tokens.validate_with(&self.rules)?;
        self.cookies.validate()?;
        self.validate_store()?;
        self.dpop.validate()
    }

    /// Keys, algorithms, issuer, audience, leeway and realm.
    pub fn tokens(&self) -> &TokenSettings {
        &self.tokens
    }

    /// Lifetimes, session limit, refresh threshold and reuse interval, as in force.
    pub fn rules(&self) -> &SessionRules {
        &self.rules
    }

    /// The refresh-token cookie and the trusted origins.
    pub fn cookies(&self) -> &CookieSettings {
        &self.cookies
    }

    /// The Redis settings (their URL list is empty when no Redis is configured).
    pub fn redis(&self) -> &RedisSettings {
        &self.redis
    }

    /// Which store the settings name: the one [`StoreChoice`] (`SESSION_STORE`) names when it
    /// is set; otherwise [`StoreSettings::Postgres`] when a database URL is set,
    /// [`StoreSettings::Redis`] when Redis URLs are set, [`StoreSettings::Memory`] when neither
    /// is ([`validate`](Self::validate) refuses both without a choice).
    ///
    /// ```
    /// use tower_jwt_session::SessionConfig;
    /// use tower_jwt_session::config::StoreSettings;
    ///
    /// let config = SessionConfig::new("0123456789abcdef0123456789abcdef")?;
    /// assert!(matches!(config.store(), StoreSettings::Memory));
    /// # Ok::<(), tower_jwt_session::config::ConfigError>(())
    /// ```
    pub fn store(&self) -> StoreSettings<'_> {
        match self.store_choice {
            Some(StoreChoice::Memory) => StoreSettings::Memory,
            Some(StoreChoice::Redis) => StoreSettings::Redis(&self.redis),
            Some(StoreChoice::Postgres) => StoreSettings::Postgres(&self.postgres),
            None if self.postgres.url().is_some() => StoreSettings::Postgres(&self.postgres),
            None if !self.redis.urls().is_empty() => StoreSettings::Redis(&self.redis),
            None => StoreSettings::Memory,
        }
    }

    /// The PostgreSQL settings (no URL when no database is configured).
    pub fn postgres(&self) -> &PostgresSettings {
        &self.postgres
    }

    /// Replaces the PostgreSQL settings; with a URL, [`store`](Self::store) names PostgreSQL
    /// (unless a [`StoreChoice`] says otherwise).
    pub fn with_postgres(mut self, postgres: PostgresSettings) -> Self {
        self.postgres = postgres;
        self
    }

    /// Names the store that holds the sessions (`SESSION_STORE`), whatever URLs are set. The
    /// default is none: the set URL decides.
    pub fn with_store_choice(mut self, choice: StoreChoice) -> Self {
        self.store_choice = Some(choice);
        self
    }

    /// The store choice (`SESSION_STORE`), if one was made.
    pub fn store_choice(&self) -> Option<StoreChoice> {
        self.store_choice
    }

    /// Both URLs without a choice, or a choice without its URL.
    /// How long a request may wait for the session store, across every store call it makes:
    /// the Redis or PostgreSQL timeout of the store in use, one second for memory.
    pub(crate) fn store_timeout(&self) -> Duration {
        match self.store() {
            StoreSettings::Redis(redis) => redis.timeout(),
            StoreSettings::Postgres(postgres) => postgres.timeout(),
            _ => crate::deadline::DEFAULT_BUDGET,
        }
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let (redis, pg) = (!self.redis.urls().is_empty(), self.postgres.url().is_some());
        match self.store_choice {
            None if redis && pg => Err(ConfigError::Conflict {
                name: "SESSION_STORE",
                reason: "both REDIS_URL and DATABASE_URL are set, and either could hold the \
                         sessions"
                    .to_owned(),
                fix: "set SESSION_STORE to redis or postgres (SessionConfig::with_store_choice), or unset one \
                      of the URLs"
                    .to_owned(),
            }),
            Some(StoreChoice::Redis) if !redis => Err(ConfigError::Missing {
                name: "REDIS_URL",
                hint: "SESSION_STORE=redis keeps sessions in Redis: set its URL",
            }),
            Some(StoreChoice::Postgres) if !pg => Err(ConfigError::Missing {
                name: "DATABASE_URL",
                hint: "SESSION_STORE=postgres keeps sessions in PostgreSQL: set its URL",
            }),
            _ => Ok(()),
        }
    }

    /// The revocation cache and fail-open setting.
    pub fn revocation_cache(&self) -> &RevocationCacheSettings {
        &self.revocation_cache
    }

    /// Replaces the token settings.
    pub fn with_tokens(mut self, tokens: TokenSettings) -> Self {
        self.tokens = tokens;
        self
    }

    /// Replaces the session rules.
    pub fn with_rules(mut self, rules: SessionRules) -> Self {
        self.rules = rules;
        self
    }

    /// Replaces the cookie settings.
    pub fn with_cookies(mut self, cookies: CookieSettings) -> Self {
        self.cookies = cookies;
        self
    }

    /// Replaces the Redis settings; with URLs, [`store`](Self::store) names Redis.
    pub fn with_redis(mut self, redis: RedisSettings) -> Self {
        self.redis = redis;
        self
    }

    /// Replaces the revocation-cache settings.
    pub fn with_revocation_cache(mut self, cache: RevocationCacheSettings) -> Self {
        self.revocation_cache = cache;
        self
    }

    /// What a session's device metadata keeps of the client's address.
    pub fn device(&self) -> &DeviceSettings {
        &self.device
    }

    /// Replaces the device-metadata settings.
    pub fn with_device(mut self, device: DeviceSettings) -> Self {
        self.device = device;
        self
    }

    /// Whether sessions are bound to the client's DPoP key (`SESSION_DPOP`,
    /// `SESSION_PUBLIC_ORIGIN`, `SESSION_DPOP_NONCE_KEY`).
    pub fn dpop(&self) -> &DpopConfig {
        &self.dpop
    }

    /// Replaces the DPoP settings.
    pub fn with_dpop(mut self, dpop: DpopConfig) -> Self {
        self.dpop = dpop;
        self
    }

    /// The per-client rate limit of the login and token routes (`RATE_LIMIT_WINDOW_MS`,
    /// `RATE_LIMIT_MAX_REQUESTS`, `TRUSTED_PROXIES`).
    pub fn rate_limit(&self) -> &RateLimitConfig {
        &self.rate_limit
    }

    /// Replaces the rate-limit settings.
    pub fn with_rate_limit(mut self, rate_limit: RateLimitConfig) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// The login lock-out and the failed-refresh tracking.
    pub fn attempts(&self) -> &AttemptConfig {
        &self.attempts
    }

    /// Replaces the lock-out settings.
    pub fn with_attempts(mut self, attempts: AttemptConfig) -> Self {
        self.attempts = attempts;
        self
    }
}

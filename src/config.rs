//! Settings: [`SessionConfig`], its builder methods and [`SessionConfig::from_env`].
//!
//! Every setting has a secure default (SPEC §2); only the HMAC secret has to be supplied.
//! Bad values are refused with a [`ConfigError`] that names the setting, the value and the
//! expected form. Nothing falls back silently.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

/// The placeholder secret of the Node guide this crate replaces; refused everywhere.
const PLACEHOLDER_SECRET: &str = "your-super-secret-jwt-key-here";
/// Shortest accepted HMAC secret, in bytes (RFC 7518 §3.2: at least the hash output size).
pub(crate) const MIN_SECRET_LEN: usize = 32;

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
    "RATE_LIMIT_WINDOW_MS",
    "RATE_LIMIT_MAX_REQUESTS",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTP_ONLY",
    "SESSION_COOKIE_SAME_SITE",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "ALLOWED_ORIGINS",
    "SESSION_ENCRYPTION_KEY",
    "SESSION_ENCRYPTION_PREVIOUS_KEYS",
    "REDIS_CA_CERT",
];

/// A configuration value was missing or malformed.
///
/// Every variant names the setting (the environment variable where there is one), and the
/// `Display` text says what form was expected, so it can be shown to an operator as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting was not given.
    #[error("{name} is not set: {hint}")]
    Missing {
        /// The setting or environment variable.
        name: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// A value could not be parsed or is out of range. The value is included unless it is secret.
    #[error("{name}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The setting or environment variable.
        name: &'static str,
        /// The offending value (`[redacted]` for secrets).
        value: String,
        /// The expected form.
        expected: &'static str,
    },
    /// A secret was refused (too short, or the well-known placeholder). The secret itself is
    /// never included.
    #[error("{name} is refused: {reason}")]
    WeakSecret {
        /// The setting or environment variable.
        name: &'static str,
        /// Why, and how to fix it.
        reason: &'static str,
    },
    /// A PEM key could not be loaded.
    #[error("{name}: the {alg:?} key could not be read from PEM: {reason}")]
    Key {
        /// The builder method that was given the key.
        name: &'static str,
        /// The algorithm the key was given for.
        alg: Algorithm,
        /// What the key parser said.
        reason: String,
    },
    /// Two settings contradict each other.
    #[error("{name}: {reason}")]
    Conflict {
        /// The settings involved.
        name: &'static str,
        /// Why they cannot go together.
        reason: &'static str,
    },
}

/// What happens when a user already has the maximum number of sessions and logs in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SessionLimitPolicy {
    /// End the user's least recently active session (created or refreshed) to make room.
    #[default]
    Evict,
    /// Refuse the new login with 403 `forbidden`.
    Deny,
}

/// The `SameSite` attribute of the refresh-token cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent only on same-site requests (the default).
    #[default]
    Strict,
    /// Also sent on top-level navigations from other sites.
    Lax,
    /// Sent on cross-site requests too; requires `Secure`.
    None,
}

impl SameSite {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Key material, never printed.
#[derive(Clone)]
pub(crate) struct Secret(Box<[u8]>);

impl Secret {
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An asymmetric key pair (or public key) loaded from PEM.
#[derive(Clone)]
pub(crate) struct PemKey {
    pub(crate) alg: Algorithm,
    pub(crate) kid: String,
    pub(crate) encoding: Option<EncodingKey>,
    pub(crate) decoding: DecodingKey,
}

impl fmt::Debug for PemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("private_key", &self.encoding.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// All settings of the crate, with the defaults of SPEC §2.
///
/// Build one with [`SessionConfig::new`] and the setters, or read it from the environment with
/// [`SessionConfig::from_env`].
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::SessionConfig;
///
/// let config = SessionConfig::new("a-long-random-secret-of-at-least-32-bytes")?
///     .access_token_ttl(Duration::from_secs(30 * 60))
///     .issuer("https://auth.example.com");
/// assert_eq!(config.access_token_ttl_value(), Duration::from_secs(1800));
/// # Ok::<(), tower_jwt_session::ConfigError>(())
/// ```
///
/// `Debug` output never contains key material, nor a password in a Redis URL
/// (`redis://user:[redacted]@host`); the Redis CA certificate shows as its length.
#[derive(Clone)]
#[must_use]
pub struct SessionConfig {
    pub(crate) secret: Secret,
    pub(crate) previous_secrets: Vec<Secret>,
    pub(crate) signing_pem: Option<PemKey>,
    pub(crate) verification_pems: Vec<PemKey>,
    pub(crate) algorithms: Option<Vec<Algorithm>>,
    pub(crate) access_token_ttl: Duration,
    pub(crate) refresh_token_ttl: Duration,
    pub(crate) session_ttl: Duration,
    pub(crate) max_sessions: usize,
    pub(crate) limit_policy: SessionLimitPolicy,
    pub(crate) refresh_threshold: Duration,
    pub(crate) reuse_interval: Duration,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) leeway: Duration,
    pub(crate) rate_limit_window: Duration,
    pub(crate) rate_limit_max_requests: u32,
    pub(crate) cookie_secure: bool,
    pub(crate) cookie_http_only: bool,
    pub(crate) cookie_same_site: SameSite,
    pub(crate) cookie_name: String,
    pub(crate) cookie_path: String,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) redis_urls: Vec<String>,
    pub(crate) redis_key_prefix: String,
    pub(crate) redis_timeout: Duration,
    pub(crate) encryption_keys: Vec<Secret>,
    pub(crate) redis_ca_cert: Option<Vec<u8>>,
    pub(crate) revocation_cache_ttl: Duration,
    pub(crate) revocation_cache_capacity: u64,
    pub(crate) fail_open: bool,
    pub(crate) realm: String,
}

/// Hand-written so that the output holds no secret: the keys print as `[redacted]` (their own
/// `Debug`), Redis URLs without their password, the Redis CA certificate as its length (not
/// secret, but long). Everything else prints as a derive would.
impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Redis URLs with their passwords hidden.
        struct RedisUrls<'a>(&'a [String]);
        impl fmt::Debug for RedisUrls<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|u| redact_url_password(u)))
                    .finish()
            }
        }
        /// A PEM file, by its size.
        struct Length(usize);
        impl fmt::Debug for Length {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "[{} bytes of PEM]", self.0)
            }
        }
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            secret,
            previous_secrets,
            signing_pem,
            verification_pems,
            algorithms,
            access_token_ttl,
            refresh_token_ttl,
            session_ttl,
            max_sessions,
            limit_policy,
            refresh_threshold,
            reuse_interval,
            issuer,
            audience,
            leeway,
            rate_limit_window,
            rate_limit_max_requests,
            cookie_secure,
            cookie_http_only,
            cookie_same_site,
            cookie_name,
            cookie_path,
            allowed_origins,
            redis_urls,
            redis_key_prefix,
            redis_timeout,
            encryption_keys,
            redis_ca_cert,
            revocation_cache_ttl,
            revocation_cache_capacity,
            fail_open,
            realm,
        } = self;
        f.debug_struct("SessionConfig")
            .field("secret", secret)
            .field("previous_secrets", previous_secrets)
            .field("signing_pem", signing_pem)
            .field("verification_pems", verification_pems)
            .field("algorithms", algorithms)
            .field("access_token_ttl", access_token_ttl)
            .field("refresh_token_ttl", refresh_token_ttl)
            .field("session_ttl", session_ttl)
            .field("max_sessions", max_sessions)
            .field("limit_policy", limit_policy)
            .field("refresh_threshold", refresh_threshold)
            .field("reuse_interval", reuse_interval)
            .field("issuer", issuer)
            .field("audience", audience)
            .field("leeway", leeway)
            .field("rate_limit_window", rate_limit_window)
            .field("rate_limit_max_requests", rate_limit_max_requests)
            .field("cookie_secure", cookie_secure)
            .field("cookie_http_only", cookie_http_only)
            .field("cookie_same_site", cookie_same_site)
            .field("cookie_name", cookie_name)
            .field("cookie_path", cookie_path)
            .field("allowed_origins", allowed_origins)
            .field("redis_urls", &RedisUrls(redis_urls))
            .field("redis_key_prefix", redis_key_prefix)
            .field("redis_timeout", redis_timeout)
            .field("encryption_keys", encryption_keys)
            .field(
                "redis_ca_cert",
                &redis_ca_cert.as_ref().map(|pem| Length(pem.len())),
            )
            .field("revocation_cache_ttl", revocation_cache_ttl)
            .field("revocation_cache_capacity", revocation_cache_capacity)
            .field("fail_open", fail_open)
            .field("realm", realm)
            .finish()
    }
}

impl SessionConfig {
    /// Settings with the secure defaults of SPEC §2 and `secret` as the HMAC key (its raw bytes).
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] when the secret is under 32 bytes or is the placeholder
    /// `your-super-secret-jwt-key-here`.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Ok(Self {
            secret: check_secret("JWT_SECRET", secret.as_ref())?,
            previous_secrets: Vec::new(),
            signing_pem: None,
            verification_pems: Vec::new(),
            algorithms: None,
            access_token_ttl: Duration::from_secs(2 * 3600),
            refresh_token_ttl: Duration::from_secs(30 * 86400),
            session_ttl: Duration::from_secs(90 * 86400),
            max_sessions: 10,
            limit_policy: SessionLimitPolicy::Evict,
            refresh_threshold: Duration::from_secs(15 * 60),
            reuse_interval: Duration::from_secs(10),
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
            rate_limit_window: Duration::from_millis(900_000),
            rate_limit_max_requests: 100,
            cookie_secure: true,
            cookie_http_only: true,
            cookie_same_site: SameSite::Strict,
            cookie_name: "tjs_refresh".to_owned(),
            cookie_path: "/api/token".to_owned(),
            allowed_origins: Vec::new(),
            redis_urls: Vec::new(),
            redis_key_prefix: "tjs".to_owned(),
            redis_timeout: Duration::from_secs(1),
            encryption_keys: Vec::new(),
            redis_ca_cert: None,
            revocation_cache_ttl: Duration::from_secs(1),
            revocation_cache_capacity: 100_000,
            fail_open: false,
            realm: "api".to_owned(),
        })
    }

    /// Reads the variables of SPEC §2 ([`ENV_VARS`]) from the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is missing (only `JWT_SECRET` is
    /// required) or malformed, its value (unless secret) and the expected form.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
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
    /// assert_eq!(config.access_token_ttl_value().as_secs(), 1800);
    ///
    /// let bad = HashMap::from([("JWT_SECRET", "0123456789abcdef0123456789abcdef"), ("JWT_LEEWAY", "soon")]);
    /// let err = SessionConfig::from_lookup(|k| bad.get(k).map(|v| v.to_string())).unwrap_err();
    /// assert!(err.to_string().contains("JWT_LEEWAY"));
    /// # Ok::<(), tower_jwt_session::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        // An empty variable counts as unset, as most deployment tools write unset values that way.
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let secret = get("JWT_SECRET").ok_or(ConfigError::Missing {
            name: "JWT_SECRET",
            hint: "set it to a random string of at least 32 bytes, e.g. the output of `openssl rand -base64 48`",
        })?;
        let mut config = Self::new(secret.as_bytes())?;

        if let Some(list) = get("JWT_PREVIOUS_SECRETS") {
            for old in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                config
                    .previous_secrets
                    .push(check_secret("JWT_PREVIOUS_SECRETS", old.as_bytes())?);
            }
        }
        let duration = |name: &'static str, into: &mut Duration| -> Result<(), ConfigError> {
            if let Some(v) = get(name) {
                *into = parse_duration(&v).map_err(|()| ConfigError::Invalid {
                    name,
                    value: v,
                    expected: "a duration such as 500ms, 90s, 15m, 2h or 30d",
                })?;
            }
            Ok(())
        };
        duration("JWT_ACCESS_TOKEN_EXPIRY", &mut config.access_token_ttl)?;
        duration("JWT_REFRESH_TOKEN_EXPIRY", &mut config.refresh_token_ttl)?;
        duration("JWT_SESSION_EXPIRY", &mut config.session_ttl)?;
        duration("JWT_AUTO_REFRESH_THRESHOLD", &mut config.refresh_threshold)?;
        duration("JWT_REFRESH_REUSE_INTERVAL", &mut config.reuse_interval)?;
        duration("JWT_LEEWAY", &mut config.leeway)?;

        if let Some(v) = get("JWT_MAX_CONCURRENT_SESSIONS") {
            config.max_sessions = parse_positive(&v).ok_or(ConfigError::Invalid {
                name: "JWT_MAX_CONCURRENT_SESSIONS",
                value: v,
                expected: "a whole number of at least 1",
            })?;
        }
        if let Some(v) = get("JWT_SESSION_LIMIT_POLICY") {
            config.limit_policy = match v.trim().to_ascii_lowercase().as_str() {
                "evict" => SessionLimitPolicy::Evict,
                "deny" => SessionLimitPolicy::Deny,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "JWT_SESSION_LIMIT_POLICY",
                        value: v,
                        expected: "`evict` or `deny`",
                    });
                }
            };
        }
        config.issuer = get("JWT_ISSUER").map(|v| v.trim().to_owned());
        config.audience = get("JWT_AUDIENCE").map(|v| v.trim().to_owned());

        if let Some(v) = get("RATE_LIMIT_WINDOW_MS") {
            let ms: usize = parse_positive(&v).ok_or(ConfigError::Invalid {
                name: "RATE_LIMIT_WINDOW_MS",
                value: v,
                expected: "a whole number of milliseconds, at least 1",
            })?;
            config.rate_limit_window = Duration::from_millis(ms as u64);
        }
        if let Some(v) = get("RATE_LIMIT_MAX_REQUESTS") {
            config.rate_limit_max_requests = parse_positive(&v).ok_or(ConfigError::Invalid {
                name: "RATE_LIMIT_MAX_REQUESTS",
                value: v,
                expected: "a whole number of at least 1",
            })?;
        }
        let flag = |name: &'static str, into: &mut bool| -> Result<(), ConfigError> {
            if let Some(v) = get(name) {
                *into = parse_bool(&v).ok_or(ConfigError::Invalid {
                    name,
                    value: v,
                    expected: "`true` or `false`",
                })?;
            }
            Ok(())
        };
        flag("SESSION_COOKIE_SECURE", &mut config.cookie_secure)?;
        flag("SESSION_COOKIE_HTTP_ONLY", &mut config.cookie_http_only)?;
        if let Some(v) = get("SESSION_COOKIE_SAME_SITE") {
            config.cookie_same_site = match v.trim().to_ascii_lowercase().as_str() {
                "strict" => SameSite::Strict,
                "lax" => SameSite::Lax,
                "none" => SameSite::None,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "SESSION_COOKIE_SAME_SITE",
                        value: v,
                        expected: "`strict`, `lax` or `none`",
                    });
                }
            };
        }
        if let Some(v) = get("REDIS_URL") {
            let urls: Vec<String> = v
                .split(',')
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect();
            if urls
                .iter()
                .any(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
            {
                return Err(ConfigError::Invalid {
                    name: "REDIS_URL",
                    value: redact_url_password(&v),
                    expected: "a redis:// or rediss:// URL, or several comma-separated for a cluster",
                });
            }
            config.redis_urls = urls;
        }
        if let Some(v) = get("REDIS_KEY_PREFIX") {
            config.redis_key_prefix = v.trim().to_owned();
        }
        if let Some(path) = get("REDIS_CA_CERT") {
            let pem = std::fs::read(path.trim()).map_err(|_| ConfigError::Invalid {
                name: "REDIS_CA_CERT",
                value: path.clone(),
                expected: "the path of a readable PEM file with the CA that signed Redis's TLS certificate",
            })?;
            if !pem.starts_with(b"-----BEGIN") {
                return Err(ConfigError::Invalid {
                    name: "REDIS_CA_CERT",
                    value: path,
                    expected: "a PEM file (-----BEGIN CERTIFICATE-----)",
                });
            }
            config.redis_ca_cert = Some(pem);
        }
        if let Some(v) = get("SESSION_ENCRYPTION_KEY") {
            config.encryption_keys = vec![encryption_key("SESSION_ENCRYPTION_KEY", &v)?];
            if let Some(list) = get("SESSION_ENCRYPTION_PREVIOUS_KEYS") {
                for old in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    config
                        .encryption_keys
                        .push(encryption_key("SESSION_ENCRYPTION_PREVIOUS_KEYS", old)?);
                }
            }
        } else if get("SESSION_ENCRYPTION_PREVIOUS_KEYS").is_some() {
            return Err(ConfigError::Missing {
                name: "SESSION_ENCRYPTION_KEY",
                hint: "SESSION_ENCRYPTION_PREVIOUS_KEYS is set, so records are sealed: set the current key too",
            });
        }
        if let Some(v) = get("ALLOWED_ORIGINS") {
            let origins: Vec<String> = v
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect();
            if origins.iter().any(|o| {
                !(o.starts_with("https://") || o.starts_with("http://"))
                    || o["https://".len().min(o.len())..].contains('/')
            }) {
                return Err(ConfigError::Invalid {
                    name: "ALLOWED_ORIGINS",
                    value: v,
                    expected: "comma-separated origins such as https://app.example.com (scheme, host and optional port, no path)",
                });
            }
            config.allowed_origins = origins;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks that the settings fit together: non-zero lifetimes, a refresh token that does not
    /// outlive the session, a threshold shorter than the access token, `SameSite=None` only with
    /// `Secure`. [`from_env`](Self::from_env) and the session manager call it; call it yourself
    /// to fail early.
    ///
    /// # Errors
    /// The first contradiction found, as [`ConfigError::Invalid`] or [`ConfigError::Conflict`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonzero = |name: &'static str, d: Duration| {
            if d.is_zero() {
                Err(ConfigError::Invalid {
                    name,
                    value: "0".to_owned(),
                    expected: "a duration above zero, such as 15m",
                })
            } else {
                Ok(())
            }
        };
        nonzero("JWT_ACCESS_TOKEN_EXPIRY", self.access_token_ttl)?;
        nonzero("JWT_REFRESH_TOKEN_EXPIRY", self.refresh_token_ttl)?;
        nonzero("JWT_SESSION_EXPIRY", self.session_ttl)?;
        if self.max_sessions == 0 {
            return Err(ConfigError::Invalid {
                name: "JWT_MAX_CONCURRENT_SESSIONS",
                value: "0".to_owned(),
                expected: "a whole number of at least 1",
            });
        }
        if self.refresh_token_ttl > self.session_ttl {
            return Err(ConfigError::Conflict {
                name: "JWT_REFRESH_TOKEN_EXPIRY / JWT_SESSION_EXPIRY",
                reason: "the refresh token lifetime must not exceed the absolute session lifetime",
            });
        }
        if self.refresh_threshold >= self.access_token_ttl {
            return Err(ConfigError::Conflict {
                name: "JWT_AUTO_REFRESH_THRESHOLD / JWT_ACCESS_TOKEN_EXPIRY",
                reason: "the auto-refresh threshold must be shorter than the access token lifetime, or every response would ask for a refresh",
            });
        }
        if self.cookie_same_site == SameSite::None && !self.cookie_secure {
            return Err(ConfigError::Conflict {
                name: "SESSION_COOKIE_SAME_SITE / SESSION_COOKIE_SECURE",
                reason: "browsers drop SameSite=None cookies that are not Secure; set SESSION_COOKIE_SECURE=true",
            });
        }
        let prefixed = |prefix: &str| {
            self.cookie_name
                .get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        };
        if prefixed("__Host-") && (!self.cookie_secure || self.cookie_path != "/") {
            return Err(ConfigError::Conflict {
                name: "cookie_name / SESSION_COOKIE_SECURE / cookie_path",
                reason: "browsers drop a __Host- cookie unless it is Secure with Path=/; set SESSION_COOKIE_SECURE=true and cookie_path(\"/\"), or drop the prefix",
            });
        }
        if prefixed("__Secure-") && !self.cookie_secure {
            return Err(ConfigError::Conflict {
                name: "cookie_name / SESSION_COOKIE_SECURE",
                reason: "browsers drop a __Secure- cookie that is not Secure; set SESSION_COOKIE_SECURE=true or drop the prefix",
            });
        }
        if self.algorithms.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::Conflict {
                name: "allowed_algorithms",
                reason: "the algorithm allow-list is empty, so no token could ever be accepted",
            });
        }
        Ok(())
    }

    /// Adds an older HMAC secret accepted for verification only, so that rotating `JWT_SECRET`
    /// logs nobody out (`JWT_PREVIOUS_SECRETS`). Tokens are always signed with the current one.
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] as for [`new`](Self::new).
    pub fn previous_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        self.previous_secrets
            .push(check_secret("JWT_PREVIOUS_SECRETS", secret.as_ref())?);
        Ok(self)
    }

    /// Signs access tokens with an asymmetric key (`RS256`, `ES256` or `EdDSA`) instead of the
    /// HMAC secret, so that other services can verify them with the public key alone. The
    /// allow-list then becomes this algorithm alone unless
    /// [`allowed_algorithms`](Self::allowed_algorithms) says otherwise. The HMAC secret is still
    /// required: it keys the refresh tokens. The default is HS256 with `JWT_SECRET`.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when a PEM cannot be parsed for `alg`, or `alg` is an HMAC algorithm.
    pub fn signing_key_pem(
        mut self,
        alg: Algorithm,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        let name = "signing_key_pem";
        let decoding = decoding_from_pem(name, alg, public_pem)?;
        let encoding = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => EncodingKey::from_rsa_pem(private_pem),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private_pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
            _ => return Err(not_a_pem_algorithm(name, alg)),
        }
        .map_err(|e| ConfigError::Key {
            name,
            alg,
            reason: e.to_string(),
        })?;
        self.signing_pem = Some(PemKey {
            alg,
            kid: key_id(alg, public_pem),
            encoding: Some(encoding),
            decoding,
        });
        Ok(self)
    }

    /// Adds a public key accepted for verification only, e.g. the previous signing key after a
    /// rotation. Its `kid` is derived from the key itself, as for the signing key.
    ///
    /// # Errors
    /// [`ConfigError::Key`] when the PEM cannot be parsed for `alg`.
    pub fn verification_key_pem(
        mut self,
        alg: Algorithm,
        public_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        let decoding = decoding_from_pem("verification_key_pem", alg, public_pem)?;
        self.verification_pems.push(PemKey {
            alg,
            kid: key_id(alg, public_pem),
            encoding: None,
            decoding,
        });
        Ok(self)
    }

    /// The algorithms a presented token may use (RFC 8725 §3.1). Each key is also bound to its
    /// own algorithm, so a token whose `alg` does not match its key's is refused even when both
    /// algorithms are listed. The default is `[HS256]`, or the signing key's algorithm when
    /// [`signing_key_pem`](Self::signing_key_pem) was called. Never add an algorithm you do
    /// not sign with.
    pub fn allowed_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Access token lifetime (`JWT_ACCESS_TOKEN_EXPIRY`). The default is 2 hours.
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }

    /// Refresh token lifetime (`JWT_REFRESH_TOKEN_EXPIRY`); each rotation issues a fresh one,
    /// capped by the session's end. The default is 30 days.
    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_token_ttl = ttl;
        self
    }

    /// Absolute session lifetime from login (`JWT_SESSION_EXPIRY`); no refresh extends it.
    /// The default is 90 days.
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Concurrent sessions per user (`JWT_MAX_CONCURRENT_SESSIONS`). The default is 10.
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// What a login beyond the session limit does (`JWT_SESSION_LIMIT_POLICY`). The default
    /// is [`SessionLimitPolicy::Evict`].
    pub fn session_limit_policy(mut self, policy: SessionLimitPolicy) -> Self {
        self.limit_policy = policy;
        self
    }

    /// Remaining lifetime at or under which responses advise a refresh
    /// (`JWT_AUTO_REFRESH_THRESHOLD`). The default is 15 minutes.
    pub fn refresh_threshold(mut self, threshold: Duration) -> Self {
        self.refresh_threshold = threshold;
        self
    }

    /// Grace window in which a just-rotated refresh token still yields its successor
    /// (`JWT_REFRESH_REUSE_INTERVAL`), for racing tabs and lost responses. The default is 10
    /// seconds; zero turns the grace off (any replay is then treated as theft).
    pub fn refresh_reuse_interval(mut self, interval: Duration) -> Self {
        self.reuse_interval = interval;
        self
    }

    /// The `iss` claim issued and required (`JWT_ISSUER`). The default is none.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `aud` claim issued and required (`JWT_AUDIENCE`). The default is none.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Clock-skew allowance for `exp` and `nbf` of presented tokens (`JWT_LEEWAY`). The
    /// default is 30 seconds; large values keep expired tokens usable for longer.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Rate-limit window (`RATE_LIMIT_WINDOW_MS`). The default is 15 minutes.
    pub fn rate_limit_window(mut self, window: Duration) -> Self {
        self.rate_limit_window = window;
        self
    }

    /// Requests per client IP per window on the auth and token routes
    /// (`RATE_LIMIT_MAX_REQUESTS`). The default is 100.
    pub fn rate_limit_max_requests(mut self, max: u32) -> Self {
        self.rate_limit_max_requests = max;
        self
    }

    /// `Secure` attribute of the refresh-token cookie (`SESSION_COOKIE_SECURE`). The default
    /// is `true`; turn it off only for plain-HTTP development.
    pub fn cookie_secure(mut self, secure: bool) -> Self {
        self.cookie_secure = secure;
        self
    }

    /// `HttpOnly` attribute of the refresh-token cookie (`SESSION_COOKIE_HTTP_ONLY`). The
    /// default is `true`; turning it off exposes the refresh token to scripts.
    pub fn cookie_http_only(mut self, http_only: bool) -> Self {
        self.cookie_http_only = http_only;
        self
    }

    /// `SameSite` attribute of the refresh-token cookie (`SESSION_COOKIE_SAME_SITE`). The
    /// default is [`SameSite::Strict`].
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.cookie_same_site = same_site;
        self
    }

    /// Name of the refresh-token cookie. The default is `tjs_refresh`.
    ///
    /// `__Host-tjs_refresh` (with [`cookie_path`](Self::cookie_path) `/` and `Secure`) keeps
    /// sibling subdomains from planting a refresh cookie of their own; it is not the default
    /// because it sends the cookie to every route: the trade-off is written down in the
    /// `cookie` module docs. [`validate`](Self::validate) refuses a `__Host-` or `__Secure-`
    /// name that browsers would drop.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// `Path` attribute of the refresh-token cookie, so browsers send it to the token routes
    /// only. The default is `/api/token`.
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie_path = path.into();
        self
    }

    /// Origins (`scheme://host[:port]`) trusted to refresh through the cookie alone (SPEC §5
    /// CSRF rule). Requests with an `X-Requested-With` header are accepted without one. The
    /// default is none.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// How long one Redis call may take before it counts as a failure (503 `unavailable`),
    /// so a hung Redis cannot hang requests. The default is 1 second.
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// The CA certificate (PEM) that signed Redis's TLS certificate, for `rediss://` URLs
    /// (`REDIS_CA_CERT`, a file path). The default is the system's trust store.
    pub fn redis_ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.redis_ca_cert = Some(pem.into());
        self
    }

    /// Seals session records at rest with this key (32 bytes; `SESSION_ENCRYPTION_KEY`, base64),
    /// in stores that support it (the Redis store): XChaCha20-Poly1305 with the session id as
    /// associated data, and user ids in key names replaced by a keyed hash. The default is no
    /// sealing.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key is not 32 bytes.
    pub fn encryption_key(mut self, key: &[u8]) -> Result<Self, ConfigError> {
        if key.len() != 32 {
            return Err(ConfigError::Invalid {
                name: "SESSION_ENCRYPTION_KEY",
                value: "[redacted]".to_owned(),
                expected: "exactly 32 bytes, e.g. `openssl rand -base64 32`",
            });
        }
        self.encryption_keys.insert(0, Secret(key.into()));
        Ok(self)
    }

    /// An older sealing key (`SESSION_ENCRYPTION_PREVIOUS_KEYS`): records sealed with it still
    /// open, and are sealed again with the current key on their next write.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key is not 32 bytes, [`ConfigError::Conflict`] when no
    /// current key is set.
    pub fn previous_encryption_key(mut self, key: &[u8]) -> Result<Self, ConfigError> {
        if self.encryption_keys.is_empty() {
            return Err(ConfigError::Conflict {
                name: "previous_encryption_key",
                reason: "set the current key with encryption_key first",
            });
        }
        if key.len() != 32 {
            return Err(ConfigError::Invalid {
                name: "SESSION_ENCRYPTION_PREVIOUS_KEYS",
                value: "[redacted]".to_owned(),
                expected: "exactly 32 bytes each, base64",
            });
        }
        self.encryption_keys.push(Secret(key.into()));
        Ok(self)
    }

    /// How long a "not revoked" answer may be served from the in-process cache before the
    /// store is asked again. This bounds how long a revocation made by *another* instance can
    /// go unnoticed here; revocations made by this process are seen at once. The default is
    /// 1 second (SPEC §3).
    pub fn revocation_cache_ttl(mut self, ttl: Duration) -> Self {
        self.revocation_cache_ttl = ttl;
        self
    }

    /// How many sessions the revocation cache holds. The default is 100 000.
    pub fn revocation_cache_capacity(mut self, capacity: u64) -> Self {
        self.revocation_cache_capacity = capacity;
        self
    }

    /// When the store cannot be reached and the revocation cache has no answer, let requests
    /// with a valid token through (`true`) instead of answering 503 (`false`). The default is
    /// `false` (fail closed); fail-open means a revoked session may be used while the store is
    /// down.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// The `realm` of `WWW-Authenticate` challenges. The default is `api`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The access token lifetime.
    pub fn access_token_ttl_value(&self) -> Duration {
        self.access_token_ttl
    }

    /// The refresh token lifetime.
    pub fn refresh_token_ttl_value(&self) -> Duration {
        self.refresh_token_ttl
    }

    /// The absolute session lifetime.
    pub fn session_ttl_value(&self) -> Duration {
        self.session_ttl
    }

    /// The per-user session limit.
    pub fn max_sessions_value(&self) -> usize {
        self.max_sessions
    }

    /// The per-user session limit policy.
    pub fn session_limit_policy_value(&self) -> SessionLimitPolicy {
        self.limit_policy
    }

    /// The refresh-advice threshold.
    pub fn refresh_threshold_value(&self) -> Duration {
        self.refresh_threshold
    }

    /// The refresh-token reuse grace interval.
    pub fn refresh_reuse_interval_value(&self) -> Duration {
        self.reuse_interval
    }

    /// The clock-skew leeway.
    pub fn leeway_value(&self) -> Duration {
        self.leeway
    }

    /// The rate-limit window.
    pub fn rate_limit_window_value(&self) -> Duration {
        self.rate_limit_window
    }

    /// The rate-limit request budget per window.
    pub fn rate_limit_max_requests_value(&self) -> u32 {
        self.rate_limit_max_requests
    }

    /// The configured issuer, if any.
    pub fn issuer_value(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The configured audience, if any.
    pub fn audience_value(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The Redis node URLs from `REDIS_URL` (empty when unset: the memory store is used).
    pub fn redis_urls(&self) -> &[String] {
        &self.redis_urls
    }

    /// The Redis key prefix (`REDIS_KEY_PREFIX`, default `tjs`).
    pub fn redis_key_prefix(&self) -> &str {
        &self.redis_key_prefix
    }

    /// Origins trusted for cookie-only refresh and, in the example server, CORS
    /// (`ALLOWED_ORIGINS`).
    pub fn allowed_origins_value(&self) -> &[String] {
        &self.allowed_origins
    }

    /// The cookie `Secure`, `HttpOnly` and `SameSite` attributes.
    pub fn cookie_attributes(&self) -> (bool, bool, SameSite) {
        (
            self.cookie_secure,
            self.cookie_http_only,
            self.cookie_same_site,
        )
    }
}

fn not_a_pem_algorithm(name: &'static str, alg: Algorithm) -> ConfigError {
    ConfigError::Key {
        name,
        alg,
        reason: "HMAC algorithms take the secret (JWT_SECRET), not a PEM key".to_owned(),
    }
}

fn decoding_from_pem(
    name: &'static str,
    alg: Algorithm,
    pem: &[u8],
) -> Result<DecodingKey, ConfigError> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        _ => return Err(not_a_pem_algorithm(name, alg)),
    }
    .map_err(|e| ConfigError::Key {
        name,
        alg,
        reason: e.to_string(),
    })
}

/// A stable, non-secret key id: a short hash of the algorithm and the key bytes. For HMAC the
/// hash input is the secret, but 64 bits of a SHA-256 reveal nothing usable about it.
pub(crate) fn key_id(alg: Algorithm, key: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"tower-jwt-session kid v1\0");
    h.update(format!("{alg:?}").as_bytes());
    h.update(b"\0");
    h.update(key);
    let digest = h.finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9])
}

/// A 32-byte key given in base64 (standard or URL-safe, padded or not).
fn encryption_key(name: &'static str, value: &str) -> Result<Secret, ConfigError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let v = value.trim();
    let bytes = STANDARD
        .decode(v)
        .or_else(|_| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')))
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or(ConfigError::Invalid {
            name,
            value: "[redacted]".to_owned(),
            expected: "32 random bytes in base64, e.g. the output of `openssl rand -base64 32`",
        })?;
    Ok(Secret(bytes.into()))
}

fn check_secret(name: &'static str, secret: &[u8]) -> Result<Secret, ConfigError> {
    if secret == PLACEHOLDER_SECRET.as_bytes() {
        return Err(ConfigError::WeakSecret {
            name,
            reason: "it is the placeholder from the documentation; set a random string of at least 32 bytes, e.g. `openssl rand -base64 48`",
        });
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(ConfigError::WeakSecret {
            name,
            reason: "it is shorter than 32 bytes; set a random string of at least 32 bytes, e.g. `openssl rand -base64 48`",
        });
    }
    Ok(Secret(secret.into()))
}

/// Parses `500ms`, `90s`, `15m`, `2h` or `30d` (a whole number and a unit, nothing else).
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::config::parse_duration;
///
/// assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert!(parse_duration("15").is_err());
/// ```
///
/// # Errors
/// `Err(())` for anything else, including a missing unit, a sign, a fraction or an overflow.
#[allow(clippy::result_unit_err)]
pub fn parse_duration(input: &str) -> Result<Duration, ()> {
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or(())?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() || digits.len() > 15 {
        return Err(());
    }
    let n: u64 = digits.parse().map_err(|_| ())?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(()),
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or(())
}

fn parse_positive<T: std::str::FromStr + PartialOrd + From<u8>>(v: &str) -> Option<T> {
    v.trim().parse::<T>().ok().filter(|n| *n >= T::from(1u8))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Hides a password in `redis://user:password@host` before it goes into an error message or
/// `Debug` output.
fn redact_url_password(v: &str) -> String {
    v.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let creds = &u[scheme + 3..at];
                match creds.find(':') {
                    Some(colon) => format!(
                        "{}{}:[redacted]{}",
                        &u[..scheme + 3],
                        &creds[..colon],
                        &u[at..]
                    ),
                    None => u.to_owned(),
                }
            }
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn from(vars: &[(&str, &str)]) -> Result<SessionConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SessionConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = from(&[("JWT_SECRET", SECRET)]).unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(7200));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(30 * 86400));
        assert_eq!(c.session_ttl, Duration::from_secs(90 * 86400));
        assert_eq!(c.max_sessions, 10);
        assert_eq!(c.limit_policy, SessionLimitPolicy::Evict);
        assert_eq!(c.refresh_threshold, Duration::from_secs(900));
        assert_eq!(c.reuse_interval, Duration::from_secs(10));
        assert_eq!(c.leeway, Duration::from_secs(30));
        assert_eq!(c.rate_limit_window, Duration::from_millis(900_000));
        assert_eq!(c.rate_limit_max_requests, 100);
        assert!(c.cookie_secure && c.cookie_http_only);
        assert_eq!(c.cookie_same_site, SameSite::Strict);
        assert_eq!(c.redis_key_prefix, "tjs");
        assert!(c.redis_urls.is_empty() && c.issuer.is_none() && c.audience.is_none());
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("JWT_SECRET", SECRET),
            (
                "JWT_PREVIOUS_SECRETS",
                "old-secret-old-secret-old-secret-1, old-secret-old-secret-old-secret-2",
            ),
            ("JWT_ACCESS_TOKEN_EXPIRY", "30m"),
            ("JWT_REFRESH_TOKEN_EXPIRY", "7d"),
            ("JWT_SESSION_EXPIRY", "14d"),
            ("JWT_MAX_CONCURRENT_SESSIONS", "3"),
            ("JWT_SESSION_LIMIT_POLICY", "deny"),
            ("JWT_AUTO_REFRESH_THRESHOLD", "90s"),
            ("JWT_REFRESH_REUSE_INTERVAL", "500ms"),
            ("JWT_ISSUER", "https://issuer.example"),
            ("JWT_AUDIENCE", "my-api"),
            ("JWT_LEEWAY", "5s"),
            ("RATE_LIMIT_WINDOW_MS", "60000"),
            ("RATE_LIMIT_MAX_REQUESTS", "7"),
            ("SESSION_COOKIE_SECURE", "false"),
            ("SESSION_COOKIE_HTTP_ONLY", "false"),
            ("SESSION_COOKIE_SAME_SITE", "lax"),
            ("REDIS_URL", "redis://a:7000,redis://b:7001"),
            ("REDIS_KEY_PREFIX", "app1"),
            (
                "ALLOWED_ORIGINS",
                "https://app.example.com, http://localhost:5173/",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.allowed_origins,
            vec!["https://app.example.com", "http://localhost:5173"]
        );
        assert_eq!(c.previous_secrets.len(), 2);
        assert_eq!(c.access_token_ttl, Duration::from_secs(1800));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(7 * 86400));
        assert_eq!(c.session_ttl, Duration::from_secs(14 * 86400));
        assert_eq!(c.max_sessions, 3);
        assert_eq!(c.limit_policy, SessionLimitPolicy::Deny);
        assert_eq!(c.refresh_threshold, Duration::from_secs(90));
        assert_eq!(c.reuse_interval, Duration::from_millis(500));
        assert_eq!(c.issuer.as_deref(), Some("https://issuer.example"));
        assert_eq!(c.audience.as_deref(), Some("my-api"));
        assert_eq!(c.leeway, Duration::from_secs(5));
        assert_eq!(c.rate_limit_window, Duration::from_secs(60));
        assert_eq!(c.rate_limit_max_requests, 7);
        assert!(!c.cookie_secure && !c.cookie_http_only);
        assert_eq!(c.cookie_same_site, SameSite::Lax);
        assert_eq!(c.redis_urls, vec!["redis://a:7000", "redis://b:7001"]);
        assert_eq!(c.redis_key_prefix, "app1");
    }

    #[test]
    fn missing_secret_names_the_variable_and_the_fix() {
        let err = from(&[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(
            err,
            ConfigError::Missing {
                name: "JWT_SECRET",
                ..
            }
        ));
        assert!(
            text.contains("JWT_SECRET") && text.contains("32 bytes"),
            "{text}"
        );
    }

    #[test]
    fn short_and_placeholder_secrets_are_refused_without_echoing_them() {
        let err = from(&[("JWT_SECRET", "short-secret")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::WeakSecret {
                name: "JWT_SECRET",
                ..
            }
        ));
        assert!(!err.to_string().contains("short-secret"));

        let err = from(&[("JWT_SECRET", PLACEHOLDER_SECRET)]).unwrap_err();
        assert!(err.to_string().contains("placeholder"), "{err}");
        assert!(!err.to_string().contains(PLACEHOLDER_SECRET));

        let err = from(&[("JWT_SECRET", SECRET), ("JWT_PREVIOUS_SECRETS", "tiny")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::WeakSecret {
                name: "JWT_PREVIOUS_SECRETS",
                ..
            }
        ));
    }

    #[test]
    fn bad_values_name_variable_value_and_form() {
        let cases = [
            ("JWT_ACCESS_TOKEN_EXPIRY", "2 hours"),
            ("JWT_REFRESH_TOKEN_EXPIRY", "-1d"),
            ("JWT_SESSION_EXPIRY", "1.5d"),
            ("JWT_AUTO_REFRESH_THRESHOLD", "15"),
            ("JWT_REFRESH_REUSE_INTERVAL", "10x"),
            ("JWT_LEEWAY", "99999999999999999999s"),
            ("JWT_MAX_CONCURRENT_SESSIONS", "0"),
            ("JWT_MAX_CONCURRENT_SESSIONS", "ten"),
            ("JWT_SESSION_LIMIT_POLICY", "oldest"),
            ("RATE_LIMIT_WINDOW_MS", "15m"),
            ("RATE_LIMIT_MAX_REQUESTS", "-5"),
            ("SESSION_COOKIE_SECURE", "maybe"),
            ("SESSION_COOKIE_HTTP_ONLY", "2"),
            ("SESSION_COOKIE_SAME_SITE", "relaxed"),
            ("REDIS_URL", "localhost:6379"),
            ("ALLOWED_ORIGINS", "app.example.com"),
            ("ALLOWED_ORIGINS", "https://app.example.com/path"),
        ];
        for (name, value) in cases {
            let err = from(&[("JWT_SECRET", SECRET), (name, value)]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name), "{name}: {text}");
            assert!(text.contains(value), "{name}: {text}");
            assert!(text.contains("expected"), "{name}: {text}");
        }
    }

    #[test]
    fn debug_hides_redis_passwords_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("tjs-debug-ca-{}", std::process::id()));
        let pem = "-----BEGIN CERTIFICATE-----\nMIIBnotreallyacert\n-----END CERTIFICATE-----\n";
        std::fs::write(&dir, pem).unwrap();
        let c = from(&[
            ("JWT_SECRET", SECRET),
            (
                "REDIS_URL",
                "redis://user:hunter2@h:6379,rediss://:s3cret@h2:6380",
            ),
            ("REDIS_CA_CERT", dir.to_str().unwrap()),
            (
                "SESSION_ENCRYPTION_KEY",
                "c2VhbGluZy1rZXktc2VhbGluZy1rZXktc2VhbGluZy0=",
            ),
            ("JWT_ISSUER", "https://issuer.example"),
        ])
        .unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(c.redis_urls().len(), 2, "the URLs themselves are untouched");
        assert!(c.redis_urls()[0].contains("hunter2"));
        for text in [format!("{c:?}"), format!("{c:#?}")] {
            for secret in ["hunter2", "s3cret", SECRET, "c2Vh", "sealing", "MIIB"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            for kept in [
                "redis://user:[redacted]@h:6379",
                "rediss://:[redacted]@h2:6380",
                &format!("[{} bytes of PEM]", pem.len()),
                "https://issuer.example",
                "max_sessions: 10",
                "redis_key_prefix: \"tjs\"",
                "secret: [redacted]",
            ] {
                assert!(text.contains(kept), "{kept} missing in {text}");
            }
        }
        let manager = crate::SessionManager::new(c).unwrap();
        let text = format!("{manager:?}");
        assert!(text.contains("rediss://:[redacted]@h2:6380"), "{text}");
        for secret in ["hunter2", "s3cret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn redis_passwords_stay_out_of_errors() {
        let err = from(&[
            ("JWT_SECRET", SECRET),
            ("REDIS_URL", "http://user:hunter2@host:6379"),
        ])
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn contradictions_are_refused() {
        let c = || SessionConfig::new(SECRET).unwrap();
        assert!(
            c().refresh_token_ttl(Duration::from_secs(100 * 86400))
                .validate()
                .is_err()
        );
        assert!(
            c().refresh_threshold(Duration::from_secs(3 * 3600))
                .validate()
                .is_err()
        );
        assert!(
            c().cookie_same_site(SameSite::None)
                .cookie_secure(false)
                .validate()
                .is_err()
        );
        assert!(c().allowed_algorithms([]).validate().is_err());
        assert!(c().access_token_ttl(Duration::ZERO).validate().is_err());
        assert!(c().max_sessions_per_user(0).validate().is_err());
        assert!(c().validate().is_ok());
    }

    #[test]
    fn encryption_keys_are_checked_and_never_echoed() {
        let key = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
        let c = from(&[("JWT_SECRET", SECRET), ("SESSION_ENCRYPTION_KEY", key)]).unwrap();
        assert_eq!(c.encryption_keys.len(), 1);
        assert!(!format!("{c:?}").contains(key));
        for bad in ["short", "not base64 at all!!", "q83vEjRWeJCrze8SNFZ4kA=="] {
            let err = from(&[("JWT_SECRET", SECRET), ("SESSION_ENCRYPTION_KEY", bad)]).unwrap_err();
            assert!(err.to_string().contains("SESSION_ENCRYPTION_KEY"), "{err}");
            assert!(!err.to_string().contains(bad), "{err}");
        }
        let err = from(&[
            ("JWT_SECRET", SECRET),
            ("SESSION_ENCRYPTION_PREVIOUS_KEYS", key),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                name: "SESSION_ENCRYPTION_KEY",
                ..
            }
        ));
        let c = from(&[
            ("JWT_SECRET", SECRET),
            ("SESSION_ENCRYPTION_KEY", key),
            (
                "SESSION_ENCRYPTION_PREVIOUS_KEYS",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
        ])
        .unwrap();
        assert_eq!(c.encryption_keys.len(), 2);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "15",
            "1.5h",
            "-1s",
            "15 m",
            "15M",
            "1w",
            "1e3s",
            "18446744073709551615d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_prints_secrets() {
        let c = SessionConfig::new(SECRET)
            .unwrap()
            .previous_secret("previous-previous-previous-previous")
            .unwrap();
        let text = format!("{c:?}");
        assert!(
            !text.contains(SECRET) && !text.contains("previous-previous"),
            "{text}"
        );
        assert!(text.contains("[redacted]"));
        // Not even as the byte values of the secret.
        let bytes = format!("{:?}", SECRET.as_bytes());
        assert!(!text.contains(&bytes[1..20]));
    }

    #[test]
    fn kid_is_stable_and_short() {
        let a = key_id(Algorithm::HS256, b"k1");
        assert_eq!(a, key_id(Algorithm::HS256, b"k1"));
        assert_ne!(a, key_id(Algorithm::HS256, b"k2"));
        assert_ne!(a, key_id(Algorithm::HS512, b"k1"));
        assert_eq!(a.len(), 12);
    }
}

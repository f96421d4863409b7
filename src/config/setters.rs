//! The setters of [`SessionConfig`]: one per setting, each handing its value to the component
//! that owns it, so that `SessionConfig::new(secret)?.access_token_ttl(..).issuer(..)` reads as
//! one chain. Read the values back through the components (`config.rules()`, ...).

use std::time::Duration;

use super::{Algorithm, ConfigError, SameSite, SessionConfig, SessionLimitPolicy};

impl SessionConfig {
    /// Adds an older HMAC secret accepted for verification only (`JWT_PREVIOUS_SECRETS`); see
    /// [`TokenSettings::with_previous_secret`](super::TokenSettings::with_previous_secret).
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] as for [`new`](Self::new).
    pub fn previous_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        self.tokens = self.tokens.with_previous_secret(secret)?;
        Ok(self)
    }

    /// Signs access tokens with an asymmetric key; see
    /// [`TokenSettings::with_signing_key_pem`](super::TokenSettings::with_signing_key_pem).
    ///
    /// # Errors
    /// [`ConfigError::Key`] when a PEM cannot be parsed for `alg`, or `alg` is an HMAC algorithm;
    /// [`ConfigError::KeyRefused`] when a key does not fit `alg`, is a weak RSA key, or the
    /// public key is not the private key's.
    pub fn signing_key_pem(
        mut self,
        alg: Algorithm,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        self.tokens = self
            .tokens
            .with_signing_key_pem(alg, private_pem, public_pem)?;
        Ok(self)
    }

    /// Signs access tokens with an asymmetric private key, its public half derived from it; see
    /// [`TokenSettings::with_private_key_pem`](super::TokenSettings::with_private_key_pem).
    ///
    /// # Errors
    /// As [`signing_key_pem`](Self::signing_key_pem).
    pub fn private_key_pem(
        mut self,
        alg: Algorithm,
        private_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        self.tokens = self.tokens.with_private_key_pem(alg, private_pem)?;
        Ok(self)
    }

    /// Adds a public key accepted for verification and published in the JWKS; see
    /// [`TokenSettings::with_verification_key_pem`](super::TokenSettings::with_verification_key_pem).
    ///
    /// # Errors
    /// [`ConfigError::Key`] when the PEM cannot be parsed for `alg`.
    pub fn verification_key_pem(
        mut self,
        alg: Algorithm,
        public_pem: &[u8],
    ) -> Result<Self, ConfigError> {
        self.tokens = self.tokens.with_verification_key_pem(alg, public_pem)?;
        Ok(self)
    }

    /// Keeps accepting `HS256` access tokens while a private key signs (`JWT_ACCEPT_HS256`);
    /// see [`TokenSettings::with_hs256_accepted`](super::TokenSettings::with_hs256_accepted).
    pub fn hs256_accepted(mut self, accepted: bool) -> Self {
        self.tokens = self.tokens.with_hs256_accepted(accepted);
        self
    }

    /// The algorithms a presented token may use; see
    /// [`TokenSettings::with_allowed_algorithms`](super::TokenSettings::with_allowed_algorithms).
    pub fn allowed_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.tokens = self.tokens.with_allowed_algorithms(algs);
        self
    }

    /// The `iss` claim issued and required (`JWT_ISSUER`). The default is none.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.tokens = self.tokens.with_issuer(issuer);
        self
    }

    /// The `aud` claim issued and required (`JWT_AUDIENCE`). The default is none.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.tokens = self.tokens.with_audience(audience);
        self
    }

    /// Clock-skew allowance for `exp` and `nbf` (`JWT_LEEWAY`). The default is 30 seconds.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.tokens = self.tokens.with_leeway(leeway);
        self
    }

    /// The `realm` of `WWW-Authenticate` challenges. The default is `api`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.tokens = self.tokens.with_realm(realm);
        self
    }

    /// Access token lifetime (`JWT_ACCESS_TOKEN_EXPIRY`). The default is 2 hours.
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.rules = self.rules.with_access_token_ttl(ttl);
        self
    }

    /// Refresh token lifetime (`JWT_REFRESH_TOKEN_EXPIRY`), capped by the session lifetime.
    /// The default is 30 days.
    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.rules = self.rules.with_refresh_token_ttl(ttl);
        self
    }

    /// Absolute session lifetime from login (`JWT_SESSION_EXPIRY`). The default is 90 days.
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.rules = self.rules.with_session_ttl(ttl);
        self
    }

    /// Concurrent sessions per user (`JWT_MAX_CONCURRENT_SESSIONS`). The default is 10.
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.rules = self.rules.with_max_sessions(max);
        self
    }

    /// What a login beyond the session limit does (`JWT_SESSION_LIMIT_POLICY`). The default
    /// is [`SessionLimitPolicy::Evict`].
    pub fn session_limit_policy(mut self, policy: SessionLimitPolicy) -> Self {
        self.rules = self.rules.with_limit_policy(policy);
        self
    }

    /// Remaining lifetime at or under which responses advise a refresh
    /// (`JWT_AUTO_REFRESH_THRESHOLD`); see
    /// [`SessionRules::with_refresh_threshold`](super::SessionRules::with_refresh_threshold).
    pub fn refresh_threshold(mut self, threshold: Duration) -> Self {
        self.rules = self.rules.with_refresh_threshold(threshold);
        self
    }

    /// Grace window of a just-rotated refresh token (`JWT_REFRESH_REUSE_INTERVAL`). The
    /// default is 10 seconds; zero turns the grace off.
    pub fn refresh_reuse_interval(mut self, interval: Duration) -> Self {
        self.rules = self.rules.with_reuse_interval(interval);
        self
    }

    /// `Secure` attribute of the refresh-token cookie (`SESSION_COOKIE_SECURE`). The default
    /// is `true`.
    pub fn cookie_secure(mut self, secure: bool) -> Self {
        self.cookies = self.cookies.with_secure(secure);
        self
    }

    /// `HttpOnly` attribute of the refresh-token cookie (`SESSION_COOKIE_HTTP_ONLY`). The
    /// default is `true`.
    pub fn cookie_http_only(mut self, http_only: bool) -> Self {
        self.cookies = self.cookies.with_http_only(http_only);
        self
    }

    /// `SameSite` attribute of the refresh-token cookie (`SESSION_COOKIE_SAME_SITE`). The
    /// default is [`SameSite::Strict`].
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.cookies = self.cookies.with_same_site(same_site);
        self
    }

    /// Name of the refresh-token cookie; see
    /// [`CookieSettings::with_name`](super::CookieSettings::with_name). The default is
    /// `tjs_refresh`.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookies = self.cookies.with_name(name);
        self
    }

    /// `Path` attribute of the refresh-token cookie. The default is `/api/token`.
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookies = self.cookies.with_path(path);
        self
    }

    /// Origins trusted for cookie-only refresh and browser logins (`ALLOWED_ORIGINS`). The
    /// default is none.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cookies = self.cookies.with_allowed_origins(origins);
        self
    }

    /// How long one Redis call may take before it counts as a failure. The default is 1
    /// second.
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis = self.redis.with_timeout(timeout);
        self
    }

    /// The CA certificate (PEM) that signed Redis's TLS certificate (`REDIS_CA_CERT`).
    pub fn redis_ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.redis = self.redis.with_ca_cert_pem(pem);
        self
    }

    /// Seals session records at rest with this 32-byte key (`SESSION_ENCRYPTION_KEY`); see
    /// [`RedisSettings::with_encryption_key`](super::RedisSettings::with_encryption_key).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key is not 32 bytes.
    pub fn encryption_key(mut self, key: &[u8]) -> Result<Self, ConfigError> {
        self.redis = self.redis.with_encryption_key(key)?;
        self.postgres = self.postgres.with_encryption_key(key)?;
        Ok(self)
    }

    /// An older sealing key (`SESSION_ENCRYPTION_PREVIOUS_KEYS`).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key is not 32 bytes, [`ConfigError::Conflict`] when no
    /// current key is set.
    pub fn previous_encryption_key(mut self, key: &[u8]) -> Result<Self, ConfigError> {
        self.redis = self.redis.with_previous_encryption_key(key)?;
        self.postgres = self.postgres.with_previous_encryption_key(key)?;
        Ok(self)
    }

    /// Accepts records without a whole seal for one migration
    /// (`SESSION_ENCRYPTION_ACCEPT_UNSEALED`); see
    /// [`RedisSettings::with_unsealed_records_accepted`](super::RedisSettings::with_unsealed_records_accepted).
    pub fn unsealed_records_accepted(mut self, accept: bool) -> Self {
        self.redis = self.redis.with_unsealed_records_accepted(accept);
        self.postgres = self.postgres.with_unsealed_records_accepted(accept);
        self
    }

    /// How long a "not revoked" answer is served from the in-process cache. The default is 1
    /// second.
    pub fn revocation_cache_ttl(mut self, ttl: Duration) -> Self {
        self.revocation_cache = self.revocation_cache.with_ttl(ttl);
        self
    }

    /// How many sessions the revocation cache holds. The default is 100 000.
    pub fn revocation_cache_capacity(mut self, capacity: u64) -> Self {
        self.revocation_cache = self.revocation_cache.with_capacity(capacity);
        self
    }

    /// Let requests with a valid token through when the store cannot answer; see
    /// [`RevocationCacheSettings::with_fail_open`](super::RevocationCacheSettings::with_fail_open).
    /// The default is `false` (fail closed).
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.revocation_cache = self.revocation_cache.with_fail_open(fail_open);
        self
    }

    /// How many verified access tokens are kept in memory (`JWT_VERIFIED_CACHE_CAPACITY`);
    /// `0` turns the cache off. The default is 10 000; see
    /// [`TokenCacheSettings`](super::TokenCacheSettings).
    pub fn verified_cache_capacity(mut self, capacity: u64) -> Self {
        self.token_cache = self.token_cache.with_capacity(capacity);
        self
    }
}

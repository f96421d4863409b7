//! [`RedisSettings`] and [`StoreSettings`]: which store the variables name, and how to reach
//! and seal it.

use std::fmt;
use std::time::Duration;

use super::ConfigError;
use super::env::{Env, split_list};
use super::sealing::{add_sealing_key, read_sealing_keys};
use super::secret::Secret;

/// The store the settings name: what [`SessionConfig::store`](super::SessionConfig::store)
/// answers, so that the manager is built on the store the variables ask for, never silently on
/// another.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum StoreSettings<'a> {
    /// No store URL is set: sessions live in this process's memory.
    Memory,
    /// `REDIS_URL` is set: sessions live in Redis (one node, or a cluster).
    Redis(&'a RedisSettings),
    /// `DATABASE_URL` is set (or `SESSION_STORE=postgres`): sessions live in PostgreSQL.
    Postgres(&'a super::PostgresSettings),
}

impl StoreSettings<'_> {
    /// `"memory"`, `"redis"` or `"postgres"`, as the health route reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis(_) => "redis",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// How to reach Redis and seal what is stored there: node URLs (`REDIS_URL`), key prefix
/// (`REDIS_KEY_PREFIX`), per-call timeout, CA certificate for `rediss://` (`REDIS_CA_CERT`),
/// the record-sealing keys (`SESSION_ENCRYPTION_KEY`, `SESSION_ENCRYPTION_PREVIOUS_KEYS`),
/// whether writes wait for replicas (`REDIS_WAIT_REPLICAS`, `REDIS_WAIT_TIMEOUT`), and whether
/// a Redis that evicts keys is accepted (`REDIS_ALLOW_EVICTION`).
///
/// `Debug` output holds no password of a URL (`redis://user:[redacted]@host`), no key, and the
/// CA certificate as its length.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::config::RedisSettings;
///
/// let redis = RedisSettings::new(["redis://10.0.0.5:6379"]).with_key_prefix("app1");
/// assert_eq!(redis.urls(), ["redis://10.0.0.5:6379"]);
/// assert_eq!(redis.key_prefix(), "app1");
/// assert_eq!(redis.timeout(), Duration::from_secs(1));
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisSettings {
    urls: Vec<String>,
    key_prefix: String,
    timeout: Duration,
    ca_cert: Option<Vec<u8>>,
    encryption_keys: Vec<Secret>,
    accept_unsealed: bool,
    wait_replicas: Option<(u32, Duration)>,
    allow_eviction: bool,
}

/// The longest `REDIS_WAIT_TIMEOUT`: every confirmed write may wait this long.
const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Hand-written so that the output holds no secret (see the type's docs).
impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Redis URLs with their passwords hidden.
        struct Urls<'a>(&'a [String]);
        impl fmt::Debug for Urls<'_> {
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
        let Self {
            urls,
            key_prefix,
            timeout,
            ca_cert,
            encryption_keys,
            accept_unsealed,
            wait_replicas,
            allow_eviction,
        } = self;
        f.debug_struct("RedisSettings")
            .field("urls", &Urls(urls))
            .field("key_prefix", key_prefix)
            .field("timeout", timeout)
            .field("ca_cert", &ca_cert.as_ref().map(|pem| Length(pem.len())))
            .field("encryption_keys", encryption_keys)
            .field("accept_unsealed", accept_unsealed)
            .field("wait_replicas", wait_replicas)
            .field("allow_eviction", allow_eviction)
            .finish()
    }
}

impl Default for RedisSettings {
    /// No URL (the memory store), prefix `tjs`, 1 s timeout, no sealing.
    fn default() -> Self {
        Self::new(Vec::<String>::new())
    }
}

impl RedisSettings {
    /// These node URLs (one, or several for a cluster), prefix `tjs`, 1 s timeout, the
    /// system's trust store, no sealing.
    pub fn new<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            key_prefix: "tjs".to_owned(),
            timeout: Duration::from_secs(1),
            ca_cert: None,
            encryption_keys: Vec::new(),
            accept_unsealed: false,
            wait_replicas: None,
            allow_eviction: false,
        }
    }

    /// Reads `REDIS_URL`, `REDIS_KEY_PREFIX`, `REDIS_CA_CERT`, `REDIS_WAIT_REPLICAS`,
    /// `REDIS_WAIT_TIMEOUT`, `REDIS_ALLOW_EVICTION`, `SESSION_ENCRYPTION_KEY` and
    /// `SESSION_ENCRYPTION_PREVIOUS_KEYS` from the process environment. Without `REDIS_URL`
    /// the URL list is empty.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is malformed; a URL's password and the keys
    /// are never in it.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(super::process_env)
    }

    /// As [`from_env`](Self::from_env), through `lookup`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Env::new(&lookup))
    }

    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut redis = Self::new(env.list("REDIS_URL").unwrap_or_default());
        if !redis
            .urls
            .iter()
            .all(|u| u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            return Err(ConfigError::Invalid {
                name: "REDIS_URL",
                value: redact_url_password(&env.get("REDIS_URL").unwrap_or_default()),
                expected: "a redis:// or rediss:// URL, or several comma-separated for a cluster",
            });
        }
        // `SESSION_STORE` naming another store leaves REDIS_URL to the application.
        let elsewhere = matches!(
            super::postgres::read_store_choice(env)?,
            Some(choice) if choice != super::StoreChoice::Redis
        );
        if !redis.urls.is_empty() && !cfg!(feature = "redis") && !elsewhere {
            return Err(ConfigError::StoreNotBuilt {
                name: "REDIS_URL",
                feature: "redis",
            });
        }
        if let Some(prefix) = env.get("REDIS_KEY_PREFIX") {
            redis.key_prefix = prefix;
        }
        if let Some(path) = env.get("REDIS_CA_CERT") {
            redis.ca_cert = Some(read_ca_cert(path)?);
        }
        (redis.encryption_keys, redis.accept_unsealed) = read_sealing_keys(env)?;
        let timeout = env.duration("REDIS_WAIT_TIMEOUT")?;
        match env.count::<u32>("REDIS_WAIT_REPLICAS")? {
            Some(0) | None if timeout.is_some() => {
                return Err(ConfigError::Missing {
                    name: "REDIS_WAIT_REPLICAS",
                    hint: "REDIS_WAIT_TIMEOUT is set, but no write waits for replicas: set how many must confirm each write",
                });
            }
            Some(0) | None => {}
            Some(replicas) => {
                let timeout = timeout.unwrap_or(redis.timeout);
                redis = redis
                    .with_wait_replicas(replicas, timeout)
                    .map_err(|_| ConfigError::Invalid {
                        name: "REDIS_WAIT_TIMEOUT",
                        value: humantime::format_duration(timeout).to_string(),
                        expected: "a duration from 1ms to 10s (WAIT with no timeout would block a write forever)",
                    })?;
            }
        }
        if let Some(allow) = env.flag("REDIS_ALLOW_EVICTION")? {
            redis.allow_eviction = allow;
        }
        Ok(redis)
    }

    /// The node URLs: one `redis://` or `rediss://` URL, or several for a cluster.
    pub fn with_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// The prefix of every key (`REDIS_KEY_PREFIX`). The default is `tjs`.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one Redis call may take before it counts as a failure (503 `unavailable`),
    /// so a hung Redis cannot hang requests. The default is 1 second.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The CA certificate (PEM) that signed Redis's TLS certificate, for `rediss://` URLs
    /// (`REDIS_CA_CERT`, a file path). The default is the system's trust store.
    pub fn with_ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_cert = Some(pem.into());
        self
    }

    /// Seals session records at rest with this key (32 bytes; `SESSION_ENCRYPTION_KEY`,
    /// base64): XChaCha20-Poly1305 with the session id as associated data, and user ids in key
    /// names replaced by a keyed hash. The default is no sealing.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key is not 32 bytes.
    pub fn with_encryption_key(mut self, key: &[u8]) -> Result<Self, ConfigError> {
        add_sealing_key(&mut self.encryption_keys, key, true)?;
        Ok(self)
    }

    /// An older sealing key (`SESSION_ENCRYPTION_PREVIOUS_KEYS`): records sealed with it still
    /// open, and are sealed again with the current key on their next write.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key is not 32 bytes, [`ConfigError::Conflict`] when no
    /// current key is set.
    pub fn with_previous_encryption_key(mut self, key: &[u8]) -> Result<Self, ConfigError> {
        add_sealing_key(&mut self.encryption_keys, key, false)?;
        Ok(self)
    }

    /// Acknowledges a write (a login, a rotation, a logout, an eviction) only once `replicas`
    /// replicas of the node holding it have it (Redis `WAIT`), waiting at most `timeout`
    /// (`REDIS_WAIT_REPLICAS`, `REDIS_WAIT_TIMEOUT`); a write that fewer replicas confirm in
    /// time is answered 503, although the primary keeps it. The default is no waiting: Redis
    /// replicates asynchronously, and a failover can lose what the primary acknowledged in its
    /// last moments, logouts included (docs/deployment.md measures it).
    ///
    /// What it costs: each write waits for a round trip from the primary to its replicas and
    /// back, and the writes to one primary are confirmed one at a time (they go over a
    /// connection of their own, so reads never wait behind them). With fewer than `replicas`
    /// replicas reachable, every write on that primary answers 503 after `timeout` (health
    /// reports `store_replicas_missing`): run one replica more than you wait for.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_jwt_session::config::RedisSettings;
    ///
    /// let redis = RedisSettings::new(["redis://10.0.0.5:6379", "redis://10.0.0.6:6379"])
    ///     .with_wait_replicas(1, Duration::from_millis(500))?;
    /// assert_eq!(redis.wait_replicas(), Some((1, Duration::from_millis(500))));
    /// # Ok::<(), tower_jwt_session::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a timeout of zero (`WAIT` would block forever) or above
    /// 10 s. `replicas` 0 turns waiting off.
    pub fn with_wait_replicas(
        mut self,
        replicas: u32,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        if timeout < Duration::from_millis(1) || timeout > MAX_WAIT_TIMEOUT {
            return Err(ConfigError::Invalid {
                name: "wait_replicas timeout",
                value: humantime::format_duration(timeout).to_string(),
                expected: "a duration from 1ms to 10s (WAIT with no timeout would block a write forever)",
            });
        }
        self.wait_replicas = (replicas > 0).then_some((replicas, timeout));
        Ok(self)
    }

    /// How many replicas must confirm each write, and how long a write waits for them; `None`
    /// when writes do not wait (see [`with_wait_replicas`](Self::with_wait_replicas)).
    pub fn wait_replicas(&self) -> Option<(u32, Duration)> {
        self.wait_replicas
    }

    /// Accepts a Redis whose `maxmemory-policy` evicts keys when memory is full
    /// (`REDIS_ALLOW_EVICTION=true`). Such a Redis deletes sessions, user indexes and
    /// logouts without an error (a logged-out session can come back as valid when its
    /// revocation is what goes), so [`RedisStore::connect`](crate::store::RedisStore::connect)
    /// refuses it unless this says the operator accepts that; with it, the store starts, logs
    /// the policy at WARN and health reports `store_evicts_keys`. The default is to refuse.
    pub fn with_eviction_allowed(mut self, allow: bool) -> Self {
        self.allow_eviction = allow;
        self
    }

    /// Whether a Redis that evicts keys is accepted (see
    /// [`with_eviction_allowed`](Self::with_eviction_allowed)).
    pub fn allows_eviction(&self) -> bool {
        self.allow_eviction
    }

    /// The node URLs (empty: no Redis).
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The CA certificate (PEM) for `rediss://`, if one was given.
    pub fn ca_cert_pem(&self) -> Option<&[u8]> {
        self.ca_cert.as_deref()
    }

    /// Accepts, for one migration, records that carry no integrity seal: plaintext records
    /// written before [`with_encryption_key`](Self::with_encryption_key) was set, and records
    /// sealed by earlier releases of this crate (which sealed the user id and roles but not the
    /// record's times and generation). Each is sealed whole on its next refresh. Off by default: with a
    /// key, a record without a whole seal is refused as tampered
    /// (`SESSION_ENCRYPTION_ACCEPT_UNSEALED=true`). Turn it on for one refresh-token lifetime
    /// while turning sealing on or upgrading, then off again: while it is on, anyone who can
    /// write to Redis can write a plaintext session.
    ///
    /// ```
    /// use tower_jwt_session::config::RedisSettings;
    ///
    /// let redis = RedisSettings::new(["redis://127.0.0.1:6379"])
    ///     .with_encryption_key(&[7; 32])?
    ///     .with_unsealed_records_accepted(true);
    /// assert!(redis.accepts_unsealed_records());
    /// # Ok::<(), tower_jwt_session::config::ConfigError>(())
    /// ```
    pub fn with_unsealed_records_accepted(mut self, accept: bool) -> Self {
        self.accept_unsealed = accept;
        self
    }

    /// Whether records without a whole seal are accepted (see
    /// [`with_unsealed_records_accepted`](Self::with_unsealed_records_accepted)).
    pub fn accepts_unsealed_records(&self) -> bool {
        self.accept_unsealed && !self.encryption_keys.is_empty()
    }

    /// Whether records are sealed (an encryption key is set).
    pub fn seals_records(&self) -> bool {
        !self.encryption_keys.is_empty()
    }

    /// The sealing keys, current first.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn encryption_keys(&self) -> &[Secret] {
        &self.encryption_keys
    }
}

fn read_ca_cert(path: String) -> Result<Vec<u8>, ConfigError> {
    let pem = std::fs::read(&path).map_err(|_| ConfigError::Invalid {
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
    Ok(pem)
}

/// Hides a password in `redis://user:password@host` before it goes into an error message or
/// `Debug` output.
pub(crate) fn redact_url_password(v: &str) -> String {
    split_list(v)
        .iter()
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
                    None => u.clone(),
                }
            }
            _ => u.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<RedisSettings, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        RedisSettings::from_lookup(|k| map.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn writes_wait_for_replicas_only_when_asked_and_never_forever() {
        assert_eq!(read(&[]).unwrap().wait_replicas(), None);
        assert_eq!(
            read(&[("REDIS_WAIT_REPLICAS", "1")])
                .unwrap()
                .wait_replicas(),
            Some((1, Duration::from_secs(1)))
        );
        assert_eq!(
            read(&[
                ("REDIS_WAIT_REPLICAS", "2"),
                ("REDIS_WAIT_TIMEOUT", "250ms")
            ])
            .unwrap()
            .wait_replicas(),
            Some((2, Duration::from_millis(250)))
        );
        assert_eq!(
            read(&[("REDIS_WAIT_REPLICAS", "0")])
                .unwrap()
                .wait_replicas(),
            None
        );
        // WAIT with a timeout of 0 blocks until the replicas answer, however long.
        for timeout in ["0ms", "11s"] {
            let error = read(&[
                ("REDIS_WAIT_REPLICAS", "1"),
                ("REDIS_WAIT_TIMEOUT", timeout),
            ])
            .unwrap_err()
            .to_string();
            assert!(error.contains("REDIS_WAIT_TIMEOUT"), "{error}");
        }
        let error = read(&[("REDIS_WAIT_TIMEOUT", "1s")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("REDIS_WAIT_REPLICAS"), "{error}");
        let error = read(&[("REDIS_WAIT_REPLICAS", "one")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("REDIS_WAIT_REPLICAS"), "{error}");
        assert!(
            RedisSettings::default()
                .with_wait_replicas(1, Duration::ZERO)
                .is_err()
        );
    }

    #[test]
    fn an_evicting_redis_is_accepted_only_when_said_so() {
        assert!(!read(&[]).unwrap().allows_eviction());
        assert!(
            read(&[("REDIS_ALLOW_EVICTION", "true")])
                .unwrap()
                .allows_eviction()
        );
        let error = read(&[("REDIS_ALLOW_EVICTION", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("REDIS_ALLOW_EVICTION"), "{error}");
    }
}

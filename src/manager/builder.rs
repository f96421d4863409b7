//! Building a [`SessionManager`]: on the store the configuration names, or on one of your own.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SharedClock, SystemClock, duration_ms};
use crate::config::{ConfigError, SessionConfig, StoreSettings};
use crate::store::{Lifetimes, MemoryStore, SessionStore};
use crate::token::TokenCodec;
use crate::token::refresh::RefreshKeys;

use super::cache::RevocationCache;
use super::claims::{DEFAULT_HOOK_TIMEOUT, RefreshHook};
use super::{Inner, SessionManager, StartupError};

/// The installed refresh hook and how long a refresh waits for it.
#[derive(Clone)]
pub(super) struct Hook {
    pub(super) hook: Arc<dyn RefreshHook>,
    pub(super) timeout: Duration,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshHook")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SessionManager`] with another store or clock.
#[derive(Debug)]
#[must_use]
pub struct SessionManagerBuilder {
    config: SessionConfig,
    store: Option<Arc<dyn SessionStore>>,
    clock: Option<SharedClock>,
    hook: Option<Arc<dyn RefreshHook>>,
    hook_timeout: Duration,
    store_timeout: Option<Duration>,
}

impl fmt::Debug for dyn RefreshHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshHook")
    }
}

impl SessionManagerBuilder {
    /// The session store. The default is a new [`MemoryStore`].
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A shared session store.
    pub fn shared_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock. The default is [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The app's refresh hook: fresh roles and custom claims on every refresh that rotates
    /// (see [`RefreshHook`] for what it is asked and what its failure does). Without one, a
    /// session keeps the roles and claims it got at login.
    pub fn refresh_hook(mut self, hook: impl RefreshHook) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// How long a refresh waits for the refresh hook before answering 503 `unavailable`
    /// (default 5 s).
    pub fn refresh_hook_timeout(mut self, timeout: Duration) -> Self {
        self.hook_timeout = timeout;
        self
    }

    /// How long one request (a login, a refresh, a logout) may wait for the store, across
    /// every store call it makes: past it the request answers 503 `unavailable`, and a
    /// rotation that reaches the store later is not applied. The default is the timeout of the
    /// Redis or PostgreSQL store the configuration names (`RedisSettings::with_timeout`,
    /// `DATABASE_STATEMENT_TIMEOUT`), one second otherwise; set it for a store of your own.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = Some(timeout.max(Duration::from_millis(1)));
        self
    }

    /// Builds the manager.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration does not validate, and [`ConfigError::Conflict`]
    /// when no store was given but the configuration names a Redis store (see
    /// [`SessionManager::connect`]).
    pub fn build(self) -> Result<SessionManager, ConfigError> {
        let config = self.config;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let codec = TokenCodec::with_clock(&config, clock.clone())?;
        let store = match self.store {
            Some(store) => store,
            None => default_store(&config)?,
        };
        let refresh_keys = RefreshKeys::from_config(&config);
        let budget = self.store_timeout.unwrap_or_else(|| config.store_timeout());
        let access_retention =
            duration_ms(config.rules().access_token_ttl() + config.tokens().leeway());
        let cache = RevocationCache::new(
            store.clone(),
            clock.clone(),
            config.revocation_cache().capacity(),
            config.revocation_cache().ttl(),
            config.rules().access_token_ttl() + config.tokens().leeway(),
            config.revocation_cache().fail_open(),
        );
        store.watch_revocations(cache.sink());
        let lifetimes = Lifetimes {
            refresh_ttl: duration_ms(config.rules().refresh_token_ttl()),
            reuse_interval: duration_ms(config.rules().reuse_interval()),
            access_retention,
        };
        Ok(SessionManager {
            inner: Arc::new(Inner {
                config,
                codec,
                store,
                refresh_keys,
                cache,
                clock,
                lifetimes,
                hook: self.hook.map(|hook| Hook {
                    hook,
                    timeout: self.hook_timeout,
                }),
                reported: Default::default(),
                budget,
            }),
        })
    }
}

impl SessionManager {
    /// A manager over a new [`MemoryStore`] on the system clock.
    ///
    /// For the store the environment names (Redis when `REDIS_URL` is set), use
    /// [`from_env`](Self::from_env) or [`connect`](Self::connect).
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration does not validate, and
    /// [`ConfigError::Conflict`] naming `REDIS_URL` when it names a Redis store: `new` never
    /// keeps sessions in memory that the configuration asks to share.
    pub fn new(config: SessionConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A manager on the store the environment names, as [`SessionConfig::from_env`] reads it:
    /// Redis when `REDIS_URL` is set, PostgreSQL when `DATABASE_URL` is, the one
    /// `SESSION_STORE` names when it is set, memory otherwise. Logs once which store it picked.
    ///
    /// ```
    /// use tower_jwt_session::SessionManager;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // JWT_SECRET, REDIS_URL, … come from the environment.
    /// match SessionManager::from_env().await {
    ///     Ok(manager) => println!("sessions kept in {}", manager.store_kind()),
    ///     Err(error) => eprintln!("cannot start: {error}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`StartupError::Config`] when the environment does not configure a valid manager (a
    /// store URL this build has no feature for included), [`StartupError::Store`] when the
    /// store it names cannot be opened.
    pub async fn from_env() -> Result<Self, StartupError> {
        Self::connect(SessionConfig::from_env()?).await
    }

    /// A manager on the store `config` names ([`SessionConfig::store`]): it connects to Redis
    /// or PostgreSQL when the configuration names one (`REDIS_URL`, `DATABASE_URL`,
    /// `SESSION_STORE`), and uses a [`MemoryStore`] otherwise. Logs once
    /// which store it picked, passwords redacted.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub async fn connect(config: SessionConfig) -> Result<Self, StartupError> {
        let store = open_store(&config).await?;
        Ok(Self::builder(config).shared_store(store).build()?)
    }

    /// A builder, to choose the store or the clock.
    pub fn builder(config: SessionConfig) -> SessionManagerBuilder {
        SessionManagerBuilder {
            config,
            store: None,
            clock: None,
            hook: None,
            hook_timeout: DEFAULT_HOOK_TIMEOUT,
            store_timeout: None,
        }
    }
}

/// The store of a builder given none: memory, unless the configuration names another store,
/// which only [`SessionManager::connect`] opens.
fn default_store(config: &SessionConfig) -> Result<Arc<dyn SessionStore>, ConfigError> {
    match config.store() {
        StoreSettings::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreSettings::Redis(redis) => Err(ConfigError::Conflict {
            name: "REDIS_URL",
            reason: format!(
                "REDIS_URL names a Redis store ({} node(s)), but SessionManager::new and \
                 SessionManager::builder(..).build() without a store keep sessions in this \
                 process's memory",
                redis.urls().len()
            ),
            fix: "build the manager with SessionManager::from_env().await or \
                  SessionManager::connect(config).await, or give the builder a store"
                .to_owned(),
        }),
        StoreSettings::Postgres(_) => Err(ConfigError::Conflict {
            name: "DATABASE_URL",
            reason: "the configuration names a PostgreSQL store, but SessionManager::new and \
                     SessionManager::builder(..).build() without a store keep sessions in this \
                     process's memory"
                .to_owned(),
            fix: "build the manager with SessionManager::from_env().await or \
                  SessionManager::connect(config).await, give the builder a store, or set \
                  SESSION_STORE=memory if DATABASE_URL is for your own data"
                .to_owned(),
        }),
    }
}

/// Opens the store `config` names, and logs which one.
async fn open_store(config: &SessionConfig) -> Result<Arc<dyn SessionStore>, StartupError> {
    match config.store() {
        StoreSettings::Memory => {
            tracing::info!(
                store = "memory",
                "session store: this process's memory (set REDIS_URL to share sessions)"
            );
            Ok(Arc::new(MemoryStore::new()))
        }
        #[cfg(feature = "redis")]
        StoreSettings::Redis(redis) => {
            let store = crate::store::RedisStore::connect(redis).await?;
            store.claim(config).await?;
            // The settings' `Debug` redacts URL passwords and keys.
            tracing::info!(store = "redis", settings = ?redis, "session store: Redis");
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "redis"))]
        StoreSettings::Redis(_) => Err(ConfigError::StoreNotBuilt {
            name: "REDIS_URL",
            feature: "redis",
        }
        .into()),
        #[cfg(feature = "postgres")]
        StoreSettings::Postgres(pg) => {
            let store = crate::store::PostgresStore::connect(pg).await?;
            store.claim(config).await?;
            // The settings' `Debug` redacts the URL's password and the keys.
            tracing::info!(store = "postgres", settings = ?pg, "session store: PostgreSQL");
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        StoreSettings::Postgres(_) => Err(ConfigError::StoreNotBuilt {
            name: "DATABASE_URL",
            feature: "postgres",
        }
        .into()),
    }
}

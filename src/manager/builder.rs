//! Building a [`SessionManager`]: on the store the configuration names, or on one of your own.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SharedClock, SystemClock, duration_ms};
use crate::config::{ConfigError, SessionConfig, StoreSettings};
use crate::rate_limit::Limits;
use crate::store::{ActivityBounds, Lifetimes, MemoryStore, SessionStore};
use crate::token::TokenCodec;
use crate::token::refresh::RefreshKeys;

use super::activity::{DEFAULT_EVENT_HOOK_TIMEOUT, Recorder, SecurityEventHook};
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
    event_hook: Option<Arc<dyn SecurityEventHook>>,
    event_hook_timeout: Duration,
    store_timeout: Option<Duration>,
    #[cfg(feature = "postgres")]
    pool: Option<sqlx::PgPool>,
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

    /// The app's receiver of security events (logins, re-authentications, detected refresh
    /// token theft, ended sessions, logouts everywhere, lock-outs): see
    /// [`SecurityEventHook`]. It runs in a background task, so it never slows or fails a
    /// request. The default is none (the store still keeps each user's trail).
    pub fn on_security_event(mut self, hook: impl SecurityEventHook) -> Self {
        self.event_hook = Some(Arc::new(hook));
        self
    }

    /// How long one call of the security event hook may take before it is counted and logged
    /// as timed out (the default is 10 s). Nothing waits for it but the hook's own slot.
    pub fn security_event_timeout(mut self, timeout: Duration) -> Self {
        self.event_hook_timeout = timeout.max(Duration::from_millis(1));
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

    /// The app's own PostgreSQL pool, for the sessions and their protections, instead of a
    /// pool of the crate's: the store's tables (under `DATABASE_TABLE_PREFIX`), its migrations
    /// (`DATABASE_MIGRATE`) and sealing (`SESSION_ENCRYPTION_KEY`) are as
    /// [`PostgresSettings`](crate::config::PostgresSettings) say, and
    /// [`connect`](Self::connect) opens one more connection of its own, to `LISTEN` for
    /// revocations (a pooled connection cannot hold a `LISTEN`). The store's queries then share
    /// the pool's limit with the app's; the store's statement timeout is not set on them (its
    /// own timeout still ends each call, and its writes never wait for a lock inside the
    /// database).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn postgres_pool(mut self, pool: sqlx::PgPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Opens the store the configuration names (memory, Redis or PostgreSQL: `SESSION_STORE`,
    /// `REDIS_URL`, `DATABASE_URL`), or takes the one given ([`store`](Self::store), or the
    /// app's own [PostgreSQL pool](Self::postgres_pool)); claims its key prefix for this
    /// application (a second application with other keys on the same prefix is refused);
    /// puts the rate limit, the login lock-out and the failed-refresh tracking on the same
    /// store; and logs once, at `info`, where the sessions and the protections live (passwords
    /// redacted). The one way to start: [`SessionManager::from_env`] is this on
    /// [`SessionConfig::from_env`].
    ///
    /// ```no_run
    /// use tower_jwt_session::manager::{HookError, RefreshContext, Refreshed};
    /// use tower_jwt_session::{SessionConfig, SessionManager};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::builder(SessionConfig::from_env()?)
    ///     .refresh_hook(|context: RefreshContext| async move {
    ///         Ok::<_, HookError>(Refreshed::new(&context.roles))
    ///     })
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`StartupError::Config`] when the configuration does not validate or names a store this
    /// build has no feature for, [`StartupError::Store`] when the store cannot be opened or
    /// claimed.
    pub async fn connect(mut self) -> Result<SessionManager, StartupError> {
        if self.store.is_none() {
            self.store = Some(self.open_store().await?);
        }
        let manager = self.build()?;
        let limits = manager.limits();
        tracing::info!(
            store = manager.store_kind(),
            limits = limits.kind(),
            "sessions, rate limits and lock-outs kept in {} ({})",
            manager.store_kind(),
            if limits.kind() == "memory" {
                "this process only"
            } else {
                "shared by every instance"
            }
        );
        Ok(manager)
    }

    async fn open_store(&mut self) -> Result<Arc<dyn SessionStore>, StartupError> {
        #[cfg(feature = "postgres")]
        if let Some(pool) = self.pool.take() {
            let settings = self.config.postgres();
            let store = crate::store::PostgresStore::with_pool(pool, settings).await?;
            store.claim(&self.config).await?;
            return Ok(Arc::new(store));
        }
        open_store(&self.config).await
    }

    /// Builds the manager on the store given ([`store`](Self::store)), or on a new
    /// [`MemoryStore`]: no I/O, for tests and for stores of your own.
    /// [`connect`](Self::connect) opens the store the configuration names.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration does not validate, and [`ConfigError::Conflict`]
    /// when no store was given but the configuration names a Redis or PostgreSQL store (which
    /// [`connect`](Self::connect) opens).
    // Size: the one place the manager's parts are put together, in the order they depend on each other.
    pub fn build(self) -> Result<SessionManager, ConfigError> {
        let config = self.config;
        config.validate()?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let codec = TokenCodec::with_clock(config.tokens(), config.rules(), clock.clone())?;
        let store = match self.store {
            Some(store) => store,
            None => default_store(&config)?,
        };
        let limits = Limits::new(config.rate_limit(), config.attempts(), &*store);
        let refresh_keys = RefreshKeys::from_tokens(config.tokens());
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
        let activity_bounds = ActivityBounds {
            max: config.rules().activity_max(),
            retention: duration_ms(config.rules().activity_retention()),
        };
        let activity = Recorder::new(
            store.clone(),
            self.event_hook.map(|hook| (hook, self.event_hook_timeout)),
            activity_bounds,
            clock.clone(),
            budget,
            config.attempts().lockout,
        );
        let dpop = dpop(&config, &*store, clock.clone())?;
        Ok(SessionManager {
            inner: Arc::new(Inner {
                dpop,
                activity,
                activity_bounds,
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
                limits,
            }),
        })
    }
}

impl SessionManager {
    /// A manager over a new [`MemoryStore`] on the system clock.
    ///
    /// For the store the environment names (Redis when `REDIS_URL` is set), use
    /// [`from_env`](Self::from_env) or [`builder`](Self::builder)`(config).connect()`.
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
        Self::builder(SessionConfig::from_env()?).connect().await
    }

    /// A builder, to choose the store or the clock.
    pub fn builder(config: SessionConfig) -> SessionManagerBuilder {
        SessionManagerBuilder {
            config,
            store: None,
            clock: None,
            hook: None,
            hook_timeout: DEFAULT_HOOK_TIMEOUT,
            event_hook: None,
            event_hook_timeout: DEFAULT_EVENT_HOOK_TIMEOUT,
            store_timeout: None,
            #[cfg(feature = "postgres")]
            pool: None,
        }
    }
}

/// Most DPoP proofs the in-process replay cache (the memory store's) remembers at once: about
/// 60 bytes each, so 64 MB at most; a proof is remembered for its window (120 s), so this
/// holds about 8,700 proofs a second per instance, one DPoP key 1/64 of it. Past either, new
/// proofs are refused (503) and a warning is logged, never a replay let through.
const DPOP_REPLAY_CAPACITY: usize = 1 << 20;

/// The DPoP proof check, when a public origin is configured: the settings of `config`, the
/// replay cache on `store`.
fn dpop(
    config: &SessionConfig,
    store: &dyn SessionStore,
    clock: SharedClock,
) -> Result<Option<super::Dpop>, ConfigError> {
    use crate::token::dpop::{DpopSettings, DpopVerifier, PublicOrigin};
    let dpop = config.dpop();
    let Some(origin) = dpop.public_origin() else {
        return Ok(None);
    };
    let origin = PublicOrigin::parse(origin).map_err(|_| ConfigError::Invalid {
        name: "SESSION_PUBLIC_ORIGIN",
        value: origin.to_owned(),
        expected: "the origin clients call, scheme and host (and port) only: https://api.example.com",
    })?;
    let mut settings = DpopSettings::new();
    if let Some(key) = dpop.nonce_key() {
        settings = settings.require_nonce(key, std::time::Duration::from_secs(300))?;
    }
    let verifier = DpopVerifier::new(settings)
        .with_replay_cache(store.backing().dpop_replay_cache(DPOP_REPLAY_CAPACITY))
        .with_shared_clock(clock);
    Ok(Some(super::Dpop { verifier, origin }))
}

/// The store of a builder given none: memory, unless the configuration names another store,
/// which only [`SessionManagerBuilder::connect`] opens.
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
                  SessionManager::builder(config).connect().await, or give the builder a store"
                .to_owned(),
        }),
        StoreSettings::Postgres(_) => Err(ConfigError::Conflict {
            name: "DATABASE_URL",
            reason: "the configuration names a PostgreSQL store, but SessionManager::new and \
                     SessionManager::builder(..).build() without a store keep sessions in this \
                     process's memory"
                .to_owned(),
            fix: "build the manager with SessionManager::from_env().await or \
                  SessionManager::builder(config).connect().await, give the builder a store, or set \
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

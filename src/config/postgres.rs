//! [`PostgresSettings`]: how to reach PostgreSQL and seal what is stored there; and
//! [`StoreChoice`], the `SESSION_STORE` selector between the stores the variables name.

use std::fmt;
use std::time::Duration;

use super::ConfigError;
use super::env::{DURATION_FORM, Env};
use super::redis::redact_url_password;
use super::sealing::{add_sealing_key, read_sealing_keys};
use super::secret::Secret;

/// Which store holds the sessions, when the variables could name more than one
/// (`SESSION_STORE=memory|redis|postgres`).
///
/// Many applications set `DATABASE_URL` (and `REDIS_URL`) for their own data. Without
/// `SESSION_STORE` a set `DATABASE_URL` selects the PostgreSQL store and a set `REDIS_URL` the
/// Redis store, and both set is a startup error, never a guess; `SESSION_STORE` says which one
/// the sessions use, and the other URL is then left to the application. `memory` keeps sessions
/// in the process whatever URLs are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreChoice {
    /// This process's memory ([`MemoryStore`](crate::store::MemoryStore)).
    Memory,
    /// Redis or Redis Cluster, at `REDIS_URL`.
    Redis,
    /// PostgreSQL, at `DATABASE_URL`.
    Postgres,
}

impl StoreChoice {
    /// `memory`, `redis` or `postgres`, as `SESSION_STORE` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Postgres => "postgres",
        }
    }
}

/// `SESSION_STORE`, if set.
pub(crate) fn read_store_choice(env: &Env<'_>) -> Result<Option<StoreChoice>, ConfigError> {
    env.choice(
        "SESSION_STORE",
        &[
            ("memory", StoreChoice::Memory),
            ("redis", StoreChoice::Redis),
            ("postgres", StoreChoice::Postgres),
            ("postgresql", StoreChoice::Postgres),
        ],
        "`memory`, `redis` or `postgres`",
    )
}

/// Whether starting the PostgreSQL store may create or upgrade its tables (`DATABASE_MIGRATE`).
///
/// Creating tables needs the `CREATE` right on the schema; running the store needs only
/// `SELECT`, `INSERT`, `UPDATE` and `DELETE` on its tables. With [`Off`](Self::Off) the
/// application can run as a user with those rights alone, and the tables are made by a step
/// of their own (`PostgresStore::migrate`, run by a user that may create them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrateMode {
    /// `auto` (the default): startup reads the schema version, and only when the tables are
    /// missing or older than this release creates or upgrades them. Once they are up to date,
    /// starting needs no `CREATE` right.
    #[default]
    Auto,
    /// `off`: startup never creates or alters a table; it refuses to start, naming
    /// `DATABASE_MIGRATE`, when the tables are missing or older than this release.
    Off,
}

impl MigrateMode {
    /// `auto` or `off`, as `DATABASE_MIGRATE` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Off => "off",
        }
    }
}

/// The `sslmode` values PostgreSQL (and sqlx) know.
const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// Checks what can be checked of a database URL without connecting: the scheme, and the
/// `sslmode` parameter (a typo there would otherwise surface as a nested, repeated parser
/// message at connect time).
pub(crate) fn check_url(url: &str) -> Result<(), ConfigError> {
    let invalid = |expected| ConfigError::Invalid {
        name: "DATABASE_URL",
        value: redact_database_url(url),
        expected,
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid("a postgres:// or postgresql:// URL"));
    }
    let query = url.split_once('?').map_or("", |(_, q)| q);
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if (key == "sslmode" || key == "ssl-mode")
            && !SSL_MODES.iter().any(|m| m.eq_ignore_ascii_case(value))
        {
            return Err(invalid(
                "sslmode=disable, allow, prefer, require, verify-ca or verify-full",
            ));
        }
    }
    Ok(())
}

/// How to reach PostgreSQL and what to keep there: the URL (`DATABASE_URL`), the pool size
/// (`DATABASE_MAX_CONNECTIONS`), the per-call timeout (`DATABASE_STATEMENT_TIMEOUT`), the prefix
/// of the store's table names (`DATABASE_TABLE_PREFIX`), whether startup may create the
/// tables (`DATABASE_MIGRATE`), and the record-sealing keys (`SESSION_ENCRYPTION_KEY`,
/// `SESSION_ENCRYPTION_PREVIOUS_KEYS`, shared with Redis).
///
/// `Debug` output holds no password of the URL and no key.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::config::PostgresSettings;
///
/// let pg = PostgresSettings::new("postgres://app:secret@10.0.0.5/app")
///     .with_max_connections(20)
///     .with_table_prefix("auth")?;
/// assert_eq!(pg.max_connections(), 20);
/// assert_eq!(pg.table_prefix(), "auth");
/// assert_eq!(pg.timeout(), Duration::from_secs(1));
/// assert!(!format!("{pg:?}").contains("secret"));
/// # Ok::<(), tower_jwt_session::config::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct PostgresSettings {
    url: Option<String>,
    max_connections: u32,
    timeout: Duration,
    table_prefix: String,
    migrate: MigrateMode,
    encryption_keys: Vec<Secret>,
    accept_unsealed: bool,
}

/// Hand-written so that the output holds no secret.
impl fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            url,
            max_connections,
            timeout,
            table_prefix,
            migrate,
            encryption_keys,
            accept_unsealed,
        } = self;
        f.debug_struct("PostgresSettings")
            .field("url", &url.as_deref().map(redact_database_url))
            .field("max_connections", max_connections)
            .field("timeout", timeout)
            .field("table_prefix", table_prefix)
            .field("migrate", migrate)
            .field("encryption_keys", encryption_keys)
            .field("accept_unsealed", accept_unsealed)
            .finish()
    }
}

impl Default for PostgresSettings {
    /// No URL, 10 connections, 1 s timeout, prefix `tjs`, migrations `auto`, no sealing.
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            timeout: Duration::from_secs(1),
            table_prefix: "tjs".to_owned(),
            migrate: MigrateMode::Auto,
            encryption_keys: Vec::new(),
            accept_unsealed: false,
        }
    }
}

impl PostgresSettings {
    /// This URL (`postgres://user:password@host:port/database`), 10 connections, 1 s timeout,
    /// table prefix `tjs`, migrations `auto`, no sealing.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::default()
        }
    }

    /// Reads `DATABASE_URL`, `DATABASE_MAX_CONNECTIONS`, `DATABASE_STATEMENT_TIMEOUT`,
    /// `DATABASE_TABLE_PREFIX`, `DATABASE_MIGRATE`, `SESSION_ENCRYPTION_KEY`, `SESSION_ENCRYPTION_PREVIOUS_KEYS` and
    /// `SESSION_ENCRYPTION_ACCEPT_UNSEALED` from the process environment. Without
    /// `DATABASE_URL` there is no URL.
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
        let mut pg = Self::default();
        if let Some(url) = env.get("DATABASE_URL") {
            check_url(&url)?;
            pg.url = Some(url);
        }
        if let Some(max) = env.positive::<u32>("DATABASE_MAX_CONNECTIONS")? {
            pg.max_connections = max;
        }
        if let Some(timeout) = env.duration("DATABASE_STATEMENT_TIMEOUT")? {
            if timeout < Duration::from_millis(1) {
                return Err(ConfigError::Invalid {
                    name: "DATABASE_STATEMENT_TIMEOUT",
                    value: env.get("DATABASE_STATEMENT_TIMEOUT").unwrap_or_default(),
                    expected: DURATION_FORM,
                });
            }
            pg.timeout = timeout;
        }
        if let Some(prefix) = env.get("DATABASE_TABLE_PREFIX") {
            pg.table_prefix = prefix;
            pg.check_prefix()?;
        }
        if let Some(mode) = env.choice(
            "DATABASE_MIGRATE",
            &[("auto", MigrateMode::Auto), ("off", MigrateMode::Off)],
            "`auto` or `off`",
        )? {
            pg.migrate = mode;
        }
        (pg.encryption_keys, pg.accept_unsealed) = read_sealing_keys(env)?;
        Ok(pg)
    }

    fn check_prefix(&self) -> Result<(), ConfigError> {
        let p = &self.table_prefix;
        let ok = !p.is_empty()
            && p.len() <= 40
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                name: "DATABASE_TABLE_PREFIX",
                value: p.clone(),
                expected: "1 to 40 characters of a-z, 0-9 and _, not starting with a digit",
            })
        }
    }

    /// The database URL (`DATABASE_URL`).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// How many connections the pool keeps at most (`DATABASE_MAX_CONNECTIONS`), one of them
    /// for the revocation listener. The default is 10.
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long one store call may take, waiting for a connection and for row locks included,
    /// before it counts as a failure (503 `unavailable`); it is also the server-side
    /// `statement_timeout` of the store's connections (`DATABASE_STATEMENT_TIMEOUT`). The
    /// default is 1 second.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The prefix of the store's table names, `<prefix>_sessions`, `<prefix>_meta`,
    /// `<prefix>_rate_limits` and `<prefix>_attempts` (`DATABASE_TABLE_PREFIX`): lower-case letters, digits and `_`. The default is `tjs`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a prefix that is not a plain lower-case identifier.
    pub fn with_table_prefix(mut self, prefix: impl Into<String>) -> Result<Self, ConfigError> {
        self.table_prefix = prefix.into();
        self.check_prefix()?;
        Ok(self)
    }

    /// Whether starting the store may create or upgrade its tables (`DATABASE_MIGRATE`). The
    /// default is [`MigrateMode::Auto`]: tables are created or upgraded only when they are
    /// missing or older, so an up-to-date schema starts with `SELECT`, `INSERT`, `UPDATE` and
    /// `DELETE` rights alone. [`MigrateMode::Off`] never alters the schema and refuses to start
    /// when it is not up to date; run `PostgresStore::migrate` as a deploy step.
    pub fn with_migrate(mut self, mode: MigrateMode) -> Self {
        self.migrate = mode;
        self
    }

    /// Seals session records at rest with this key (32 bytes; `SESSION_ENCRYPTION_KEY`):
    /// user id, roles and times sealed together, user ids in the index replaced by a keyed
    /// hash. The default is no sealing.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key is not 32 bytes.
    pub fn with_encryption_key(mut self, key: &[u8]) -> Result<Self, ConfigError> {
        add_sealing_key(&mut self.encryption_keys, key, true)?;
        Ok(self)
    }

    /// An older sealing key (`SESSION_ENCRYPTION_PREVIOUS_KEYS`): records sealed with it still
    /// open, and are sealed again with the current key on their next refresh.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key is not 32 bytes, [`ConfigError::Conflict`] when no
    /// current key is set.
    pub fn with_previous_encryption_key(mut self, key: &[u8]) -> Result<Self, ConfigError> {
        add_sealing_key(&mut self.encryption_keys, key, false)?;
        Ok(self)
    }

    /// Accepts, for one migration, records stored without a seal before a key was set
    /// (`SESSION_ENCRYPTION_ACCEPT_UNSEALED`); each is sealed on its next refresh. Off by
    /// default: while it is on, anyone who can write to the table can write a session.
    pub fn with_unsealed_records_accepted(mut self, accept: bool) -> Self {
        self.accept_unsealed = accept;
        self
    }

    /// The database URL, if one is set.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The pool size.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The prefix of the table names.
    pub fn table_prefix(&self) -> &str {
        &self.table_prefix
    }

    /// Whether startup may create or upgrade the tables.
    pub fn migrate(&self) -> MigrateMode {
        self.migrate
    }

    /// Whether records are sealed (an encryption key is set).
    pub fn seals_records(&self) -> bool {
        !self.encryption_keys.is_empty()
    }

    /// Whether records without a seal are accepted (one migration).
    pub fn accepts_unsealed_records(&self) -> bool {
        self.accept_unsealed && !self.encryption_keys.is_empty()
    }

    /// The sealing keys, current first.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn encryption_keys(&self) -> &[Secret] {
        &self.encryption_keys
    }
}

/// Hides the password of a database URL, in its user-info part and in a `password=` query
/// parameter, before it goes into an error message or `Debug` output.
pub(crate) fn redact_database_url(url: &str) -> String {
    let url = redact_url_password(url);
    match url.find("password=") {
        Some(at) => {
            let start = at + "password=".len();
            let end = url[start..].find('&').map_or(url.len(), |e| start + e);
            format!("{}[redacted]{}", &url[..start], &url[end..])
        }
        None => url,
    }
}

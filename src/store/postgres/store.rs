//! [`PostgresStore`]: the [`SessionStore`] on PostgreSQL, each rule one transaction or one
//! statement.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres, Row as _, Transaction};

use super::connection::PostgresConnection;
use super::record::{
    COLUMNS, corrupt, decode_row, encode_data, sid_from, sid_from_hex, to_i64, to_u64, user_keys,
};
use super::schema::{Tables, lock_key, prepare};
use crate::clock::Clock;
use crate::config::{MigrateMode, PostgresSettings};
use crate::session::SessionId;
use crate::store::sealing::Cipher;
use crate::store::{
    ActivityBounds, CreateOutcome, Lifetimes, RevocationEvent, RevocationSink, RotateOutcome,
    RotateRequest, RotationDecision, SecurityEvent, SessionLimit, SessionRecord, SessionStore,
    StoreError, StoreWarning, apply_rotation, decide_rotation, plan_admission, rotation_outcome,
};

/// How many due rows (of any user) one login deletes at most, to bound its work.
pub(super) const PURGE_BATCH: i64 = 64;

/// The statements, made once per store (their text is the key of each connection's cache of
/// prepared statements).
struct Sql {
    purge_due: String,
    user_rows: String,
    delete_notify: String,
    insert: String,
    select_versioned: String,
    select: String,
    update_if_unchanged: String,
    delete_if_unchanged: String,
    delete_notify_if_unchanged: String,
    list: String,
    revoke_all: String,
    activity_insert: String,
    activity_trim: String,
    activity_sweep: String,
    activity_read: String,
}

impl Sql {
    fn new(t: &Tables) -> Self {
        let s = &t.sessions;
        let a = &t.activity;
        Self {
            // The slot after the user's newest (modulo `$5`, the bound), overwritten: the user
            // holds at most `$5` rows. Run under the user's activity lock.
            activity_insert: format!(
                "INSERT INTO {a} (user_key, slot, seq, at, keep_until, data) VALUES ($1, \
                 COALESCE((SELECT slot + 1 FROM {a} WHERE user_key = $1 \
                 ORDER BY seq DESC LIMIT 1), 0) % $5, \
                 GREATEST((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, \
                 COALESCE((SELECT max(seq) + 1 FROM {a} WHERE user_key = $1), 0)), \
                 $2, $3, $4) \
                 ON CONFLICT (user_key, slot) DO UPDATE SET seq = excluded.seq, \
                 at = excluded.at, keep_until = excluded.keep_until, data = excluded.data"
            ),
            // Slots past a smaller bound than the one they were written under.
            activity_trim: format!("DELETE FROM {a} WHERE user_key = $1 AND slot >= $2"),
            activity_sweep: format!(
                "DELETE FROM {a} WHERE ctid IN (SELECT ctid FROM {a} WHERE keep_until < $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            activity_read: format!(
                "SELECT data FROM {a} WHERE user_key = $1 AND keep_until >= $2 \
                 ORDER BY seq DESC LIMIT $3"
            ),
            purge_due: format!(
                "DELETE FROM {s} WHERE session_id IN (SELECT session_id FROM {s} \
                 WHERE purge_at < $1 ORDER BY purge_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            user_rows: format!(
                "SELECT session_id, last_active_at, expires_at, purge_at FROM {s} \
                 WHERE user_key = ANY($1) ORDER BY created_at, session_id FOR UPDATE"
            ),
            // Deletes the sessions `$1` and tells every instance (delivered at commit).
            delete_notify: format!(
                "WITH gone AS (DELETE FROM {s} WHERE session_id = ANY($1) \
                 RETURNING session_id, expires_at, purge_at) \
                 SELECT g.session_id, g.expires_at, g.purge_at FROM gone g \
                 CROSS JOIN LATERAL (SELECT pg_notify($2, encode(g.session_id, 'hex'))) n"
            ),
            insert: format!(
                "INSERT INTO {s} (session_id, user_key, created_at, last_active_at, expires_at, \
                 generation, refresh_expires_at, purge_at, data) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            // A row and its version: `xmin`, the transaction that wrote this version of the
            // row, changes with every write of it (an update writes a new version).
            select_versioned: format!(
                "SELECT {COLUMNS}, xmin::text AS version FROM {s} WHERE session_id = $1"
            ),
            select: format!("SELECT {COLUMNS} FROM {s} WHERE session_id = $1"),
            // The writes of a rotation, each applied only to the version of the row it read,
            // and never waiting for a row lock: a write that waited could still land after the
            // caller had been told the refresh timed out (an autocommitted statement does not
            // notice its client has gone). `NOWAIT` fails at once instead (`55P03`), and the
            // rotation reads again.
            update_if_unchanged: format!(
                "WITH locked AS (SELECT session_id FROM {s} WHERE session_id = $1 \
                 AND xmin::text = $8 AND {IN_TIME_9} FOR UPDATE NOWAIT) \
                 UPDATE {s} t SET last_active_at = $2, generation = $3, refresh_expires_at = $4, \
                 purge_at = $5, data = $6, user_key = $7 FROM locked \
                 WHERE t.session_id = locked.session_id"
            ),
            delete_if_unchanged: format!(
                "WITH locked AS (SELECT session_id FROM {s} WHERE session_id = $1 \
                 AND xmin::text = $2 AND {IN_TIME_3} FOR UPDATE NOWAIT) \
                 DELETE FROM {s} t USING locked WHERE t.session_id = locked.session_id"
            ),
            delete_notify_if_unchanged: format!(
                "WITH locked AS (SELECT session_id FROM {s} WHERE session_id = $1 \
                 AND xmin::text = $3 AND {IN_TIME_4} FOR UPDATE NOWAIT), \
                 gone AS (DELETE FROM {s} t USING locked WHERE t.session_id = locked.session_id \
                 RETURNING t.session_id) \
                 SELECT pg_notify($2, encode(g.session_id, 'hex')) FROM gone g"
            ),
            list: format!(
                "SELECT {COLUMNS} FROM {s} WHERE user_key = ANY($1) \
                 AND expires_at > $2 AND purge_at >= $2 ORDER BY created_at, session_id"
            ),
            revoke_all: format!(
                "WITH gone AS (DELETE FROM {s} WHERE user_key = ANY($1) \
                 RETURNING session_id, expires_at, purge_at) \
                 SELECT g.session_id, g.expires_at, g.purge_at FROM gone g \
                 CROSS JOIN LATERAL (SELECT pg_notify($2, encode(g.session_id, 'hex'))) n"
            ),
        }
    }
}

/// The condition that a rotation's write reaches the server before its caller's deadline
/// (milliseconds since the epoch, `NULL` for none), on the server's own clock: a statement
/// that waited in a stalled backend must not apply once its caller has answered 503. One per
/// parameter position it is bound at.
const IN_TIME_9: &str =
    "($9::bigint IS NULL OR clock_timestamp() <= to_timestamp($9::bigint / 1000.0))";
const IN_TIME_3: &str =
    "($3::bigint IS NULL OR clock_timestamp() <= to_timestamp($3::bigint / 1000.0))";
const IN_TIME_4: &str =
    "($4::bigint IS NULL OR clock_timestamp() <= to_timestamp($4::bigint / 1000.0))";

/// Sessions in PostgreSQL: see the [module docs](crate::store::postgres).
pub struct PostgresStore {
    pool: PgPool,
    tables: Tables,
    sql: Arc<Sql>,
    cipher: Option<Cipher>,
    timeout: Duration,
    sinks: Arc<Mutex<Vec<RevocationSink>>>,
    listener: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("tables", &self.tables.sessions)
            .field("sealed", &self.cipher.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// What a write that applies only to the version of a row it read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Yes,
    /// The row is no longer that version: another write went first.
    Stale,
    /// Another transaction holds the row's lock right now.
    Busy,
}

impl Written {
    /// `rows` rows written, or the error of a write that refuses to wait for a lock.
    fn from(result: Result<u64, sqlx::Error>) -> Result<Self, StoreError> {
        match result {
            Ok(1) => Ok(Self::Yes),
            Ok(_) => Ok(Self::Stale),
            // lock_not_available: the row is locked (`NOWAIT`).
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03") => {
                Ok(Self::Busy)
            }
            Err(error) => Err(db_error(error)),
        }
    }
}

/// A database error as a [`StoreError`]: a timeout (the pool's, or the server's
/// `statement_timeout`) as [`StoreError::Timeout`], anything else as unavailable.
pub(super) fn db_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut => StoreError::Timeout,
        // query_canceled: the statement_timeout (or a lock wait) ran out.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => StoreError::Timeout,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(error.to_string())
        }
        _ => StoreError::Unavailable(format!("PostgreSQL: {error}")),
    }
}

/// How long startup may take at least: creating tables may wait for another instance doing
/// the same.
const STARTUP_BUDGET: Duration = Duration::from_secs(10);

/// What a store's URL names, parsed: the options to connect with (the store's timeouts set)
/// and where they point, for messages.
struct Target {
    options: PgConnectOptions,
    /// `host:port` or the socket's path; never a password.
    at: String,
    /// How long startup (connecting, migrations, the key check) may take.
    budget: Duration,
}

impl Target {
    fn new(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let url = settings.url().ok_or_else(|| {
            StoreError::Misconfigured("no PostgreSQL URL is configured (DATABASE_URL)".to_owned())
        })?;
        crate::config::check_database_url(url)
            .map_err(|e| StoreError::Misconfigured(e.to_string()))?;
        let timeout = settings.timeout();
        let ms = timeout.as_millis().max(1);
        // A client that dies mid-transaction must not hold row locks for long.
        let idle_ms = (ms * 10).max(10_000);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                StoreError::Misconfigured(format!(
                    "DATABASE_URL={:?} is not a usable PostgreSQL URL: {}",
                    crate::config::redact_database_url(url),
                    innermost(&e)
                ))
            })?
            .application_name("tower-jwt-session")
            .options([
                ("statement_timeout", ms.to_string()),
                ("idle_in_transaction_session_timeout", idle_ms.to_string()),
            ]);
        let at = match options.get_socket() {
            Some(path) => format!("socket {}", path.display()),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        Ok(Self {
            options,
            at,
            budget: timeout.max(STARTUP_BUDGET),
        })
    }

    /// A connection of its own, for startup's work. The pool retries a refused connection
    /// until its timeout and then says only that it timed out; a connection of one's own says
    /// why it failed.
    async fn open(&self) -> Result<PgConnection, StoreError> {
        PgConnection::connect_with(&self.options)
            .await
            .map_err(|error| self.unreachable(&error))
    }

    /// `work` within the startup budget.
    async fn within_budget<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.budget, work).await.map_err(|_| {
            StoreError::Unavailable(format!(
                "PostgreSQL at {} (DATABASE_URL) did not answer within {}s",
                self.at,
                self.budget.as_secs()
            ))
        })?
    }

    /// A failed connection attempt, naming the variable, where it points and why.
    fn unreachable(&self, error: &sqlx::Error) -> StoreError {
        StoreError::Unavailable(format!(
            "cannot connect to PostgreSQL at {} (DATABASE_URL): {}",
            self.at,
            connect_failure(
                error,
                !matches!(
                    self.options.get_ssl_mode(),
                    sqlx::postgres::PgSslMode::Disable
                )
            )
        ))
    }
}

/// The innermost cause of `error`: sqlx wraps a configuration error in another one, each
/// prefixed "error with configuration".
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// Why a connection attempt failed, in an operator's words: refused, no such host, TLS,
/// authentication, or the server's own message. `tls` says whether TLS may have been tried
/// (sqlx reports a failed handshake as an I/O error of kind `InvalidData`).
fn connect_failure(error: &sqlx::Error, tls: bool) -> String {
    match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is PostgreSQL running and listening there?)".to_owned()
        }
        sqlx::Error::Io(io) if io.to_string().contains("lookup address") => {
            format!("the host name does not resolve (DNS): {io}")
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            format!("the connection timed out: {io}")
        }
        sqlx::Error::Io(io) if tls && io.kind() == std::io::ErrorKind::InvalidData => {
            format!("TLS failed (sslmode): {io}")
        }
        sqlx::Error::Io(io) => format!("network error: {io}"),
        sqlx::Error::Tls(tls) => format!("TLS failed (sslmode): {}", innermost(&**tls)),
        sqlx::Error::Database(db) => {
            let code = db.code();
            let what = match code.as_deref() {
                // invalid_password
                Some("28P01") => "authentication failed",
                // invalid_authorization_specification: no such role, or pg_hba.conf says no
                Some("28000") => "the server refused the login",
                // invalid_catalog_name
                Some("3D000") => "no such database",
                // too_many_connections
                Some("53300") => "the server has no connection slot left",
                _ => "the server refused",
            };
            format!(
                "{what}: {} (SQLSTATE {})",
                db.message(),
                code.as_deref().unwrap_or("?")
            )
        }
        other => innermost(other),
    }
}

/// Whether `conn` opens read-only transactions: a standby, or `default_transaction_read_only`.
async fn read_only(conn: &mut PgConnection) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT current_setting('transaction_read_only') = 'on'")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)
}

impl PostgresStore {
    /// Connects to the PostgreSQL that `settings` name, with a pool of their size, their
    /// timeout for every call, and sealing when they hold an encryption key. Reads the schema
    /// version first: tables that are missing or older are created or upgraded (safe when
    /// several instances start at once) unless `DATABASE_MIGRATE=off`
    /// ([`PostgresSettings::with_migrate`]); up-to-date tables need only `SELECT`, `INSERT`,
    /// `UPDATE` and `DELETE`. A read-only database (a standby, `default_transaction_read_only`)
    /// with up-to-date tables is connected to: the store answers reads, refuses writes, and
    /// says `store_read_only` in [`warnings`](SessionStore::warnings). Must be called inside a
    /// tokio runtime: it starts the revocation listener task, which holds one more connection
    /// of its own.
    ///
    /// ```no_run
    /// use tower_jwt_session::config::PostgresSettings;
    /// use tower_jwt_session::store::PostgresStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = PostgresStore::connect(&PostgresSettings::from_env()?).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] when no URL is configured, the URL is malformed, the
    /// tables were made by a newer release, are missing or older with `DATABASE_MIGRATE=off`
    /// or cannot be created (no right, a read-only database), or the encryption key does not
    /// fit the records already stored; [`StoreError::Unavailable`] naming `DATABASE_URL`, the
    /// host and port and the cause when PostgreSQL cannot be reached (refused, no such host,
    /// TLS, authentication) or does not answer within the timeout (at least 10 s at startup).
    pub async fn connect(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let target = Target::new(settings)?;
        let timeout = settings.timeout();
        let tables = Tables::new(settings.table_prefix());
        let cipher = Cipher::new(
            settings.encryption_keys(),
            settings.accepts_unsealed_records(),
        );
        // Boxed as `Send` here, where every lifetime is known: left to the caller's future,
        // the compiler cannot prove sqlx's executor futures `Send` for all lifetimes.
        let setup: Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + '_>> =
            Box::pin(async {
                let mut conn = target.open().await?;
                let done = async {
                    prepare(&mut conn, &tables, settings.migrate()).await?;
                    check_key(&mut conn, &tables, cipher.as_ref()).await
                }
                .await;
                let _ = conn.close().await;
                done
            });
        target.within_budget(setup).await?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections())
            .acquire_timeout(timeout)
            .connect_lazy_with(target.options.clone());
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout.max(Duration::from_secs(1)))
            .connect_lazy_with(target.options);
        let sinks: Arc<Mutex<Vec<RevocationSink>>> = Arc::default();
        let listener = tokio::spawn(listen(listener_pool, tables.channel.clone(), sinks.clone()));
        Ok(Self {
            sql: Arc::new(Sql::new(&tables)),
            pool,
            tables,
            cipher,
            timeout,
            sinks,
            listener,
        })
    }

    /// The store on the app's own pool: the tables, migrations and sealing `settings` name
    /// (its URL and pool size are not used), and one connection of its own for `LISTEN`, made
    /// with the pool's connect options. Prefer
    /// [`SessionManagerBuilder::postgres_pool`](crate::manager::SessionManagerBuilder::postgres_pool),
    /// which also claims the prefix and puts the protections on the same pool.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn with_pool(pool: PgPool, settings: &PostgresSettings) -> Result<Self, StoreError> {
        let timeout = settings.timeout();
        let tables = Tables::new(settings.table_prefix());
        let cipher = Cipher::new(
            settings.encryption_keys(),
            settings.accepts_unsealed_records(),
        );
        let setup: Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + '_>> =
            Box::pin(async {
                let mut conn = pool.acquire().await.map_err(db_error)?;
                prepare(&mut conn, &tables, settings.migrate()).await?;
                check_key(&mut conn, &tables, cipher.as_ref()).await
            });
        tokio::time::timeout(timeout.max(Duration::from_secs(10)), setup)
            .await
            .map_err(|_| StoreError::Timeout)??;
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout.max(Duration::from_secs(1)))
            .connect_lazy_with((*pool.connect_options()).clone());
        let sinks: Arc<Mutex<Vec<RevocationSink>>> = Arc::default();
        let listener = tokio::spawn(listen(listener_pool, tables.channel.clone(), sinks.clone()));
        Ok(Self {
            sql: Arc::new(Sql::new(&tables)),
            pool,
            tables,
            cipher,
            timeout,
            sinks,
            listener,
        })
    }

    /// Creates or upgrades the store's tables under the prefix `settings` name, and returns:
    /// the migration step of a deployment whose application runs with `DATABASE_MIGRATE=off`
    /// and `SELECT`, `INSERT`, `UPDATE`, `DELETE` rights only. Run it as a user that may
    /// create tables in the schema (`CREATE` on it); the tables go to the first schema of that
    /// user's `search_path`, which must be the one the application's user reads. Idempotent,
    /// and safe while instances are running or starting: it works in one transaction under an
    /// advisory lock of the prefix, and does nothing when the tables are up to date. Whatever
    /// `settings.migrate()` says, this migrates.
    ///
    /// ```no_run
    /// use tower_jwt_session::config::PostgresSettings;
    /// use tower_jwt_session::store::PostgresStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// // A deploy step, as the schema's owner.
    /// PostgresStore::migrate(&PostgresSettings::new("postgres://owner@db/app")).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`connect`](Self::connect): [`StoreError::Misconfigured`] for tables of a newer
    /// release, a user without the `CREATE` right, a read-only database;
    /// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, saying why.
    pub async fn migrate(settings: &PostgresSettings) -> Result<(), StoreError> {
        let target = Target::new(settings)?;
        let tables = Tables::new(settings.table_prefix());
        let work: Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + '_>> =
            Box::pin(async {
                let mut conn = target.open().await?;
                let done = prepare(&mut conn, &tables, MigrateMode::Auto).await;
                let _ = conn.close().await;
                done
            });
        target.within_budget(work).await
    }

    /// The pool this store runs on, for the PostgreSQL backends of the rate limiter and the
    /// attempt tracker (`rate_limit::PostgresRateLimitBackend::new`,
    /// `rate_limit::PostgresAttemptBackend::new`), so the limits hold across instances on the
    /// same pool, timeout, table prefix and key hashing as the sessions.
    pub fn connection(&self) -> PostgresConnection {
        PostgresConnection::new(
            self.pool.clone(),
            &self.tables,
            self.timeout,
            self.cipher.as_ref().map(Cipher::current_name_key),
        )
    }

    /// Claims this store's table prefix for the application `config` configures, as
    /// [`SessionManagerBuilder::connect`](crate::manager::SessionManagerBuilder::connect) does at startup: two
    /// applications with different signing keys on one prefix would evict, list and revoke each
    /// other's sessions, so the second one to start is refused instead. The meta table remembers
    /// a fingerprint of each signing key (an HMAC that tells nothing of the key); an application
    /// sharing any key with it (a restart, a rotation with the old secret in
    /// `JWT_PREVIOUS_SECRETS`) is the same one, and fingerprints unused for the session lifetime
    /// are forgotten. Call it when you build a manager on a store you connected yourself. On a
    /// read-only database the prefix is checked, and nothing recorded.
    ///
    /// ```no_run
    /// use tower_jwt_session::store::PostgresStore;
    /// use tower_jwt_session::{SessionConfig, SessionManager};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = SessionConfig::from_env()?;
    /// let store = PostgresStore::connect(config.postgres()).await?;
    /// store.claim(&config).await?;
    /// let manager = SessionManager::builder(config).store(store).build()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] naming the prefix when an application with none of these
    /// keys has used it within the session lifetime; [`StoreError`] when PostgreSQL cannot be
    /// reached.
    pub async fn claim(&self, config: &crate::SessionConfig) -> Result<(), StoreError> {
        let rules = config.rules();
        self.claim_with(
            &crate::token::refresh::RefreshKeys::from_tokens(config.tokens()).owner_fingerprints(),
            crate::clock::unix_ms(std::time::SystemTime::now()),
            crate::clock::duration_ms(rules.session_ttl() + rules.access_token_ttl()),
        )
        .await
    }

    /// [`claim`](Self::claim) for these fingerprints (current key first), at `now`, forgetting
    /// those unused for `retention` (both in ms).
    pub(super) async fn claim_with(
        &self,
        owner: &[String],
        now: u64,
        retention: u64,
    ) -> Result<(), StoreError> {
        let Some(first) = owner.first() else {
            return Ok(());
        };
        let names: Vec<String> = owner.iter().map(|f| format!("owner:{f}")).collect();
        let meta = &self.tables.meta;
        let claim: std::pin::Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + '_>> =
            Box::pin(async {
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                // A read-only database (a standby, `default_transaction_read_only`) is checked
                // against and left as it is: the store starts degraded, not at all would be
                // worse, and nothing can be written there by anyone meanwhile.
                let read_only: bool = sqlx::query_scalar(
                    "SELECT current_setting('transaction_read_only') = 'on' \
                     FROM (SELECT pg_advisory_xact_lock($1)) AS locked",
                )
                .bind(lock_key(
                    format!("tower-jwt-session claim {}", self.tables.prefix).as_bytes(),
                ))
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
                let cutoff = to_i64(now.saturating_sub(retention));
                if !read_only {
                    sqlx::query(&format!(
                        "DELETE FROM {meta} WHERE name LIKE 'owner:%' \
                         AND CASE WHEN name LIKE 'owner:%' THEN value::bigint END < $1"
                    ))
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
                let (all, ours): (i64, i64) = sqlx::query_as(&format!(
                    "SELECT count(*), count(*) FILTER (WHERE name = ANY($1)) FROM {meta} \
                     WHERE name LIKE 'owner:%' \
                     AND CASE WHEN name LIKE 'owner:%' THEN value::bigint END >= $2"
                ))
                .bind(&names)
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
                if (all > 0 && ours == 0) || read_only {
                    tx.rollback().await.map_err(db_error)?;
                    if read_only {
                        tracing::warn!(
                            prefix = %self.tables.prefix,
                            "PostgreSQL is read-only: the table prefix was checked but this \
                             application's key fingerprint not recorded"
                        );
                    }
                    return Ok(all == 0 || ours > 0);
                }
                sqlx::query(&format!(
                    "INSERT INTO {meta} (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
                ))
                .bind(format!("owner:{first}"))
                .bind(now.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                Ok(true)
            });
        if self.timed(claim).await? {
            return Ok(());
        }
        let prefix = &self.tables.prefix;
        Err(StoreError::Misconfigured(format!(
            "DATABASE_TABLE_PREFIX `{prefix}` holds the sessions of an application signing with \
             another key: two applications on one prefix would evict, list and revoke each \
             other's sessions. Give each application its own DATABASE_TABLE_PREFIX. If you \
             replaced JWT_SECRET, list the old one in JWT_PREVIOUS_SECRETS, or delete the rows \
             `owner:%` of `{prefix}_meta` to let every session of the old key go"
        )))
    }

    /// Deletes every row past its purge time at `now` (writes delete a bounded batch each on
    /// their own; call this from a periodic job to reclaim everything at once). Returns how
    /// many rows went.
    ///
    /// # Errors
    /// [`StoreError`] when PostgreSQL cannot be reached or times out.
    pub async fn purge(&self, now: u64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let gone = self.purge_batch(now, 10_000).await?;
            total += gone;
            if gone < 10_000 {
                break;
            }
        }
        // The security events past their retention (the trails of users who did not come
        // back: a user's own writes overwrite its oldest slots).
        loop {
            let gone = self
                .timed(async {
                    let done = sqlx::query(&self.sql.activity_sweep)
                        .bind(to_i64(now))
                        .bind(10_000_i64)
                        .execute(&self.pool)
                        .await
                        .map_err(db_error)?;
                    Ok(done.rows_affected())
                })
                .await?;
            total += gone;
            if gone < 10_000 {
                return Ok(total);
            }
        }
    }

    async fn purge_batch(&self, now: u64, max: i64) -> Result<u64, StoreError> {
        self.timed(async {
            let done = sqlx::query(&self.sql.purge_due)
                .bind(to_i64(now))
                .bind(max)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// Runs `fut` within the store's timeout.
    async fn timed<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| StoreError::Timeout)?
    }

    /// Begins a transaction on `conn` holding the per-user lock of `user_key` until it ends:
    /// logins and logout-all of one user run one at a time (a login must see every session it
    /// counts against the limit, including one another login is adding). `BEGIN` and the lock
    /// go in one round trip (the key is a number, written into the statement).
    async fn begin_locked<'c>(
        &self,
        conn: &'c mut PgConnection,
        user_key: &[u8],
    ) -> Result<Transaction<'c, Postgres>, StoreError> {
        let mut label = format!("tower-jwt-session user {} ", self.tables.prefix).into_bytes();
        label.extend_from_slice(user_key);
        let begin = format!("BEGIN; SELECT pg_advisory_xact_lock({})", lock_key(&label));
        sqlx::Connection::begin_with(conn, begin)
            .await
            .map_err(db_error)
    }

    /// Deletes `sids` in `tx` and notifies every instance; returns `(session, live at now)`.
    async fn delete_notify(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        sids: &[SessionId],
        now: u64,
    ) -> Result<Vec<(SessionId, bool)>, StoreError> {
        let ids: Vec<Vec<u8>> = sids.iter().map(|s| s.as_bytes().to_vec()).collect();
        let rows = sqlx::query(&self.sql.delete_notify)
            .bind(ids)
            .bind(&self.tables.channel)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)?;
        rows.iter().map(|row| gone_row(row, now)).collect()
    }

    async fn create_tx(
        &self,
        conn: &mut PgConnection,
        record: &SessionRecord,
        limit: SessionLimit,
        now: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let keys = user_keys(self.cipher.as_ref(), &record.user_id);
        let data = encode_data(self.cipher.as_ref(), record)?;
        let mut tx = self.begin_locked(conn, &keys[0]).await?;
        let rows = sqlx::query(&self.sql.user_rows)
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let mut live = Vec::new();
        let mut due = Vec::new();
        for row in &rows {
            let sid = sid_from(row.try_get("session_id").map_err(db_error)?)?;
            let number = |name: &str| -> Result<u64, StoreError> {
                to_u64(row.try_get::<i64, _>(name).map_err(db_error)?)
            };
            let (last_active_at, expires_at, purge_at) = (
                number("last_active_at")?,
                number("expires_at")?,
                number("purge_at")?,
            );
            if now > purge_at {
                due.push(sid);
            } else if now < expires_at {
                live.push((sid, last_active_at));
            }
        }
        let Some(evicted) = plan_admission(&live, limit) else {
            tx.rollback().await.map_err(db_error)?;
            return Ok(CreateOutcome::LimitReached);
        };
        if !due.is_empty() {
            let ids: Vec<Vec<u8>> = due.iter().map(|s| s.as_bytes().to_vec()).collect();
            sqlx::query(&format!(
                "DELETE FROM {} WHERE session_id = ANY($1)",
                self.tables.sessions
            ))
            .bind(ids)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        if !evicted.is_empty() {
            self.delete_notify(&mut tx, &evicted, now).await?;
        }
        sqlx::query(&self.sql.insert)
            .bind(record.session_id.as_bytes().as_slice())
            .bind(&keys[0])
            .bind(to_i64(record.created_at))
            .bind(to_i64(record.last_active_at))
            .bind(to_i64(record.expires_at))
            .bind(to_i64(record.generation))
            .bind(to_i64(record.refresh_expires_at))
            .bind(to_i64(record.purge_at))
            .bind(data)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(CreateOutcome::Created { evicted })
    }

    /// One attempt at a rotation on `conn`: reads the row, decides, and writes only if the row
    /// is still the version read. `Err(Stale)` when another instance wrote it meanwhile (its
    /// write went first: read it again and decide anew), `Err(Busy)` when its row lock is held
    /// (nothing was written; try again shortly).
    async fn try_rotate(
        &self,
        conn: &mut PgConnection,
        req: &RotateRequest,
    ) -> Result<Result<RotateOutcome, Written>, StoreError> {
        if req.past_deadline(crate::clock::SystemClock.now_ms()) {
            return Err(StoreError::DeadlinePassed);
        }
        let sid = req.session_id;
        let deadline = req.deadline.map(to_i64);
        let Some(row) = sqlx::query(&self.sql.select_versioned)
            .bind(sid.as_bytes().as_slice())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?
        else {
            return Ok(Ok(RotateOutcome::NotFound));
        };
        let version: String = row.try_get("version").map_err(db_error)?;
        // A row that is not what this crate wrote is no session (and is left for an operator).
        let Some((record, reseal)) = decode_row(self.cipher.as_ref(), &row)? else {
            return Ok(Ok(RotateOutcome::NotFound));
        };
        if req.now > record.purge_at {
            let deleted = sqlx::query(&self.sql.delete_if_unchanged)
                .bind(sid.as_bytes().as_slice())
                .bind(&version)
                .bind(deadline)
                .execute(&mut *conn)
                .await
                .map(|done| done.rows_affected());
            return Ok(match Written::from(deleted)? {
                Written::Yes => Ok(RotateOutcome::NotFound),
                other => Err(other),
            });
        }
        let decision = decide_rotation(&record, req);
        let mut next = record.clone();
        apply_rotation(&mut next, decision, req);
        let written = match decision {
            // An ended session is deleted at once, and every instance told.
            RotationDecision::Reuse(_) | RotationDecision::Revoked => {
                let deleted = sqlx::query(&self.sql.delete_notify_if_unchanged)
                    .bind(sid.as_bytes().as_slice())
                    .bind(&self.tables.channel)
                    .bind(&version)
                    .bind(deadline)
                    .fetch_optional(&mut *conn)
                    .await
                    .map(|row| u64::from(row.is_some()));
                Written::from(deleted)?
            }
            RotationDecision::Rotate { .. } => self.write(conn, &next, &version, deadline).await?,
            // Sealed with an old key (or not at all, during a migration): seal it anew.
            _ if reseal => self.write(conn, &next, &version, deadline).await?,
            // Nothing to write: the answer is the row as read.
            _ => Written::Yes,
        };
        Ok(match written {
            Written::Yes => Ok(rotation_outcome(decision, &next)),
            other => Err(other),
        })
    }

    /// Writes what a rotation changes, if the row is still at `version`: the times, the data
    /// sealed anew, and the user key under the current key (a row from before a key rotation,
    /// or from before sealing, is found under the current key from then on). Returns whether
    /// it was written.
    async fn write(
        &self,
        conn: &mut PgConnection,
        record: &SessionRecord,
        version: &str,
        deadline: Option<i64>,
    ) -> Result<Written, StoreError> {
        let written = sqlx::query(&self.sql.update_if_unchanged)
            .bind(record.session_id.as_bytes().as_slice())
            .bind(to_i64(record.last_active_at))
            .bind(to_i64(record.generation))
            .bind(to_i64(record.refresh_expires_at))
            .bind(to_i64(record.purge_at))
            .bind(encode_data(self.cipher.as_ref(), record)?)
            .bind(&user_keys(self.cipher.as_ref(), &record.user_id)[0])
            .bind(version)
            .bind(deadline)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected());
        Written::from(written)
    }

    async fn revoke_all_tx(
        &self,
        user_id: &str,
        now: u64,
    ) -> Result<Vec<(SessionId, bool)>, StoreError> {
        let keys = user_keys(self.cipher.as_ref(), user_id);
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let mut tx = self.begin_locked(&mut conn, &keys[0]).await?;
        let rows = sqlx::query(&self.sql.revoke_all)
            .bind(&keys)
            .bind(&self.tables.channel)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.iter().map(|row| gone_row(row, now)).collect()
    }
}

/// Refuses to start with a sealing key that does not open what is already stored, or without
/// a key when what is stored is sealed: a sealed marker row in the meta table records which
/// key seals. On a read-only database the marker is checked but not (re)written: nothing can be
/// written there under any key, and the next start on a writable one writes it.
async fn check_key(
    conn: &mut PgConnection,
    tables: &Tables,
    cipher: Option<&Cipher>,
) -> Result<(), StoreError> {
    let marker: Option<String> = sqlx::query(&format!(
        "SELECT value FROM {} WHERE name = 'keycheck'",
        tables.meta
    ))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?
    .map(|row| row.try_get(0))
    .transpose()
    .map_err(db_error)?;
    let fresh = match (cipher, marker) {
        (None, None) => return Ok(()),
        (None, Some(_)) => {
            return Err(StoreError::Misconfigured(
                "session records in PostgreSQL are sealed, but SESSION_ENCRYPTION_KEY is not set"
                    .to_owned(),
            ));
        }
        (Some(cipher), Some(marker)) => match cipher.open(|_| b"tjs-keycheck".to_vec(), &marker) {
            Some(opened) if !opened.old_key => return Ok(()),
            Some(_) => cipher.seal(b"tjs-keycheck", b"ok"),
            None => {
                return Err(StoreError::Misconfigured(
                    "SESSION_ENCRYPTION_KEY (and SESSION_ENCRYPTION_PREVIOUS_KEYS) do not \
                     open the session records already in PostgreSQL"
                        .to_owned(),
                ));
            }
        },
        (Some(cipher), None) => cipher.seal(b"tjs-keycheck", b"ok"),
    };
    if read_only(conn).await? {
        tracing::warn!(
            "PostgreSQL is read-only: the sealing key's marker is not written now (it will be \
             at the next start on a writable database)"
        );
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO {} (name, value) VALUES ('keycheck', $1) \
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        tables.meta
    ))
    .bind(fresh)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// `(session, live at now)` from a row of a deleting statement.
fn gone_row(row: &sqlx::postgres::PgRow, now: u64) -> Result<(SessionId, bool), StoreError> {
    let sid = sid_from(row.try_get("session_id").map_err(db_error)?)?;
    let expires_at = to_u64(row.try_get("expires_at").map_err(db_error)?)?;
    let purge_at = to_u64(row.try_get("purge_at").map_err(db_error)?)?;
    Ok((sid, now < expires_at && now <= purge_at))
}

/// Listens for revocations notified by any instance, reconnecting with back-off. Whenever the
/// listening connection is (re-)established, the sinks are told to forget everything: what was
/// notified meanwhile is unknown.
async fn listen(pool: PgPool, channel: String, sinks: Arc<Mutex<Vec<RevocationSink>>>) {
    let notify = |event: RevocationEvent| {
        let sinks = sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for sink in sinks {
            sink(event);
        }
    };
    let mut delay = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(%error, "revocation listener cannot reach PostgreSQL");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if let Err(error) = listener.listen(&channel).await {
            tracing::warn!(%error, "revocation LISTEN failed");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            continue;
        }
        delay = Duration::from_millis(100);
        notify(RevocationEvent::Resync);
        loop {
            match listener.try_recv().await {
                Ok(Some(message)) => {
                    if let Some(sid) = sid_from_hex(message.payload()) {
                        notify(RevocationEvent::Revoked(sid));
                    }
                }
                // The connection was lost and has been re-established (LISTEN again):
                // anything notified in between is unknown.
                Ok(None) => {
                    tracing::warn!("revocation listener reconnected");
                    notify(RevocationEvent::Resync);
                }
                Err(error) => {
                    tracing::warn!(%error, "revocation listener lost; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(delay).await;
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    fn watch_revocations(&self, sink: RevocationSink) {
        self.sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
        _lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<CreateOutcome, StoreError> {
        self.timed(async {
            // One connection for both steps: one health check of it, not two.
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            // Bounded work for the table as a whole: a batch of anyone's due rows, skipping
            // rows another transaction holds.
            sqlx::query(&self.sql.purge_due)
                .bind(to_i64(now))
                .bind(PURGE_BATCH)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            self.create_tx(&mut conn, &record, limit, now).await
        })
        .await
    }

    async fn rotate(&self, req: RotateRequest) -> Result<RotateOutcome, StoreError> {
        self.timed(async {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            // Each lost race means another instance's write went first, so this ends; a row
            // locked by someone else is waited for here, a millisecond at a time, where the
            // timeout can end the wait (never inside PostgreSQL, where it could not).
            loop {
                match self.try_rotate(&mut conn, &req).await? {
                    Ok(outcome) => return Ok(outcome),
                    Err(Written::Busy) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(_) => {}
                }
            }
        })
        .await
    }

    async fn get(&self, session_id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.timed(async {
            let row = sqlx::query(&self.sql.select)
                .bind(session_id.as_bytes().as_slice())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(row
                .as_ref()
                .map(|row| decode_row(self.cipher.as_ref(), row))
                .transpose()?
                .flatten()
                .map(|(record, _)| record))
        })
        .await
    }

    async fn list(&self, user_id: &str, now: u64) -> Result<Vec<SessionRecord>, StoreError> {
        self.timed(async {
            let rows = sqlx::query(&self.sql.list)
                .bind(user_keys(self.cipher.as_ref(), user_id))
                .bind(to_i64(now))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                if let Some((record, _)) = decode_row(self.cipher.as_ref(), row)?
                    && record.user_id == user_id
                    && record.is_live(now)
                {
                    records.push(record);
                }
            }
            Ok(records)
        })
        .await
    }

    async fn revoke(&self, session_id: SessionId, now: u64) -> Result<bool, StoreError> {
        self.timed(async {
            let row = sqlx::query(&self.sql.delete_notify)
                .bind(vec![session_id.as_bytes().to_vec()])
                .bind(&self.tables.channel)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(match row {
                Some(row) => gone_row(&row, now)?.1,
                None => false,
            })
        })
        .await
    }

    async fn revoke_all(&self, user_id: &str, now: u64) -> Result<Vec<SessionId>, StoreError> {
        let gone = self.timed(self.revoke_all_tx(user_id, now)).await?;
        Ok(gone
            .into_iter()
            .filter_map(|(sid, live)| live.then_some(sid))
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(async {
            let one: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
            if one == 1 {
                Ok(())
            } else {
                Err(corrupt("SELECT 1 answered something else"))
            }
        })
        .await
    }

    async fn warnings(&self) -> Result<Vec<StoreWarning>, StoreError> {
        self.timed(async {
            let row = sqlx::query(SETTINGS)
                .bind(&self.tables.sessions)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
            let text = |name: &str| row.try_get::<String, _>(name).map_err(db_error);
            Ok(setting_warnings(
                &self.tables.sessions,
                &ServerSettings {
                    synchronous_commit: text("synchronous_commit")?,
                    fsync: text("fsync")?,
                    full_page_writes: text("full_page_writes")?,
                    in_recovery: row.try_get("in_recovery").map_err(db_error)?,
                    read_only: text("read_only")?,
                    sessions_unlogged: row.try_get("sessions_unlogged").map_err(db_error)?,
                },
            ))
        })
        .await
    }

    fn keeps_activity(&self) -> bool {
        true
    }

    async fn record_activity(
        &self,
        event: &SecurityEvent,
        bounds: ActivityBounds,
        _now: u64,
    ) -> Result<(), StoreError> {
        let key = user_keys(self.cipher.as_ref(), &event.user_id).swap_remove(0);
        let stored = event.to_stored();
        let data = match &self.cipher {
            Some(cipher) => cipher.seal(&key, stored.as_bytes()),
            None => stored,
        };
        let at = event.at_ms();
        let max = i64::try_from(bounds.max.max(1)).unwrap_or(i64::MAX);
        self.timed(async {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            // One writer per user at a time (two instances recording for one user), or two
            // could take the same slot and one event would overwrite the other.
            let mut label =
                format!("tower-jwt-session activity {} ", self.tables.prefix).into_bytes();
            label.extend_from_slice(&key);
            // Not waiting for the WAL flush: an event lost in a crash of PostgreSQL is worth
            // the write it saves on every login (it is in the hook and the logs anyway).
            let begin = format!(
                "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock({})",
                lock_key(&label)
            );
            let mut tx = sqlx::Connection::begin_with(&mut *conn, begin)
                .await
                .map_err(db_error)?;
            sqlx::query(&self.sql.activity_insert)
                .bind(&key)
                .bind(to_i64(at))
                .bind(to_i64(at.saturating_add(bounds.retention)))
                .bind(data)
                .bind(i32::try_from(max).unwrap_or(i32::MAX))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            sqlx::query(&self.sql.activity_trim)
                .bind(&key)
                .bind(i32::try_from(max).unwrap_or(i32::MAX))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn activity(
        &self,
        user_id: &str,
        bounds: ActivityBounds,
        now: u64,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        let key = user_keys(self.cipher.as_ref(), user_id).swap_remove(0);
        let max = i64::try_from(bounds.max.max(1)).unwrap_or(i64::MAX);
        let rows: Vec<String> = self
            .timed(async {
                sqlx::query_scalar(&self.sql.activity_read)
                    .bind(&key)
                    .bind(to_i64(now))
                    .bind(max)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|data| match &self.cipher {
                Some(cipher) => {
                    let opened = cipher.open(|_| key.clone(), data)?;
                    let plain = String::from_utf8(opened.plain).ok()?;
                    SecurityEvent::from_stored(user_id, &plain)
                }
                None => SecurityEvent::from_stored(user_id, data),
            })
            .filter(|event| !event.expired(bounds, now))
            .collect())
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn backing(&self) -> crate::store::Backing {
        crate::store::Backing::Postgres(Box::new(self.connection()))
    }
}

/// What [`SessionStore::warnings`] reads, in one query: the settings (as the store's own
/// connections see them, per-database and per-role ones included) that decide whether a
/// committed logout is kept, and whether the sessions table is logged. `$1` is that table.
const SETTINGS: &str = "SELECT current_setting('synchronous_commit') AS synchronous_commit, \
     current_setting('fsync') AS fsync, \
     current_setting('full_page_writes') AS full_page_writes, \
     pg_is_in_recovery() AS in_recovery, \
     current_setting('default_transaction_read_only') AS read_only, \
     coalesce((SELECT relpersistence = 'u' FROM pg_class WHERE oid = to_regclass($1)), false) \
     AS sessions_unlogged";

/// The server's answer to [`SETTINGS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ServerSettings {
    pub(super) synchronous_commit: String,
    pub(super) fsync: String,
    pub(super) full_page_writes: String,
    pub(super) in_recovery: bool,
    pub(super) read_only: String,
    pub(super) sessions_unlogged: bool,
}

/// A warning, for an operator, for each setting that breaks a promise of the store
/// (docs/deployment.md, "PostgreSQL settings that keep the promises").
pub(super) fn setting_warnings(sessions_table: &str, s: &ServerSettings) -> Vec<StoreWarning> {
    let mut out = Vec::new();
    if s.synchronous_commit == "off" {
        out.push(StoreWarning::new(
            "store_commit_not_durable",
            "PostgreSQL runs with synchronous_commit = off: a crash of the database can lose the \
             last writes it acknowledged, and a lost logout lets that session work again until \
             it ends; set synchronous_commit = on for the store's database or role \
             (docs/deployment.md)",
        ));
    }
    if s.fsync == "off" {
        out.push(StoreWarning::new(
            "store_fsync_off",
            "PostgreSQL runs with fsync = off: a crash of the database host can lose or corrupt \
             committed sessions and logouts; set fsync = on (docs/deployment.md)",
        ));
    }
    if s.full_page_writes == "off" {
        out.push(StoreWarning::new(
            "store_full_page_writes_off",
            "PostgreSQL runs with full_page_writes = off: a crash of the database host can \
             leave the sessions table corrupt; set full_page_writes = on (docs/deployment.md)",
        ));
    }
    if s.in_recovery {
        out.push(StoreWarning::new(
            "store_read_only",
            "PostgreSQL is in recovery (a standby): logins, refreshes and logouts cannot be \
             written; point DATABASE_URL at the primary (docs/deployment.md)",
        ));
    } else if s.read_only == "on" {
        out.push(StoreWarning::new(
            "store_read_only",
            "PostgreSQL opens transactions read-only (default_transaction_read_only = on): \
             logins, refreshes and logouts cannot be written; turn it off for the store's \
             database or role (docs/deployment.md)",
        ));
    }
    if s.sessions_unlogged {
        out.push(StoreWarning::new(
            "store_table_unlogged",
            format!(
                "the sessions table {sessions_table} is UNLOGGED: a crash of the database empties \
             it (every session ends) and standbys do not have it; run ALTER TABLE \
             {sessions_table} SET LOGGED (docs/deployment.md)"
            ),
        ));
    }
    out
}

#[cfg(test)]
impl PostgresStore {
    /// The version (`xmin`) of a session's row, as a rotation reads it.
    pub(super) async fn version_of(&self, sid: SessionId) -> String {
        sqlx::query(&self.sql.select_versioned)
            .bind(sid.as_bytes().as_slice())
            .fetch_one(&self.pool)
            .await
            .expect("the row")
            .try_get("version")
            .expect("its version")
    }

    /// A rotation's write of `record` over `version` with `deadline`, on its own: the server's
    /// check of the deadline, without the store's earlier check of the local clock. Whether the
    /// row was written.
    pub(super) async fn write_as_rotation(
        &self,
        record: &SessionRecord,
        version: &str,
        deadline: Option<u64>,
    ) -> bool {
        let mut conn = self.pool.acquire().await.expect("a connection");
        matches!(
            self.write(&mut conn, record, version, deadline.map(to_i64))
                .await
                .expect("the write"),
            Written::Yes
        )
    }
}

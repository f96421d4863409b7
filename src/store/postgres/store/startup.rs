//! Starting a [`PostgresStore`](super::PostgresStore): connecting (and saying why not), migrating,
//! checking the sealing key, and the listener of revocations every instance notifies.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool, Row as _};

use super::{PostgresStore, Sql, db_error};
use crate::config::{MigrateMode, PostgresSettings};
use crate::store::postgres::record::sid_from_hex;
use crate::store::postgres::schema::{Tables, prepare};
use crate::store::sealing::Cipher;
use crate::store::{RevocationEvent, RevocationSink, StoreError};

/// How long startup may take at least: creating tables may wait for another instance doing
/// the same.
pub(super) const STARTUP_BUDGET: Duration = Duration::from_secs(10);

/// What a store's URL names, parsed: the options to connect with (the store's timeouts set)
/// and where they point, for messages.
pub(super) struct Target {
    options: PgConnectOptions,
    /// `host:port` or the socket's path; never a password.
    at: String,
    /// How long startup (connecting, migrations, the key check) may take.
    budget: Duration,
}

impl Target {
    pub(super) fn new(settings: &PostgresSettings) -> Result<Self, StoreError> {
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
    pub(super) async fn open(&self) -> Result<PgConnection, StoreError> {
        PgConnection::connect_with(&self.options)
            .await
            .map_err(|error| self.unreachable(&error))
    }

    /// `work` within the startup budget.
    pub(super) async fn within_budget<T>(
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
    pub(super) fn unreachable(&self, error: &sqlx::Error) -> StoreError {
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
pub(super) fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// Why a connection attempt failed, in an operator's words: refused, no such host, TLS,
/// authentication, or the server's own message. `tls` says whether TLS may have been tried
/// (sqlx reports a failed handshake as an I/O error of kind `InvalidData`).
pub(super) fn connect_failure(error: &sqlx::Error, tls: bool) -> String {
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
pub(super) async fn read_only(conn: &mut PgConnection) -> Result<bool, StoreError> {
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
    /// says `store_read_only` in [`warnings`]. Must be called inside a
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
    ///
    /// [`warnings`]: crate::store::SessionStore::warnings
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
}

/// Refuses to start with a sealing key that does not open what is already stored, or without
/// a key when what is stored is sealed: a sealed marker row in the meta table records which
/// key seals. On a read-only database the marker is checked but not (re)written: nothing can be
/// written there under any key, and the next start on a writable one writes it.
pub(super) async fn check_key(
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

/// Listens for revocations notified by any instance, reconnecting with back-off. Whenever the
/// listening connection is (re-)established, the sinks are told to forget everything: what was
/// notified meanwhile is unknown.
pub(super) async fn listen(pool: PgPool, channel: String, sinks: Arc<Mutex<Vec<RevocationSink>>>) {
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

//! The store's tables, created by embedded migrations: idempotent, and safe when several
//! instances start at once (one transaction under an advisory lock per prefix). Startup reads
//! the schema version before anything else, and migrates only when the tables are missing or
//! older (`DATABASE_MIGRATE`).

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row as _};

use super::store::db_error;
use crate::config::MigrateMode;
use crate::store::StoreError;

/// The migrations, oldest first; version `n` is `MIGRATIONS[n - 1]`. Append, never edit.
const MIGRATIONS: &[&str] = &[
    include_str!("sql/v1.sql"),
    include_str!("sql/v2.sql"),
    include_str!("sql/v3.sql"),
    include_str!("sql/v4.sql"),
];

/// A 64-bit advisory-lock key for `label`, so that locks of different prefixes (and of other
/// applications, which pick their own keys) rarely meet; when they do, they only wait.
pub(super) fn lock_key(label: &[u8]) -> i64 {
    let digest = Sha256::digest(label);
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Table names under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Tables {
    pub(super) prefix: String,
    pub(super) sessions: String,
    pub(super) meta: String,
    /// The notification channel of revocations.
    pub(super) channel: String,
    /// The rate limiter's counters.
    pub(super) rate_limits: String,
    /// The attempt tracker's records.
    pub(super) attempts: String,
    /// The security activity trail.
    pub(super) activity: String,
    /// The DPoP replay cache.
    pub(super) dpop_replay: String,
}

impl Tables {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            sessions: format!("{prefix}_sessions"),
            meta: format!("{prefix}_meta"),
            channel: format!("{prefix}_revoked"),
            rate_limits: format!("{prefix}_rate_limits"),
            attempts: format!("{prefix}_attempts"),
            activity: format!("{prefix}_activity"),
            dpop_replay: format!("{prefix}_dpop_replay"),
        }
    }
}

/// The schema version this release writes and reads.
const LATEST: usize = MIGRATIONS.len();

/// The schema version of the tables under `tables`' prefix: 0 when they do not exist. Needs
/// no right but `SELECT` on the meta table (and none at all when it is missing).
async fn version(conn: &mut PgConnection, tables: &Tables) -> Result<usize, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&tables.meta)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
    if !exists {
        return Ok(0);
    }
    read_version(conn, tables).await
}

/// The `schema_version` row of an existing meta table (0 when it has none).
async fn read_version(conn: &mut PgConnection, tables: &Tables) -> Result<usize, StoreError> {
    let version: Option<String> = sqlx::query(&format!(
        "SELECT value FROM {} WHERE name = 'schema_version'",
        tables.meta
    ))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?
    .map(|row| row.try_get(0))
    .transpose()
    .map_err(db_error)?;
    match version {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            StoreError::Corrupt(format!("{} holds schema_version {v:?}", tables.meta))
        }),
    }
}

/// Refuses tables made by a newer release: they are never written over.
fn refuse_newer(version: usize, tables: &Tables) -> Result<(), StoreError> {
    if version > LATEST {
        return Err(StoreError::Misconfigured(format!(
            "the tables under DATABASE_TABLE_PREFIX `{}` are at schema version {version}, made \
             by a newer release of tower-jwt-session than this one (version {LATEST})",
            tables.prefix,
        )));
    }
    Ok(())
}

/// What the tables under `tables`' prefix are, in words: missing, or at an older version.
fn state(version: usize, tables: &Tables) -> String {
    if version == 0 {
        format!(
            "the store's tables under DATABASE_TABLE_PREFIX `{}` do not exist",
            tables.prefix
        )
    } else {
        format!(
            "the store's tables under DATABASE_TABLE_PREFIX `{}` are at schema version \
             {version} (this release needs {LATEST})",
            tables.prefix
        )
    }
}

/// Startup's part: reads the schema version first, so that an up-to-date schema needs no right
/// beyond `SELECT`, `INSERT`, `UPDATE` and `DELETE` (PostgreSQL checks the schema's `CREATE`
/// right even for a `CREATE TABLE IF NOT EXISTS` that would do nothing). Missing or older
/// tables are created or upgraded with [`MigrateMode::Auto`], refused with
/// [`MigrateMode::Off`].
///
/// # Errors
/// [`StoreError::Misconfigured`] for tables of a newer release, for missing or older tables
/// with migrations off, and for a migration the database refuses (no `CREATE` right, a
/// read-only database).
pub(super) async fn prepare(
    conn: &mut PgConnection,
    tables: &Tables,
    mode: MigrateMode,
) -> Result<(), StoreError> {
    let found = version(conn, tables).await?;
    refuse_newer(found, tables)?;
    if found == LATEST {
        return Ok(());
    }
    match mode {
        MigrateMode::Off => Err(StoreError::Misconfigured(format!(
            "{}, and DATABASE_MIGRATE=off: run the migration as a user that may create tables \
             in the schema (PostgresStore::migrate, or one start with DATABASE_MIGRATE=auto), \
             then start again (docs/deployment.md)",
            state(found, tables)
        ))),
        MigrateMode::Auto => migrate(conn, tables, found).await,
    }
}

/// A migration the database refused for a reason an operator fixes (no right to create, a
/// read-only database) as [`StoreError::Misconfigured`] saying so; any other error as
/// [`db_error`] does.
fn refused_migration(error: sqlx::Error, found: usize, tables: &Tables) -> StoreError {
    let sqlx::Error::Database(db) = &error else {
        return db_error(error);
    };
    let (why, fix) = match db.code().as_deref() {
        // insufficient_privilege
        Some("42501") => (
            "the database user may not create them",
            "run the migration as a user with the CREATE right on the schema \
             (PostgresStore::migrate, or one start as that user), then start the application \
             with DATABASE_MIGRATE=off",
        ),
        // read_only_sql_transaction
        Some("25006") => (
            "PostgreSQL is read-only (a standby, or default_transaction_read_only = on)",
            "run the migration against the primary (PostgresStore::migrate, or a start with \
             DATABASE_MIGRATE=auto there)",
        ),
        _ => return db_error(error),
    };
    StoreError::Misconfigured(format!(
        "{}, and {why} ({}): {fix}; the application itself needs only SELECT, INSERT, UPDATE \
         and DELETE on the tables (docs/deployment.md)",
        state(found, tables),
        db.message()
    ))
}

/// Brings the tables of `tables` up to the newest version (`found` is what the caller read
/// before), in one transaction under an advisory lock of the prefix: instances starting
/// together wait for each other, and the second finds the work done.
///
/// # Errors
/// As [`prepare`] with [`MigrateMode::Auto`].
async fn migrate(conn: &mut PgConnection, tables: &Tables, found: usize) -> Result<(), StoreError> {
    let refused = |error| refused_migration(error, found, tables);
    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(refused)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(
            format!("tower-jwt-session migrate {}", tables.prefix).as_bytes(),
        ))
        .execute(&mut *tx)
        .await
        .map_err(refused)?;
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, value text NOT NULL)",
        tables.meta
    ))
    .execute(&mut *tx)
    .await
    .map_err(refused)?;
    // Under the lock: another instance may have migrated meanwhile.
    let version = read_version(&mut tx, tables).await?;
    refuse_newer(version, tables)?;
    for sql in &MIGRATIONS[version..] {
        // One statement at a time (each ends with `;` at the end of a line).
        for statement in sql.replace("{p}", &tables.prefix).split(";\n") {
            if statement
                .lines()
                .all(|l| l.trim().is_empty() || l.trim().starts_with("--"))
            {
                continue;
            }
            sqlx::query(statement)
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(refused)?;
        }
    }
    sqlx::query(&format!(
        "INSERT INTO {} (name, value) VALUES ('schema_version', $1) \
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        tables.meta
    ))
    .bind(LATEST.to_string())
    .execute(&mut *tx)
    .await
    .map_err(refused)?;
    tx.commit().await.map_err(refused)
}

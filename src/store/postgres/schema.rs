//! The store's tables, created by embedded migrations: idempotent, and safe when several
//! instances start at once (one transaction under an advisory lock per prefix).

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row as _};

use super::store::db_error;
use crate::store::StoreError;

/// The migrations, oldest first; version `n` is `MIGRATIONS[n - 1]`. Append, never edit.
const MIGRATIONS: &[&str] = &[include_str!("sql/v1.sql"), include_str!("sql/v2.sql")];

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
        }
    }
}

/// Brings the tables of `tables` up to the newest version, in one transaction under an
/// advisory lock of the prefix: instances starting together wait for each other, and the
/// second finds the work done.
///
/// # Errors
/// [`StoreError::Misconfigured`] when the tables were made by a newer release.
pub(super) async fn migrate(pool: &PgPool, tables: &Tables) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(
            format!("tower-jwt-session migrate {}", tables.prefix).as_bytes(),
        ))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, value text NOT NULL)",
        tables.meta
    ))
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    let version: Option<String> = sqlx::query(&format!(
        "SELECT value FROM {} WHERE name = 'schema_version'",
        tables.meta
    ))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?
    .map(|row| row.try_get(0))
    .transpose()
    .map_err(db_error)?;
    let version: usize = match version {
        None => 0,
        Some(v) => v.parse().map_err(|_| {
            StoreError::Corrupt(format!("{} holds schema_version {v:?}", tables.meta))
        })?,
    };
    if version > MIGRATIONS.len() {
        return Err(StoreError::Misconfigured(format!(
            "the tables under DATABASE_TABLE_PREFIX `{}` are at schema version {version}, made \
             by a newer release of tower-jwt-session than this one (version {})",
            tables.prefix,
            MIGRATIONS.len()
        )));
    }
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
                .map_err(db_error)?;
        }
    }
    sqlx::query(&format!(
        "INSERT INTO {} (name, value) VALUES ('schema_version', $1) \
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        tables.meta
    ))
    .bind(MIGRATIONS.len().to_string())
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

//! [`PostgresConnection`]: the store's pool, for the rate limiter's and the attempt tracker's
//! PostgreSQL backends.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use sqlx::PgPool;

use super::schema::Tables;
use super::store::db_error;
use crate::store::StoreError;
use crate::store::sealing::NameKey;

/// What a [`PostgresStore`](super::PostgresStore) runs on, for the PostgreSQL backends of the
/// rate limiter and of the attempt tracker (`rate_limit::PostgresRateLimitBackend::new`,
/// `rate_limit::PostgresAttemptBackend::new`): the same pool, timeout and table prefix as the
/// sessions, and the same keyed hashing of names when records are sealed. From
/// [`PostgresStore::connection`](super::PostgresStore::connection); cheap to clone.
#[derive(Clone)]
pub struct PostgresConnection {
    pool: PgPool,
    rate_limits: String,
    attempts: String,
    dpop_replay: String,
    prefix: String,
    timeout: Duration,
    names: Option<NameKey>,
}

impl fmt::Debug for PostgresConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConnection")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("hashes_names", &self.names.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresConnection {
    pub(super) fn new(
        pool: PgPool,
        tables: &Tables,
        timeout: Duration,
        names: Option<NameKey>,
    ) -> Self {
        Self {
            pool,
            rate_limits: tables.rate_limits.clone(),
            attempts: tables.attempts.clone(),
            dpop_replay: tables.dpop_replay.clone(),
            prefix: tables.prefix.clone(),
            timeout,
            names,
        }
    }

    /// The table prefix (`DATABASE_TABLE_PREFIX`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The pool.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The rate limiter's table, `<prefix>_rate_limits`.
    pub(crate) fn rate_limits_table(&self) -> &str {
        &self.rate_limits
    }

    /// The attempt tracker's table, `<prefix>_attempts`.
    pub(crate) fn attempts_table(&self) -> &str {
        &self.attempts
    }

    /// The DPoP replay cache's table, `<prefix>_dpop_replay`.
    pub(crate) fn dpop_replay_table(&self) -> &str {
        &self.dpop_replay
    }

    /// `key` as it is stored: as given, or a keyed hash of it (32 hex digits, as in Redis key
    /// names) when records are sealed, so the tables hold no user id or address in clear.
    pub(crate) fn stored_key(&self, key: &str) -> String {
        match &self.names {
            Some(names) => names.hash(key)[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            None => key.to_owned(),
        }
    }

    /// Runs `query` within the store's timeout; a database error or a timeout is a
    /// [`StoreError`].
    pub(crate) async fn timed<T>(
        &self,
        query: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, query)
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(db_error)
    }
}

//! The PostgreSQL backends of the rate limiter and the attempt tracker (feature `postgres`): on
//! the session store's pool ([`PostgresConnection`]), so an application with PostgreSQL and no
//! Redis still shares its limits across instances.
//!
//! Each decision is one statement (`INSERT … ON CONFLICT … DO UPDATE … RETURNING`, in `sql/`):
//! the row of the key is inserted, or updated under its row lock, so concurrent decisions on one
//! key, on any instances, happen one after the other without a transaction of their own. The
//! rules are those of the Redis scripts and the memory backends, on the caller's clock.
//!
//! The tables (`<prefix>_rate_limits`, `<prefix>_attempts`) are UNLOGGED: a transaction that
//! writes only them commits without waiting for a WAL flush, and they start over empty after a
//! crash of PostgreSQL (see the store's migration `sql/v2.sql`). Rows past their end are deleted
//! in bounded batches: every [`SWEEP_EVERY`]th write of a backend deletes up to [`SWEEP_BATCH`]
//! of them (any key's, skipping locked rows), more than those writes can have added, so the
//! tables hold the keys of the running windows and lock-outs, not every key ever seen.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    AttemptBackend, AttemptPolicy, AttemptState, BackendError, RateDecision, RateLimitBackend,
};
use crate::store::postgres::PostgresConnection;

/// One write in this many (per backend) also deletes rows past their end.
pub(crate) const SWEEP_EVERY: u64 = 64;
/// How many rows past their end one sweep deletes at most: four times what the
/// [`SWEEP_EVERY`] writes before it can have added, so the backlog cannot grow.
pub(crate) const SWEEP_BATCH: i64 = 256;
/// How long after its end a row is kept before a sweep may delete it: instances' clocks
/// differ a little, and a row one instance sees as ended may still count on another (or on
/// this one after its clock steps back). A deleted row would start a fresh window there.
pub(crate) const SWEEP_GRACE_MS: i64 = 60_000;

/// The largest time the tables hold: `i64::MAX - 1`, so that `now + 1` fits in a `bigint`.
const MAX_MS: u64 = i64::MAX as u64 - 1;

/// `ms` as a `bigint` of the tables, capped at [`MAX_MS`].
fn db_ms(ms: u64) -> i64 {
    ms.min(MAX_MS) as i64
}

/// A table's number back as a `u64` (the tables never hold a negative one).
fn from_db(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

use crate::clock::duration_ms as millis;

/// The statements of one table, with its name filled in.
fn statement(sql: &str, table: &str) -> String {
    sql.replace("{table}", table)
}

/// Deletes rows past their end, a bounded batch every [`SWEEP_EVERY`] writes.
struct Sweeper {
    writes: AtomicU64,
    /// `$1` now, `$2` the batch size.
    sql: String,
}

impl Sweeper {
    /// The sweeper of `table`, whose rows end at `end_column`.
    fn new(table: &str, end_column: &str) -> Self {
        Self {
            writes: AtomicU64::new(0),
            sql: format!(
                "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} \
                 WHERE {end_column} <= $1 ORDER BY {end_column} LIMIT $2 FOR UPDATE SKIP LOCKED))"
            ),
        }
    }

    /// Counts a write; every [`SWEEP_EVERY`]th deletes up to [`SWEEP_BATCH`] rows ended
    /// [`SWEEP_GRACE_MS`] before `now`. A failure is logged: it costs no decision.
    async fn after_write(&self, pg: &PostgresConnection, now: i64) {
        if !self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            return;
        }
        let swept = pg
            .timed(
                sqlx::query(&self.sql)
                    .bind(now.saturating_sub(SWEEP_GRACE_MS))
                    .bind(SWEEP_BATCH)
                    .execute(pg.pool()),
            )
            .await;
        if let Err(error) = swept {
            tracing::warn!(%error, "deleting ended rate-limit rows failed");
        }
    }
}

/// Rate-limit counters in PostgreSQL, so the limit holds across instances (the manager puts
/// the login and token routes' limits here by itself when its sessions are in PostgreSQL; this
/// is for a limit of your own): one statement a
/// request on the table `<prefix>_rate_limits`, one row per client (a keyed hash of the client
/// when the store seals its records). Rows of ended windows are deleted in bounded batches.
///
/// What it costs: one round trip and one row update a request to a limited route, committed
/// without a WAL flush (the table is unlogged), on a connection of the store's pool.
///
/// ```no_run
/// use std::sync::Arc;
/// use tower_jwt_session::config::PostgresSettings;
/// use tower_jwt_session::layer::ClientRateLimitLayer;
/// use tower_jwt_session::rate_limit::{AttemptConfig, AttemptTracker, PostgresAttemptBackend, PostgresRateLimitBackend, RateLimitConfig};
/// use tower_jwt_session::store::PostgresStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect(&PostgresSettings::new("postgres://app@db/app")).await?;
/// let limit = ClientRateLimitLayer::with_backend(
///     RateLimitConfig::new(),
///     Arc::new(PostgresRateLimitBackend::new(store.connection())),
/// );
/// let attempts = AttemptTracker::with_backend(
///     AttemptConfig::new(),
///     Arc::new(PostgresAttemptBackend::new(store.connection())),
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresRateLimitBackend {
    pg: PostgresConnection,
    hit: Arc<str>,
    sweeper: Arc<Sweeper>,
}

impl fmt::Debug for PostgresRateLimitBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRateLimitBackend")
            .field("table", &self.pg.rate_limits_table())
            .finish_non_exhaustive()
    }
}

impl PostgresRateLimitBackend {
    /// Counts on `connection` (from
    /// [`PostgresStore::connection`](crate::store::PostgresStore::connection)).
    pub fn new(connection: PostgresConnection) -> Self {
        let table = connection.rate_limits_table();
        Self {
            hit: statement(include_str!("sql/rate_hit.sql"), table).into(),
            sweeper: Arc::new(Sweeper::new(table, "window_end")),
            pg: connection,
        }
    }
}

#[async_trait]
impl RateLimitBackend for PostgresRateLimitBackend {
    async fn hit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        max: u32,
    ) -> Result<RateDecision, BackendError> {
        let window_ms = millis(window).max(1);
        let now = db_ms(now_ms);
        let (hits, window_end): (i64, i64) = self
            .pg
            .timed(
                sqlx::query_as(&self.hit)
                    .bind(self.pg.stored_key(key))
                    .bind(now)
                    .bind(db_ms(now_ms.saturating_add(window_ms)))
                    .fetch_one(self.pg.pool()),
            )
            .await
            .map_err(BackendError::new)?;
        self.sweeper.after_write(&self.pg, now).await;
        let reset_after = from_db(window_end).saturating_sub(now_ms).min(window_ms);
        Ok(RateDecision::from_count(
            from_db(hits),
            max,
            Duration::from_millis(reset_after),
        ))
    }
}

/// Failed-attempt records in PostgreSQL, so reservations and lock-outs hold across instances:
/// one row per key (`login:uc:<user>|<client>` and the like, or a keyed hash of it when the
/// store seals its records) in `<prefix>_attempts`, needed until its window or lock-out ends.
/// Each operation is one statement on one row, so a reservation is atomic across instances.
/// Rows past their end are deleted in bounded batches.
#[derive(Clone)]
pub struct PostgresAttemptBackend {
    pg: PostgresConnection,
    sql: Arc<AttemptSql>,
    sweeper: Arc<Sweeper>,
}

/// The attempt backend's statements.
struct AttemptSql {
    reserve: String,
    fail: String,
    release: String,
    state: String,
    clear: String,
}

impl fmt::Debug for PostgresAttemptBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresAttemptBackend")
            .field("table", &self.pg.attempts_table())
            .finish_non_exhaustive()
    }
}

impl PostgresAttemptBackend {
    /// Records attempts on `connection` (from
    /// [`PostgresStore::connection`](crate::store::PostgresStore::connection)).
    pub fn new(connection: PostgresConnection) -> Self {
        let t = connection.attempts_table();
        Self {
            sql: Arc::new(AttemptSql {
                reserve: statement(include_str!("sql/attempt_reserve.sql"), t),
                fail: statement(include_str!("sql/attempt_fail.sql"), t),
                release: statement(include_str!("sql/attempt_release.sql"), t),
                state: format!("SELECT window_end, attempts, locked_until FROM {t} WHERE key = $1"),
                clear: format!("DELETE FROM {t} WHERE key = $1"),
            }),
            sweeper: Arc::new(Sweeper::new(t, "keep_until")),
            pg: connection,
        }
    }

    /// Runs `sql` (reserve or fail) on `key` with the policy's arguments: now, the maximum, the
    /// end of a window and of a lock-out starting now.
    async fn run_policy(
        &self,
        sql: &str,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<i64, BackendError> {
        let now = db_ms(now_ms);
        let lock_end = now_ms
            .saturating_add(millis(policy.lockout))
            .max(now_ms.saturating_add(1));
        let answer = self
            .pg
            .timed(
                sqlx::query_scalar(sql)
                    .bind(self.pg.stored_key(key))
                    .bind(now)
                    .bind(i64::from(policy.max_failures))
                    .bind(db_ms(now_ms.saturating_add(millis(policy.window))))
                    .bind(db_ms(lock_end))
                    .fetch_one(self.pg.pool()),
            )
            .await
            .map_err(BackendError::new)?;
        self.sweeper.after_write(&self.pg, now).await;
        Ok(answer)
    }
}

#[async_trait]
impl AttemptBackend for PostgresAttemptBackend {
    async fn reserve(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<Result<(), u64>, BackendError> {
        if policy.max_failures == 0 {
            return Ok(Ok(()));
        }
        Ok(
            match from_db(
                self.run_policy(&self.sql.reserve, key, now_ms, policy)
                    .await?,
            ) {
                0 => Ok(()),
                until => Err(until),
            },
        )
    }

    async fn release(&self, key: &str, now_ms: u64) -> Result<(), BackendError> {
        self.pg
            .timed(
                sqlx::query(&self.sql.release)
                    .bind(self.pg.stored_key(key))
                    .bind(db_ms(now_ms))
                    .execute(self.pg.pool()),
            )
            .await
            .map_err(BackendError::new)?;
        Ok(())
    }

    async fn record_failure(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<u32, BackendError> {
        let count = self.run_policy(&self.sql.fail, key, now_ms, policy).await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn state(&self, key: &str, now_ms: u64) -> Result<AttemptState, BackendError> {
        let row: Option<(i64, i64, i64)> = self
            .pg
            .timed(
                sqlx::query_as(&self.sql.state)
                    .bind(self.pg.stored_key(key))
                    .fetch_optional(self.pg.pool()),
            )
            .await
            .map_err(BackendError::new)?;
        let Some((window_end, count, locked_until)) = row else {
            return Ok(AttemptState::default());
        };
        let locked_until_ms = Some(from_db(locked_until)).filter(|l| *l > now_ms);
        let live = locked_until_ms.is_some() || now_ms < from_db(window_end);
        Ok(AttemptState {
            count: if live {
                u32::try_from(count).unwrap_or(u32::MAX)
            } else {
                0
            },
            locked_until_ms,
        })
    }

    async fn clear(&self, key: &str) -> Result<(), BackendError> {
        self.pg
            .timed(
                sqlx::query(&self.sql.clear)
                    .bind(self.pg.stored_key(key))
                    .execute(self.pg.pool()),
            )
            .await
            .map_err(BackendError::new)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

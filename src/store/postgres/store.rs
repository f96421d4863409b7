//! [`PostgresStore`]: the [`SessionStore`] on PostgreSQL, each rule one transaction or one
//! statement.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgPool, Row as _};

use super::connection::PostgresConnection;
use super::record::{corrupt, decode_row, sid_from, to_i64, to_u64, user_keys};
use super::schema::{Tables, lock_key};
use crate::session::SessionId;
use crate::store::sealing::Cipher;
use crate::store::{
    ActivityBounds, CreateOutcome, Lifetimes, RevocationSink, RotateOutcome, RotateRequest,
    SecurityEvent, SessionLimit, SessionRecord, SessionStore, StoreError, StoreWarning,
};

mod cancel;
mod claim;
mod startup;
mod statements;
mod warnings;
mod writes;

use cancel::Held;
use statements::Sql;
use warnings::SETTINGS;
pub(super) use warnings::{ServerSettings, setting_warnings};

/// How many due rows (of any user) one login deletes at most, to bound its work.
pub(super) const PURGE_BATCH: i64 = 64;

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

impl PostgresStore {
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
}

/// `(session, live at now)` from a row of a deleting statement.
fn gone_row(row: &sqlx::postgres::PgRow, now: u64) -> Result<(SessionId, bool), StoreError> {
    let sid = sid_from(row.try_get("session_id").map_err(db_error)?)?;
    let expires_at = to_u64(row.try_get("expires_at").map_err(db_error)?)?;
    let purge_at = to_u64(row.try_get("purge_at").map_err(db_error)?)?;
    Ok((sid, now < expires_at && now <= purge_at))
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
            let mut conn = Held::acquire(&self.pool).await?;
            // Bounded work for the table as a whole: a batch of anyone's due rows, skipping
            // rows another transaction holds.
            let purged = sqlx::query(&self.sql.purge_due)
                .bind(to_i64(now))
                .bind(PURGE_BATCH)
                .execute(&mut *conn)
                .await
                .map_err(db_error);
            let created = match purged {
                Ok(_) => self.create_tx(&mut conn, &record, limit, now).await,
                Err(error) => Err(error),
            };
            conn.done();
            created
        })
        .await
    }

    async fn rotate(&self, req: RotateRequest) -> Result<RotateOutcome, StoreError> {
        self.timed(async {
            let mut conn = Held::acquire(&self.pool).await?;
            // Each lost race means another instance's write went first, so this ends; a row
            // locked by someone else is waited for here, a millisecond at a time, where the
            // timeout can end the wait (never inside PostgreSQL, where it could not).
            let rotated = loop {
                match self.try_rotate(&mut conn, &req).await {
                    Ok(Ok(outcome)) => break Ok(outcome),
                    Ok(Err(Written::Busy)) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Ok(Err(_)) => {}
                    Err(error) => break Err(error),
                }
            };
            conn.done();
            rotated
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

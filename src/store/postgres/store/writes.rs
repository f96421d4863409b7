//! The writes of [`PostgresStore`](super::PostgresStore): purging, the per-user lock, creating
//! under the limit, rotating by compare-and-set, and revoking.

use std::future::Future;

use sqlx::{PgConnection, Postgres, Row as _, Transaction};

use super::{PostgresStore, Written, db_error, gone_row};
use crate::clock::Clock;
use crate::session::SessionId;
use crate::store::postgres::record::{
    decode_row, encode_data, sid_from, to_i64, to_u64, user_keys,
};
use crate::store::postgres::schema::lock_key;
use crate::store::{
    CreateOutcome, RotateOutcome, RotateRequest, RotationDecision, SessionLimit, SessionRecord,
    StoreError, apply_rotation, decide_rotation, plan_admission, rotation_outcome,
};

impl PostgresStore {
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

    pub(super) async fn purge_batch(&self, now: u64, max: i64) -> Result<u64, StoreError> {
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
    pub(super) async fn timed<T>(
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
    pub(super) async fn begin_locked<'c>(
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
    pub(super) async fn delete_notify(
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

    pub(super) async fn create_tx(
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
        let (live, due) = live_and_due(&rows, now)?;
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
    pub(super) async fn try_rotate(
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
                self.delete_ended(conn, sid, &version, deadline).await?
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

    /// Deletes the row of a session a rotation ended, if it is still at `version`, and tells
    /// every instance.
    async fn delete_ended(
        &self,
        conn: &mut PgConnection,
        sid: SessionId,
        version: &str,
        deadline: Option<i64>,
    ) -> Result<Written, StoreError> {
        let deleted = sqlx::query(&self.sql.delete_notify_if_unchanged)
            .bind(sid.as_bytes().as_slice())
            .bind(&self.tables.channel)
            .bind(version)
            .bind(deadline)
            .fetch_optional(&mut *conn)
            .await
            .map(|row| u64::from(row.is_some()));
        Written::from(deleted)
    }

    /// Writes what a rotation changes, if the row is still at `version`: the times, the data
    /// sealed anew, and the user key under the current key (a row from before a key rotation,
    /// or from before sealing, is found under the current key from then on). Returns whether
    /// it was written.
    pub(super) async fn write(
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

    pub(super) async fn revoke_all_tx(
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

/// A user's live sessions, each with its last activity time.
type LiveSessions = Vec<(SessionId, u64)>;

/// A user's rows, as a login reads them: `(live sessions with their last activity, rows past
/// their purge time)` at `now`.
fn live_and_due(
    rows: &[sqlx::postgres::PgRow],
    now: u64,
) -> Result<(LiveSessions, Vec<SessionId>), StoreError> {
    let mut live = Vec::new();
    let mut due = Vec::new();
    for row in rows {
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
    Ok((live, due))
}

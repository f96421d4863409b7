//! [`PostgresReplayCache`]: the DPoP replay cache in PostgreSQL, on the session store's pool.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::PostgresConnection;
use crate::store::replay::proof_key;
use crate::token::dpop::{DpopReplayCache, ReplayCacheError};

/// One first use in this many (per cache) also deletes expired rows.
const SWEEP_EVERY: u64 = 64;
/// How many expired rows one sweep deletes at most: four times what the [`SWEEP_EVERY`] uses
/// before it can have added, so the backlog cannot grow.
const SWEEP_BATCH: i64 = 256;
/// How long after its expiry a row is kept before a sweep may delete it: an instance whose
/// clock is behind still refuses the proof until its own clock reaches the expiry.
const SWEEP_GRACE_MS: i64 = 60_000;

/// The DPoP proofs seen within their window, in PostgreSQL, so a proof used on one instance is
/// refused on every other (RFC 9449 §11.1). Built on the session store's pool by
/// [`Backing::dpop_replay_cache`](crate::store::Backing::dpop_replay_cache) when the sessions
/// are in PostgreSQL.
///
/// - **One statement a proof** on the table `<prefix>_dpop_replay` (schema version 4):
///   `INSERT … ON CONFLICT (key) DO UPDATE SET expires_at = … WHERE expires_at <= now
///   RETURNING …`. A row inserted, or an expired row taken over, is a first use; an unexpired
///   row answers "seen". The row lock makes it atomic: of any number of concurrent uses of one
///   proof, on any instances, one is first.
/// - **Bounded rows**: the key is 16 bytes of SHA-256 over the key thumbprint and the `jti`,
///   whatever the `jti`'s length. One use in 64 (per cache) also deletes up to 256
///   rows expired a minute ago or more (skipping locked ones), so the table holds the proofs
///   of the running window.
/// - **Unlogged**, as the rate limiter's tables: a use commits without waiting for a WAL
///   flush. After a crash of PostgreSQL, or on a standby that takes over, the table is empty,
///   so a proof of the last window could be replayed once more.
/// - **Failures** (the database unreachable, past the store's timeout) are
///   [`ReplayCacheError::Backend`]: the verifier refuses the proof.
#[derive(Clone)]
pub struct PostgresReplayCache {
    pg: PostgresConnection,
    sql: Arc<ReplaySql>,
    uses: Arc<AtomicU64>,
}

/// The cache's statements, with its table's name filled in.
struct ReplaySql {
    /// `$1` the key, `$2` now, `$3` the expiry: a row when this is a first use.
    first_use: String,
    /// `$1` the time before which rows may go, `$2` the batch size.
    sweep: String,
}

impl fmt::Debug for PostgresReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresReplayCache")
            .field("table", &self.pg.dpop_replay_table())
            .finish_non_exhaustive()
    }
}

impl PostgresReplayCache {
    /// Records proofs on `connection` (from
    /// [`PostgresStore::connection`](crate::store::PostgresStore::connection)), in the table
    /// `<prefix>_dpop_replay` of its prefix.
    pub fn new(connection: PostgresConnection) -> Self {
        let t = connection.dpop_replay_table();
        let sql = ReplaySql {
            first_use: format!(
                "INSERT INTO {t} AS r (key, expires_at) VALUES ($1, $3) \
                 ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at \
                 WHERE r.expires_at <= $2 RETURNING 1"
            ),
            sweep: format!(
                "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} \
                 WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))"
            ),
        };
        Self {
            pg: connection,
            sql: Arc::new(sql),
            uses: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Counts a use; every [`SWEEP_EVERY`]th deletes up to [`SWEEP_BATCH`] rows expired
    /// [`SWEEP_GRACE_MS`] before `now`. A failure is logged: it costs no answer.
    async fn sweep(&self, now: i64) {
        if !self
            .uses
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            return;
        }
        let swept = self
            .pg
            .timed(
                sqlx::query(&self.sql.sweep)
                    .bind(now.saturating_sub(SWEEP_GRACE_MS))
                    .bind(SWEEP_BATCH)
                    .execute(self.pg.pool()),
            )
            .await;
        if let Err(error) = swept {
            tracing::warn!(%error, "deleting expired DPoP replay rows failed");
        }
    }
}

/// `ms` as a `bigint` of the table.
fn db_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[async_trait]
impl DpopReplayCache for PostgresReplayCache {
    async fn first_use(
        &self,
        jkt: &str,
        jti: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, ReplayCacheError> {
        let now = db_ms(now_ms);
        // At least a millisecond past now, so the row is not expired as it is written.
        let expires = db_ms(expires_at_ms.max(now_ms.saturating_add(1)));
        let first: Option<i32> = self
            .pg
            .timed(
                sqlx::query_scalar(&self.sql.first_use)
                    .bind(&proof_key(jkt, jti)[..])
                    .bind(now)
                    .bind(expires)
                    .fetch_optional(self.pg.pool()),
            )
            .await
            .map_err(|e| ReplayCacheError::Backend(Box::new(e)))?;
        self.sweep(now).await;
        Ok(first.is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::PostgresSettings;
    use crate::store::postgres::PostgresStore;
    use crate::store::postgres::pg_server::TestDb;
    use crate::store::replay::PROOF_KEY_LEN;
    use crate::store::replay::tests::{LONG_JTI_LEN, replay_cache_rules};
    use crate::store::{Backing, SessionStore as _};

    async fn connect(db: &TestDb) -> PostgresStore {
        PostgresStore::connect(&PostgresSettings::new(&db.url).with_timeout(Duration::from_secs(5)))
            .await
            .expect("PostgreSQL is needed for this test")
    }

    fn cache(store: &PostgresStore) -> Arc<dyn DpopReplayCache> {
        let backing = store.backing();
        assert!(matches!(backing, Backing::Postgres(_)));
        backing.dpop_replay_cache(16)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_replay_cache_keeps_the_rules() {
        let db = TestDb::create().await;
        let (a, b) = (connect(&db).await, connect(&db).await);
        replay_cache_rules(cache(&a), cache(&b)).await;

        // Every row's key is 16 bytes, the 10 KB jti's too.
        let mut conn = db.connect().await;
        let sizes: Vec<i32> =
            sqlx::query_scalar("SELECT DISTINCT octet_length(key) FROM tjs_dpop_replay")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(sizes, [PROOF_KEY_LEN as i32]);
        let widest: i32 =
            sqlx::query_scalar("SELECT max(pg_column_size(r.*)) FROM tjs_dpop_replay r")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(
            widest < 100,
            "{widest} bytes, for a {LONG_JTI_LEN}-byte jti"
        );
    }

    /// On the caller's clock: an unexpired row answers "seen", an expired one is taken over
    /// once; a proof already at its expiry is still recorded.
    #[tokio::test]
    async fn postgres_replay_rows_expire_on_the_callers_clock() {
        let db = TestDb::create().await;
        let cache = PostgresReplayCache::new(connect(&db).await.connection());
        let now = 1_700_000_000_000;
        assert!(cache.first_use("k", "a", now + 1_000, now).await.unwrap());
        assert!(
            !cache
                .first_use("k", "a", now + 1_000, now + 999)
                .await
                .unwrap()
        );
        assert!(
            cache
                .first_use("k", "a", now + 9_000, now + 1_000)
                .await
                .unwrap()
        );
        assert!(
            !cache
                .first_use("k", "a", now + 9_000, now + 1_001)
                .await
                .unwrap()
        );
        assert!(cache.first_use("k", "late", now, now + 5).await.unwrap());
        assert!(!cache.first_use("k", "late", now, now + 5).await.unwrap());
    }

    /// Expired rows go in bounded sweeps as uses come, a minute after their expiry.
    #[tokio::test]
    async fn expired_replay_rows_are_swept() {
        let db = TestDb::create().await;
        let cache = PostgresReplayCache::new(connect(&db).await.connection());
        let t0 = 1_700_000_000_000;
        for i in 0..SWEEP_EVERY {
            assert!(
                cache
                    .first_use("k", &format!("old-{i}"), t0 + 1_000, t0)
                    .await
                    .unwrap()
            );
        }
        let mut conn = db.connect().await;
        let count = async |conn: &mut sqlx::PgConnection| -> i64 {
            sqlx::query_scalar("SELECT count(*) FROM tjs_dpop_replay")
                .fetch_one(conn)
                .await
                .unwrap()
        };
        assert_eq!(count(&mut conn).await, SWEEP_EVERY as i64);
        // The next use sweeps: within the grace, nothing goes; past it, the old rows go.
        let late = t0 + 1_000 + SWEEP_GRACE_MS as u64;
        assert!(
            cache
                .first_use("k", "new-0", late + 120_000, late - 1)
                .await
                .unwrap()
        );
        assert_eq!(count(&mut conn).await, SWEEP_EVERY as i64 + 1);
        for i in 1..SWEEP_EVERY {
            assert!(
                cache
                    .first_use("k", &format!("new-{i}"), late + 120_000, late)
                    .await
                    .unwrap()
            );
        }
        assert!(
            cache
                .first_use("k", "sweeps", late + 120_000, late)
                .await
                .unwrap()
        );
        assert_eq!(count(&mut conn).await, SWEEP_EVERY as i64 + 1);
    }
}

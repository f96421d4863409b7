//! Claiming a table prefix for one application:
//! [`PostgresStore::claim`](super::PostgresStore::claim).

use std::future::Future;

use super::{PostgresStore, db_error};
use crate::store::StoreError;
use crate::store::postgres::record::to_i64;
use crate::store::postgres::schema::lock_key;

impl PostgresStore {
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
        let claim = crate::store::OwnerClaim::of(config);
        self.claim_with(&claim.fingerprints, claim.now_ms, claim.retention_ms)
            .await
    }

    // Size: one transaction (lock, forget, count, record); split, it would hide their order.
    /// [`claim`](Self::claim) for these fingerprints (current key first), at `now`, forgetting
    /// those unused for `retention` (both in ms).
    pub(in crate::store::postgres) async fn claim_with(
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
}

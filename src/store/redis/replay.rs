//! [`RedisReplayCache`]: the DPoP replay cache in Redis, on the session store's connection.

use std::fmt;

use async_trait::async_trait;

use super::RedisConnection;
use super::keys::hex;
use crate::store::replay::proof_key;
use crate::token::dpop::{DpopReplayCache, ReplayCacheError};

/// The DPoP proofs seen within their window, in Redis or Redis Cluster, so a proof used on one
/// instance is refused on every other (RFC 9449 §11.1). Built on the session store's
/// connection by [`Backing::dpop_replay_cache`](crate::store::Backing::dpop_replay_cache)
/// when the sessions are in Redis.
///
/// - **One command a proof**: `SET P:dpop:<hash> 1 NX PX <ms until the proof expires>` (at
///   least 1 ms). `OK` is a first use; nothing set is a replay. `NX` makes it atomic: of any
///   number of concurrent uses of one proof, on any instances, one is first. One key, so it
///   runs on any node of a cluster.
/// - **Bounded keys**: `<hash>` is 32 hex digits of SHA-256 over the key thumbprint and the
///   `jti`, whatever the `jti`'s length; keys expire by themselves with the proof.
/// - **Failures** (Redis unreachable, past the store's timeout) are
///   [`ReplayCacheError::Backend`]: the verifier refuses the proof.
/// - **Replicas**: the key is not confirmed with `WAIT` (`REDIS_WAIT_REPLICAS`): a failover may
///   forget the proofs of its last moments, which could then be replayed once within their
///   window.
#[derive(Clone)]
pub struct RedisReplayCache {
    redis: RedisConnection,
}

impl fmt::Debug for RedisReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayCache")
            .field("prefix", &self.redis.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisReplayCache {
    /// Records proofs on `connection` (from
    /// [`RedisStore::connection`](crate::store::RedisStore::connection)), under its key prefix.
    pub fn new(connection: RedisConnection) -> Self {
        Self { redis: connection }
    }

    /// The key of the proof `(jkt, jti)`: `P:dpop:<hash>`.
    fn key(&self, jkt: &str, jti: &str) -> String {
        self.redis
            .names()
            .plain(&format!("dpop:{}", hex(&proof_key(jkt, jti))))
    }
}

#[async_trait]
impl DpopReplayCache for RedisReplayCache {
    async fn first_use(
        &self,
        jkt: &str,
        jti: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, ReplayCacheError> {
        let ttl = expires_at_ms.saturating_sub(now_ms).max(1);
        let set: Option<String> = self
            .redis
            .command(
                redis::cmd("SET")
                    .arg(self.key(jkt, jti))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl),
            )
            .await
            .map_err(|e| ReplayCacheError::Backend(Box::new(e)))?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::RedisSettings;
    use crate::store::redis::{RedisStore, redis_server};
    use crate::store::replay::tests::replay_cache_rules;
    use crate::store::{Backing, SessionStore as _};

    /// Two instances on `urls` under one fresh prefix, each with a connection of its own.
    async fn two_instances(urls: &[String]) -> (String, RedisStore, RedisStore) {
        let prefix = redis_server::unique_prefix("dpop");
        let settings = RedisSettings::new(urls.to_vec()).with_key_prefix(prefix.clone());
        let a = RedisStore::connect(&settings)
            .await
            .expect("Redis is needed for this test");
        let b = RedisStore::connect(&settings)
            .await
            .expect("Redis is needed for this test");
        (prefix, a, b)
    }

    fn cache(store: &RedisStore) -> Arc<dyn DpopReplayCache> {
        let backing = store.backing();
        assert!(matches!(backing, Backing::Redis(_)));
        backing.dpop_replay_cache(16)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_replay_cache_keeps_the_rules() {
        let (prefix, a, b) = two_instances(&redis_server::single().urls).await;
        replay_cache_rules(cache(&a), cache(&b)).await;

        // Every key is `P:dpop:` and 32 hex digits, the 10 KB jti's too (no part of it in
        // the name), and holds `1`.
        let keys: Vec<String> = a
            .connection()
            .command(redis::cmd("KEYS").arg(format!("{prefix}:dpop:*")))
            .await
            .unwrap();
        assert!(keys.len() > 10, "{keys:?}");
        for key in &keys {
            assert_eq!(key.len(), prefix.len() + ":dpop:".len() + 32, "{key}");
            assert!(!key.contains("xxxx"), "{key}");
            let value: String = a
                .connection()
                .command(redis::cmd("GET").arg(key))
                .await
                .unwrap();
            assert_eq!(value, "1");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_cluster_replay_cache_keeps_the_rules() {
        let (_, a, b) = two_instances(&redis_server::cluster().urls).await;
        replay_cache_rules(cache(&a), cache(&b)).await;
    }

    /// A key lives as long as its proof's window, at least a millisecond.
    #[tokio::test]
    async fn redis_replay_keys_expire_with_the_proof() {
        let (_, a, _) = two_instances(&redis_server::single().urls).await;
        let cache = RedisReplayCache::new(a.connection());
        let now = 1_700_000_000_000;
        assert!(
            cache
                .first_use("jkt", "ttl", now + 120_000, now)
                .await
                .unwrap()
        );
        let ttl: i64 = a
            .connection()
            .command(redis::cmd("PTTL").arg(cache.key("jkt", "ttl")))
            .await
            .unwrap();
        assert!((119_000..=120_000).contains(&ttl), "{ttl}");
        // A proof already at its expiry is still recorded, for a millisecond.
        assert!(cache.first_use("jkt", "late", now, now + 5).await.unwrap());
    }
}

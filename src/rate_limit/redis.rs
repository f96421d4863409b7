//! The Redis backends of the rate limiter and the attempt tracker (feature `redis`): on the
//! session store's [`RedisConnection`], so one connection serves sessions and limits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{
    AttemptBackend, AttemptPolicy, AttemptState, BackendError, RateDecision, RateLimitBackend,
};
use crate::store::redis::RedisConnection;

/// Rate-limit counters in Redis, so the limit holds across instances (the manager puts the
/// login and token routes' limits here by itself when its sessions are in Redis; this is for
/// a limit of your own): one `INCR` script a
/// request, keys `P:rl:{client}` expiring with their window (a keyed hash in the braces when
/// the store seals its records).
///
/// ```no_run
/// use std::sync::Arc;
/// use tower_jwt_session::layer::ClientRateLimitLayer;
/// use tower_jwt_session::rate_limit::{AttemptConfig, AttemptTracker, RateLimitConfig, RedisAttemptBackend, RedisRateLimitBackend};
/// use tower_jwt_session::config::RedisSettings;
/// use tower_jwt_session::store::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect(&RedisSettings::new(["redis://127.0.0.1:6379"])).await?;
/// let limit = ClientRateLimitLayer::with_backend(
///     RateLimitConfig::new(),
///     Arc::new(RedisRateLimitBackend::new(store.connection())),
/// );
/// let attempts = AttemptTracker::with_backend(
///     AttemptConfig::new(),
///     Arc::new(RedisAttemptBackend::new(store.connection())),
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisRateLimitBackend {
    redis: RedisConnection,
    script: Arc<Script>,
}

impl fmt::Debug for RedisRateLimitBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimitBackend")
            .field("prefix", &self.redis.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisRateLimitBackend {
    /// Counts on `connection` (from [`RedisStore::connection`](crate::store::RedisStore::connection)).
    pub fn new(connection: RedisConnection) -> Self {
        Self {
            redis: connection,
            script: Arc::new(Script::new(include_str!("lua/rate_hit.lua"))),
        }
    }
}

#[async_trait]
impl RateLimitBackend for RedisRateLimitBackend {
    async fn hit(
        &self,
        key: &str,
        _now_ms: u64,
        window: Duration,
        max: u32,
    ) -> Result<RateDecision, BackendError> {
        let mut invocation = self.script.key(self.redis.names().hashed("rl:", key));
        invocation.arg(crate::clock::duration_ms(window).max(1));
        let (count, ttl): (u64, i64) = self
            .redis
            .run(&invocation)
            .await
            .map_err(BackendError::new)?;
        Ok(RateDecision::from_count(
            count,
            max,
            Duration::from_millis(ttl.max(0) as u64),
        ))
    }
}

/// Failed-attempt records in Redis, so reservations and lock-outs hold across instances: one
/// hash per key, `P:at:{login:uc:<user>|<ip>}` and the like (a keyed hash in the braces when
/// the store seals its records), expiring with its window or lock-out. Each operation is one
/// Lua script on one key, so a reservation is atomic, also on a cluster.
#[derive(Clone)]
pub struct RedisAttemptBackend {
    redis: RedisConnection,
    reserve: Arc<Script>,
    release: Arc<Script>,
    fail: Arc<Script>,
}

impl fmt::Debug for RedisAttemptBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAttemptBackend")
            .field("prefix", &self.redis.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisAttemptBackend {
    /// Records attempts on `connection` (from
    /// [`RedisStore::connection`](crate::store::RedisStore::connection)).
    pub fn new(connection: RedisConnection) -> Self {
        Self {
            redis: connection,
            reserve: Arc::new(Script::new(include_str!("lua/attempt_reserve.lua"))),
            release: Arc::new(Script::new(include_str!("lua/attempt_release.lua"))),
            fail: Arc::new(Script::new(include_str!("lua/attempt_fail.lua"))),
        }
    }

    fn key(&self, key: &str) -> String {
        self.redis.names().hashed("at:", key)
    }

    /// Runs `script` on `key` with the policy's arguments.
    async fn run_policy(
        &self,
        script: &Script,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<u64, BackendError> {
        let millis = crate::clock::duration_ms;
        let mut invocation = script.key(self.key(key));
        invocation
            .arg(now_ms)
            .arg(policy.max_failures)
            .arg(millis(policy.window))
            .arg(millis(policy.lockout));
        self.redis.run(&invocation).await.map_err(BackendError::new)
    }
}

#[async_trait]
impl AttemptBackend for RedisAttemptBackend {
    async fn reserve(
        &self,
        key: &str,
        now_ms: u64,
        policy: AttemptPolicy,
    ) -> Result<Result<(), u64>, BackendError> {
        if policy.max_failures == 0 {
            return Ok(Ok(()));
        }
        let locked_until = self.run_policy(&self.reserve, key, now_ms, policy).await?;
        Ok(match locked_until {
            0 => Ok(()),
            until => Err(until),
        })
    }

    async fn release(&self, key: &str, _now_ms: u64) -> Result<(), BackendError> {
        let invocation = self.release.key(self.key(key));
        let _: i64 = self
            .redis
            .run(&invocation)
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
        let count = self.run_policy(&self.fail, key, now_ms, policy).await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn state(&self, key: &str, now_ms: u64) -> Result<AttemptState, BackendError> {
        let (window_end, count, locked_until): (Option<u64>, Option<u32>, Option<u64>) = self
            .redis
            .command(
                redis::cmd("HMGET")
                    .arg(self.key(key))
                    .arg("e")
                    .arg("n")
                    .arg("l"),
            )
            .await
            .map_err(BackendError::new)?;
        let locked_until_ms = locked_until.filter(|l| *l > now_ms);
        let live = locked_until_ms.is_some() || window_end.is_some_and(|e| now_ms < e);
        Ok(AttemptState {
            count: if live { count.unwrap_or(0) } else { 0 },
            locked_until_ms,
        })
    }

    async fn clear(&self, key: &str) -> Result<(), BackendError> {
        let _: i64 = self
            .redis
            .command(redis::cmd("DEL").arg(self.key(key)))
            .await
            .map_err(BackendError::new)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::Clock as _;
    use crate::config::RedisSettings;
    use crate::store::redis::{RedisStore, redis_server};

    /// Every key and value under `prefix`, as one string.
    async fn dump(redis: &RedisConnection, prefix: &str) -> String {
        let keys: Vec<String> = redis
            .command(redis::cmd("KEYS").arg(format!("{prefix}:*")))
            .await
            .unwrap();
        let mut out = String::new();
        for key in keys {
            let values: Vec<String> = redis
                .command(redis::cmd("HGETALL").arg(&key))
                .await
                .unwrap_or_default();
            let value: Option<String> = redis
                .command(redis::cmd("GET").arg(&key))
                .await
                .unwrap_or_default();
            out.push_str(&format!(
                "{key} {} {}\n",
                values.join(" "),
                value.unwrap_or_default()
            ));
        }
        out
    }

    #[tokio::test]
    async fn sealed_key_names_leak_no_user_or_address() {
        let prefix = redis_server::unique_prefix("rl-leak");
        let settings = RedisSettings::new(redis_server::single().urls.clone())
            .with_key_prefix(prefix.clone())
            .with_encryption_key(&[7; 32])
            .unwrap();
        let store = RedisStore::connect(&settings).await.unwrap();
        let now = crate::clock::SystemClock.now_ms();
        let policy = AttemptPolicy {
            max_failures: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
        };
        let attempts = RedisAttemptBackend::new(store.connection());
        assert_eq!(
            attempts
                .record_failure("user:alice@example.com", now, policy)
                .await
                .unwrap(),
            1
        );
        RedisRateLimitBackend::new(store.connection())
            .hit("203.0.113.7", now, Duration::from_secs(60), 10)
            .await
            .unwrap();
        let dumped = dump(&store.connection(), &prefix).await;
        assert!(dumped.contains(&format!("{prefix}:rl:{{")), "{dumped}");
        assert!(dumped.contains(&format!("{prefix}:at:{{")), "{dumped}");
        assert!(!dumped.contains("203.0.113.7"), "{dumped}");
        assert!(!dumped.contains("alice"), "{dumped}");
    }
}

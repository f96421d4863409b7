//! What health reads from Redis: the probe key of a shard, and the warnings for a server that
//! evicts keys or has fewer replicas than writes wait for.

use super::RedisStore;
use crate::store::StoreWarning;
use crate::store::redis::connection::{Shard, key_slot};

impl RedisStore {
    /// A key of `shard`'s slot range under this store's prefix (it never exists), and its
    /// slot: what health reads to reach the range's primary the way the scripts do.
    pub(super) fn probe_key(&self, shard: &Shard) -> (String, u16) {
        (0u32..)
            .map(|n| format!("{}:probe:{n}", self.names().prefix()))
            .map(|key| {
                let slot = key_slot(key.as_bytes());
                (key, slot)
            })
            .find(|(_, slot)| (shard.first_slot..=shard.last_slot).contains(slot))
            .expect("every slot range holds some key")
    }

    /// When writes wait for replicas: the warning for a primary whose `INFO replication`
    /// counts fewer connected replicas than they wait for (its writes all answer 503).
    pub(super) fn replicas_warning(&self, info: &str) -> Option<StoreWarning> {
        let wait = self.redis.wait()?;
        let connected = info_field(info, "connected_slaves")?.parse::<u32>().ok()?;
        (connected < wait.replicas).then(|| {
            StoreWarning::new(
                "store_replicas_missing",
                format!(
                    "Redis has {connected} connected replica(s), and REDIS_WAIT_REPLICAS asks {} \
                     to confirm every write: writes to it answer 503 until enough replicas are back",
                    wait.replicas
                ),
            )
        })
    }
}

/// The reason code of a Redis that evicts keys when full.
pub(super) const EVICTS_KEYS: &str = "store_evicts_keys";

/// The warning for a Redis whose `INFO memory` says it evicts keys when full.
pub(in crate::store::redis) fn eviction_warning(info: &str) -> Option<StoreWarning> {
    let field = |name: &str| info_field(info, name);
    let limit = field("maxmemory")?.parse::<u64>().ok()?;
    let policy = field("maxmemory_policy")?;
    (limit > 0 && policy != "noeviction").then(|| {
        StoreWarning::new(
            EVICTS_KEYS,
            format!(
                "Redis evicts keys when it reaches maxmemory ({limit} bytes, maxmemory-policy \
                 {policy}): sessions, user indexes and logouts can vanish without an error; set \
                 maxmemory-policy noeviction (docs/deployment.md)"
            ),
        )
    })
}

/// A field of an `INFO` answer (`name:value` lines).
pub(super) fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

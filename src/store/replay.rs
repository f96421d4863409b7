//! The DPoP replay cache on the store's [`Backing`]: in this process's memory, or in Redis or
//! PostgreSQL when the sessions are there, so that a proof used on one instance is refused on
//! every other.

use std::sync::Arc;

#[cfg(any(feature = "redis", feature = "postgres"))]
use sha2::{Digest as _, Sha256};

use super::Backing;
use crate::token::dpop::{DpopReplayCache, MemoryReplayCache};

/// How many bytes of a proof's hash name it in a shared store.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) const PROOF_KEY_LEN: usize = 16;

/// A proof's name in a shared store: the first [`PROOF_KEY_LEN`] bytes of SHA-256 over the
/// thumbprint's length, the thumbprint and the `jti`. Fixed-size whatever the `jti`, so a
/// client sending long `jti`s cannot grow the store's keys; the length keeps `("ab", "c")`
/// and `("a", "bc")` apart. Unsalted, unlike the memory cache's: every instance must name a
/// proof alike.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn proof_key(jkt: &str, jti: &str) -> [u8; PROOF_KEY_LEN] {
    let mut hash = Sha256::new();
    hash.update((jkt.len() as u64).to_be_bytes());
    hash.update(jkt.as_bytes());
    hash.update(jti.as_bytes());
    let digest = hash.finalize();
    let mut key = [0u8; PROOF_KEY_LEN];
    key.copy_from_slice(&digest[..PROOF_KEY_LEN]);
    key
}

impl Backing {
    /// The DPoP replay cache that belongs with this store: shared by every instance when the
    /// sessions are (`redis::RedisReplayCache` on the same Redis connection and key prefix,
    /// `postgres::PostgresReplayCache` on the same pool and table prefix), a
    /// [`MemoryReplayCache`] of `capacity` unexpired proofs for [`Backing::Process`]. `capacity` bounds only the memory cache: the shared
    /// ones keep each proof until it expires, a fixed-size key per proof.
    ///
    /// ```
    /// use tower_jwt_session::store::{MemoryStore, SessionStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_jwt_session::token::dpop::ReplayCacheError> {
    /// let cache = MemoryStore::new().backing().dpop_replay_cache(10_000);
    /// let now = 1_700_000_000_000;
    /// assert!(cache.first_use("jkt", "jti-1", now + 120_000, now).await?);
    /// assert!(!cache.first_use("jkt", "jti-1", now + 120_000, now + 1).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn dpop_replay_cache(&self, capacity: usize) -> Arc<dyn DpopReplayCache> {
        match self {
            Backing::Process => {
                Arc::new(MemoryReplayCache::new(capacity).with_key_share((capacity / 64).max(64)))
            }
            #[cfg(feature = "redis")]
            Backing::Redis(connection) => {
                Arc::new(super::redis::RedisReplayCache::new((**connection).clone()))
            }
            #[cfg(feature = "postgres")]
            Backing::Postgres(connection) => Arc::new(super::postgres::PostgresReplayCache::new(
                (**connection).clone(),
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The rules every replay cache keeps, written once and run on each backend (here for
    //! memory; `store::redis::replay` and `store::postgres::replay` run them on the real
    //! servers).

    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::Clock as _;
    use crate::token::dpop::DpopReplayCache;

    fn now() -> u64 {
        crate::clock::SystemClock.now_ms()
    }

    /// A `jti` of its own for each call, so runs on a shared store never meet.
    fn jti(name: &str) -> String {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("random");
        let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
        format!("{name}-{random}")
    }

    /// The long `jti` [`replay_cache_rules`] uses, for the backends to check their key sizes.
    pub(crate) const LONG_JTI_LEN: usize = 10 * 1024;

    /// The rules, on two caches that stand for two instances sharing one store (the same cache
    /// twice for memory): a first use answers `true` and a second `false`, on either instance;
    /// another key's same `jti` is a first use; an expired proof is a first use again; of 16
    /// concurrent uses of one proof across the two, exactly one is first; a 10 KB `jti` is
    /// recorded like any other.
    pub(crate) async fn replay_cache_rules(
        a: Arc<dyn DpopReplayCache>,
        b: Arc<dyn DpopReplayCache>,
    ) {
        let window = 120_000;

        // Once, then refused: on the same instance and on the other.
        let t = now();
        let id = jti("once");
        assert!(a.first_use("jkt-1", &id, t + window, t).await.unwrap());
        assert!(!a.first_use("jkt-1", &id, t + window, t + 1).await.unwrap());
        assert!(
            !b.first_use("jkt-1", &id, t + window, t + 2).await.unwrap(),
            "a proof used on one instance is refused on the other"
        );
        let id = jti("other-first");
        assert!(b.first_use("jkt-1", &id, t + window, t).await.unwrap());
        assert!(!a.first_use("jkt-1", &id, t + window, t + 1).await.unwrap());

        // The same jti under another key is another proof; so is a split elsewhere.
        let id = jti("keys");
        assert!(a.first_use("jkt-1", &id, t + window, t).await.unwrap());
        assert!(b.first_use("jkt-2", &id, t + window, t).await.unwrap());
        assert!(!b.first_use("jkt-2", &id, t + window, t).await.unwrap());
        assert!(
            a.first_use("ab", &format!("c{id}"), t + window, t)
                .await
                .unwrap()
        );
        assert!(
            a.first_use("a", &format!("bc{id}"), t + window, t)
                .await
                .unwrap()
        );

        // After its expiry (50 ms of real time, for a store that expires by its own clock),
        // the proof is a first use again, once.
        let t = now();
        let id = jti("expiry");
        assert!(a.first_use("jkt-1", &id, t + 50, t).await.unwrap());
        assert!(!b.first_use("jkt-1", &id, t + 50, t + 1).await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = now();
        assert!(
            b.first_use("jkt-1", &id, t + window, t).await.unwrap(),
            "an expired proof may be used again"
        );
        assert!(!a.first_use("jkt-1", &id, t + window, t + 1).await.unwrap());

        // A race: 16 uses of one proof at once, half on each instance, one winner, each round.
        for round in 0..10 {
            let t = now();
            let id = jti(&format!("race-{round}"));
            let uses: Vec<_> = (0..16)
                .map(|i| {
                    let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
                    let id = id.clone();
                    tokio::spawn(async move { cache.first_use("jkt-1", &id, t + window, t).await })
                })
                .collect();
            let mut firsts = 0;
            for used in uses {
                if used.await.unwrap().unwrap() {
                    firsts += 1;
                }
            }
            assert_eq!(firsts, 1, "round {round}: exactly one first use");
        }

        // A 10 KB jti is one proof like another, told apart from one that differs at its end.
        let t = now();
        let long = format!("{}{}", jti("long"), "x".repeat(LONG_JTI_LEN));
        let mut other = long.clone();
        other.push('y');
        assert!(a.first_use("jkt-1", &long, t + window, t).await.unwrap());
        assert!(!b.first_use("jkt-1", &long, t + window, t).await.unwrap());
        assert!(b.first_use("jkt-1", &other, t + window, t).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_replay_cache_keeps_the_rules() {
        let cache = Backing::Process.dpop_replay_cache(10_000);
        replay_cache_rules(cache.clone(), cache).await;
    }

    /// The memory cache holds a 10 KB `jti` as one fixed-size digest (its `Key` type).
    #[test]
    fn memory_replay_cache_holds_a_long_jti_as_one_entry() {
        let cache = MemoryReplayCache::new(1_000);
        let long = "x".repeat(LONG_JTI_LEN);
        let used = cache.try_first_use("jkt", &long, 2_000, 1_000).unwrap();
        assert!(used.unwrap());
        assert_eq!(cache.len(), 1);
    }

    #[cfg(any(feature = "redis", feature = "postgres"))]
    #[test]
    fn proof_keys_are_fixed_size_and_keep_the_split() {
        let long = "x".repeat(LONG_JTI_LEN);
        assert_eq!(proof_key("jkt", &long).len(), PROOF_KEY_LEN);
        assert_ne!(proof_key("ab", "c"), proof_key("a", "bc"));
        assert_ne!(proof_key("jkt", "a"), proof_key("jkt2", "a"));
        assert_eq!(proof_key("jkt", "a"), proof_key("jkt", "a"));
    }
}

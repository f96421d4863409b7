//! [`DpopReplayCache`]: the `jti`s seen within the window (RFC 9449 §11.1), and
//! [`MemoryReplayCache`], the bounded in-process one.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest as _, Sha256};

/// A replay cache could not answer: it is full, or its store cannot be reached. The verifier
/// refuses the proof ([`DpopError::ReplayCheckUnavailable`](super::DpopError)): a proof whose
/// `jti` cannot be recorded is never let through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayCacheError {
    /// A bounded cache holds as many unexpired entries as it may.
    #[error("the DPoP replay cache is full ({capacity} unexpired proofs)")]
    Full {
        /// How many entries it holds at most.
        capacity: usize,
    },
    /// One key (`jkt`) holds as many unexpired entries as one key may
    /// ([`MemoryReplayCache::with_key_share`]): its proofs are refused until some expire, and
    /// every other key's are still taken.
    #[error("this DPoP key has {share} unexpired proofs, as many as one key may hold")]
    KeyShareFull {
        /// How many entries one key may hold.
        share: usize,
    },
    /// The backend failed (a store that cannot be reached, a timeout).
    #[error("the DPoP replay cache failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where the proofs seen within the window are remembered, so that a proof is accepted once.
///
/// One operation, [`first_use`](Self::first_use), records a proof and says whether it was new,
/// atomically: of two concurrent calls with the same proof, exactly one may answer `true`. A
/// proof is named by its key's thumbprint (`jkt`) and its `jti`, so one client cannot use up
/// another's `jti`s; a backend keeps the pair until `expires_at_ms`, when the proof's `iat` is
/// too old for it to be accepted anyway. A backend may keep an entry longer (refusing a `jti`
/// seen long ago is harmless), never shorter.
///
/// With several instances serving the same clients, the cache must be shared (else a proof
/// replayed to another instance is accepted there): `store::Backing::dpop_replay_cache` gives
/// the one that belongs with the session store. In Redis (`store::redis::RedisReplayCache`)
/// it is `SET <prefix>:dpop:<hash> 1 NX PX <expires_at_ms - now_ms>` (`OK` is a first use), in
/// PostgreSQL (`store::postgres::PostgresReplayCache`) `INSERT … ON CONFLICT (key) DO UPDATE
/// … WHERE expires_at <= now RETURNING` (a row returned is a first use), with expired rows
/// deleted now and then; `<hash>` is a fixed-size hash of `jkt` and `jti`, so no `jti` makes
/// a key longer.
///
/// Object-safe: the verifier holds an `Arc<dyn DpopReplayCache>`. An in-process cache also
/// answers [`try_first_use`](Self::try_first_use), so the request pays for no boxed future.
///
/// ```
/// use tower_jwt_session::token::dpop::{DpopReplayCache, MemoryReplayCache};
///
/// let cache = MemoryReplayCache::new(1_000);
/// let now = 1_700_000_000_000;
/// assert_eq!(cache.try_first_use("jkt", "jti-1", now + 60_000, now).unwrap()?, true);
/// assert_eq!(cache.try_first_use("jkt", "jti-1", now + 60_000, now + 1).unwrap()?, false);
/// # Ok::<(), tower_jwt_session::token::dpop::ReplayCacheError>(())
/// ```
#[async_trait::async_trait]
pub trait DpopReplayCache: fmt::Debug + Send + Sync + 'static {
    /// Records the proof `(jkt, jti)` as used until `expires_at_ms` (milliseconds since the
    /// epoch) and returns whether this is its first use; `now_ms` is the verifier's clock.
    ///
    /// # Errors
    /// When the proof cannot be recorded (a full cache, an unreachable store): the verifier
    /// then refuses the proof.
    async fn first_use(
        &self,
        jkt: &str,
        jti: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, ReplayCacheError>;

    /// The same as [`first_use`](Self::first_use), answered at once, or `None` (having
    /// recorded nothing) when the answer needs to wait. The default is `None`.
    #[inline]
    fn try_first_use(
        &self,
        jkt: &str,
        jti: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Option<Result<bool, ReplayCacheError>> {
        let _ = (jkt, jti, expires_at_ms, now_ms);
        None
    }
}

/// Shards of the memory cache, each behind its own lock.
const SHARDS: usize = 16;

/// A proof's name in memory: 16 bytes of SHA-256 over a per-process salt, `jkt` and `jti`.
/// Fixed-size whatever the `jti`, and not predictable, so no client can aim entries at one
/// hash bucket.
type Key = [u8; 16];

/// A DPoP key's name in memory, for its share of the cache: 16 bytes of SHA-256 over the salt
/// and the `jkt`.
type KeyId = [u8; 16];

/// How many unexpired entries each key holds (one shard of them).
type KeyCounts = HashMap<KeyId, usize, KeyHasher>;

#[derive(Default)]
struct Shard {
    /// Each proof's expiry, and the key that made it.
    expiries: HashMap<Key, (u64, KeyId), KeyHasher>,
    /// The same entries by expiry, soonest first. An entry replaced after it expired leaves
    /// a stale pair here, dropped when popped.
    by_expiry: BinaryHeap<Reverse<(u64, Key)>>,
}

impl Shard {
    /// Drops entries expired at `now_ms`, at most `limit` of them, telling `removed` the key
    /// of each.
    fn purge(&mut self, now_ms: u64, limit: usize, mut removed: impl FnMut(KeyId)) {
        for _ in 0..limit {
            match self.by_expiry.peek() {
                Some(Reverse((expires, _))) if *expires <= now_ms => {}
                _ => return,
            }
            let Some(Reverse((expires, key))) = self.by_expiry.pop() else {
                return;
            };
            if let Entry::Occupied(e) = self.expiries.entry(key)
                && e.get().0 == expires
            {
                removed(e.remove().1);
            }
        }
    }
}

/// The default [`DpopReplayCache`]: the proofs seen by this process, in bounded memory.
///
/// - **Memory.** At most `capacity` unexpired proofs, whatever the traffic. An entry costs
///   about 60 bytes (a 16-byte digest and its expiry, in a hash map and a heap), so the
///   default capacity of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) is about 16 MB at most.
///   Entries leave as they expire (a proof's `iat` plus the accepted age), a few at each call.
/// - **At the cap, proofs are refused, not forgotten.** Evicting an unexpired entry would let
///   its proof be replayed: a flood of fresh proofs would then open the door to replays of a
///   stolen one. When the cache is full of unexpired entries, a new proof is refused with
///   [`ReplayCacheError::Full`] (answered `503 unavailable`) until entries expire, and a
///   warning is logged at most once a minute. Size it as the proofs per second one instance
///   takes times the window (accepted age plus clock skew, 120 s by default): the default
///   holds about 2,000 proofs a second.
/// - **Scope.** One process. Instances that serve the same clients share a store-backed cache.
/// - **A key's share** ([`with_key_share`](Self::with_key_share)): bounded, one client cannot
///   fill the cache for the others.
/// - **Cost.** One SHA-256 of the `jkt` and `jti`, and one lock of one of 16 shards (and with a
///   key share, one more lock of the key's count).
pub struct MemoryReplayCache {
    shards: Box<[Mutex<Shard>]>,
    /// How many unexpired entries each key holds, in shards of their own, when a key's share
    /// is bounded. Always locked after an entry shard, never before.
    key_counts: Option<(usize, Box<[Mutex<KeyCounts>]>)>,
    per_shard: usize,
    capacity: usize,
    salt: [u8; 16],
    /// When the last "full" warning was logged (ms since the epoch), to log it once a minute.
    warned_at: AtomicU64,
}

impl fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl MemoryReplayCache {
    /// The default capacity: 262,144 unexpired proofs.
    pub const DEFAULT_CAPACITY: usize = 1 << 18;

    /// A cache holding at most `capacity` unexpired proofs (at least 16: one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).expect("the operating system's random source is available");
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            key_counts: None,
            per_shard,
            capacity: per_shard * SHARDS,
            salt,
            warned_at: AtomicU64::new(0),
        }
    }

    /// Bounds what one DPoP key may hold to `share` unexpired proofs (at least 1): a client
    /// that floods fresh proofs of its own key (one signed-in client, one bound session) is
    /// refused past its share ([`ReplayCacheError::KeyShareFull`]) while every other key's
    /// proofs are still taken, instead of filling the cache for everyone. Unbounded by default.
    /// A key's share should hold its proofs for the window (accepted age plus clock skew,
    /// 120 s by default): 16,384 is 136 requests a second from one key.
    pub fn with_key_share(mut self, share: usize) -> Self {
        let counts = (0..SHARDS).map(|_| Mutex::default()).collect();
        self.key_counts = Some((share.max(1), counts));
        self
    }

    /// How many unexpired proofs it holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many entries it holds now (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expiries
                    .len()
            })
            .sum()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(&self, jkt: &str, jti: &str) -> (Key, KeyId) {
        let mut hash = Sha256::new();
        hash.update(self.salt);
        hash.update((jkt.len() as u64).to_be_bytes());
        hash.update(jkt.as_bytes());
        // A key's own name, only where its share is counted.
        let mut key_id = [0u8; 16];
        if self.key_counts.is_some() {
            key_id.copy_from_slice(&hash.clone().finalize()[..16]);
        }
        hash.update(jti.as_bytes());
        let digest = hash.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        (key, key_id)
    }

    /// The count of `key_id`'s entries, when shares are bounded.
    fn key_count(&self, key_id: &KeyId) -> Option<(usize, std::sync::MutexGuard<'_, KeyCounts>)> {
        let (share, counts) = self.key_counts.as_ref()?;
        let shard = &counts[usize::from(key_id[15]) % SHARDS];
        Some((*share, shard.lock().unwrap_or_else(PoisonError::into_inner)))
    }

    /// One entry of `key_id` left.
    fn released(&self, key_id: KeyId) {
        if let Some((_, mut counts)) = self.key_count(&key_id)
            && let Entry::Occupied(mut count) = counts.entry(key_id)
        {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }

    fn record(
        &self,
        jkt: &str,
        jti: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, ReplayCacheError> {
        match self.try_record(jkt, jti, expires_at_ms, now_ms) {
            // A key's entries lie in every shard, and each shard drops its expired entries
            // only as calls reach it: before refusing a key its share, every shard drops its
            // own (one shard locked at a time), and the proof is tried once more.
            Err(ReplayCacheError::KeyShareFull { .. }) => {
                for shard in self.shards.iter() {
                    let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
                    shard.purge(now_ms, usize::MAX, |gone| self.released(gone));
                }
                let answer = self.try_record(jkt, jti, expires_at_ms, now_ms);
                if let Err(ReplayCacheError::KeyShareFull { .. }) = answer {
                    self.warn_full(
                        now_ms,
                        "one DPoP key holds its whole share of the replay cache: that client's proofs are refused (503) until some expire (a client flooding fresh proofs?)",
                    );
                }
                answer
            }
            answer => answer,
        }
    }

    fn try_record(
        &self,
        jkt: &str,
        jti: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, ReplayCacheError> {
        let (key, key_id) = self.key(jkt, jti);
        let shard = &self.shards[usize::from(key[15]) % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        // A few expired entries go at every call, so the cost of expiry is spread out.
        shard.purge(now_ms, 8, |gone| self.released(gone));
        let replaces = match shard.expiries.get(&key) {
            Some(&(expires, _)) if expires > now_ms => return Ok(false),
            // An expired entry of the same proof: replaced in place, its key's count unchanged.
            Some(_) => true,
            None if shard.expiries.len() >= self.per_shard => {
                shard.purge(now_ms, usize::MAX, |gone| self.released(gone));
                if shard.expiries.len() >= self.per_shard {
                    drop(shard);
                    self.warn_full(
                        now_ms,
                        "the DPoP replay cache is full of unexpired proofs: new proofs are refused (503) until some expire; raise its capacity or shorten the proof window",
                    );
                    return Err(ReplayCacheError::Full {
                        capacity: self.capacity,
                    });
                }
                false
            }
            None => false,
        };
        if !replaces && let Some((share, mut counts)) = self.key_count(&key_id) {
            let count = counts.entry(key_id).or_insert(0);
            if *count >= share {
                return Err(ReplayCacheError::KeyShareFull { share });
            }
            *count += 1;
        }
        shard.expiries.insert(key, (expires_at_ms, key_id));
        shard.by_expiry.push(Reverse((expires_at_ms, key)));
        Ok(true)
    }

    /// Logs `message` at `warn`, at most once a minute.
    fn warn_full(&self, now_ms: u64, message: &'static str) {
        let last = self.warned_at.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 60_000
            && self
                .warned_at
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(capacity = self.capacity, "{message}");
        }
    }
}

#[async_trait::async_trait]
impl DpopReplayCache for MemoryReplayCache {
    async fn first_use(
        &self,
        jkt: &str,
        jti: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, ReplayCacheError> {
        self.record(jkt, jti, expires_at_ms, now_ms)
    }

    #[inline]
    fn try_first_use(
        &self,
        jkt: &str,
        jti: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Option<Result<bool, ReplayCacheError>> {
        Some(self.record(jkt, jti, expires_at_ms, now_ms))
    }
}

/// The keys are already uniform (salted SHA-256): their first 8 bytes are the hash.
#[derive(Clone, Copy, Default)]
struct KeyHasher;

impl std::hash::BuildHasher for KeyHasher {
    type Hasher = KeyHash;
    fn build_hasher(&self) -> KeyHash {
        KeyHash(0)
    }
}

struct KeyHash(u64);

impl std::hash::Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as its bytes (arrays write no length prefix).
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn first(
        cache: &MemoryReplayCache,
        jkt: &str,
        jti: &str,
        exp: u64,
        now: u64,
    ) -> Result<bool, ReplayCacheError> {
        cache
            .try_first_use(jkt, jti, exp, now)
            .expect("memory answers at once")
    }

    #[test]
    fn a_proof_is_new_once_until_it_expires() {
        let cache = MemoryReplayCache::new(100);
        assert!(first(&cache, "k", "a", NOW + 60_000, NOW).unwrap());
        assert!(!first(&cache, "k", "a", NOW + 60_000, NOW + 59_999).unwrap());
        // The same jti under another key is another proof.
        assert!(first(&cache, "k2", "a", NOW + 60_000, NOW).unwrap());
        // Past its expiry the proof's iat is refused anyway; the entry may go.
        assert!(first(&cache, "k", "a", NOW + 200_000, NOW + 60_000).unwrap());
        assert!(!first(&cache, "k", "a", NOW + 200_000, NOW + 60_001).unwrap());
    }

    #[test]
    fn jkt_and_jti_are_not_confused_by_where_they_split() {
        let cache = MemoryReplayCache::new(100);
        assert!(first(&cache, "ab", "c", NOW + 1_000, NOW).unwrap());
        assert!(first(&cache, "a", "bc", NOW + 1_000, NOW).unwrap());
    }

    #[tokio::test]
    async fn the_async_form_answers_as_the_sync_one() {
        let cache = MemoryReplayCache::new(100);
        assert!(cache.first_use("k", "a", NOW + 1_000, NOW).await.unwrap());
        assert!(!cache.first_use("k", "a", NOW + 1_000, NOW).await.unwrap());
        assert!(!first(&cache, "k", "a", NOW + 1_000, NOW).unwrap());
    }

    /// A flood of distinct fresh proofs: memory stays at the cap, and at the cap new proofs are
    /// refused, never accepted by forgetting older ones (which could then be replayed).
    #[test]
    fn a_flood_fills_the_cache_to_its_cap_then_is_refused_and_nothing_is_forgotten() {
        let cache = MemoryReplayCache::new(1_600);
        let exp = NOW + 120_000;
        let mut accepted = Vec::new();
        let mut refused = 0;
        for i in 0..20_000 {
            let jti = format!("flood-{i}");
            match first(&cache, "attacker", &jti, exp, NOW) {
                Ok(true) => accepted.push(jti),
                Ok(false) => panic!("a distinct jti is never a replay"),
                Err(ReplayCacheError::Full { capacity }) => {
                    assert_eq!(capacity, 1_600);
                    refused += 1;
                }
                Err(e) => panic!("{e}"),
            }
            assert!(cache.len() <= cache.capacity());
        }
        assert_eq!(
            accepted.len(),
            1_600,
            "every shard filled, none beyond its share"
        );
        assert_eq!(accepted.len() + refused, 20_000);
        // Every accepted proof is still known: a replay of any of them is caught.
        for jti in &accepted {
            assert!(
                !first(&cache, "attacker", jti, exp, NOW + 1).unwrap(),
                "{jti} forgotten"
            );
        }
        // Once they expire, room comes back at once.
        assert!(first(&cache, "victim", "fresh", exp + 120_000, exp).unwrap());
        assert!(cache.len() <= cache.capacity());
    }

    /// A steady stream of proofs over a long time, the clock moving: expired entries leave,
    /// so the cache never fills and never refuses, and its size follows the window.
    #[test]
    fn a_steady_stream_never_fills_the_cache() {
        // 25 proofs a second for an hour of clock, each kept 120 s: 3,000 live at most.
        let cache = MemoryReplayCache::new(8_000);
        let window = 120_000;
        let mut max_len = 0;
        for i in 0..90_000u64 {
            let now = NOW + i * 40;
            assert!(first(&cache, "client", &i.to_string(), now + window, now).unwrap());
            max_len = max_len.max(cache.len());
        }
        assert!(max_len <= 3_100, "entries left as they expired: {max_len}");
    }

    #[test]
    fn concurrent_uses_of_one_proof_have_one_winner() {
        let cache = Arc::new(MemoryReplayCache::new(10_000));
        for round in 0..50 {
            let wins = Arc::new(AtomicUsize::new(0));
            let jti = format!("race-{round}");
            std::thread::scope(|s| {
                for _ in 0..8 {
                    let (cache, wins, jti) = (cache.clone(), wins.clone(), jti.clone());
                    s.spawn(move || {
                        if first(&cache, "k", &jti, NOW + 60_000, NOW).unwrap() {
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            });
            assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}");
        }
    }

    /// One client flooding fresh proofs of its own key fills its share, not the cache: the
    /// other keys' proofs are still taken, and its own are never forgotten.
    #[test]
    fn one_key_is_held_to_its_share_and_others_are_still_taken() {
        let cache = MemoryReplayCache::new(4_096).with_key_share(64);
        let exp = NOW + 120_000;
        let mut accepted = Vec::new();
        for i in 0..1_000 {
            let jti = format!("flood-{i}");
            match first(&cache, "attacker", &jti, exp, NOW) {
                Ok(true) => accepted.push(jti),
                Err(ReplayCacheError::KeyShareFull { share }) => assert_eq!(share, 64),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(accepted.len(), 64);
        for i in 0..500 {
            assert!(first(&cache, &format!("client-{i}"), "a", exp, NOW).unwrap());
        }
        for jti in &accepted {
            assert!(
                !first(&cache, "attacker", jti, exp, NOW + 1).unwrap(),
                "{jti}"
            );
        }
        // Its share comes back as its entries expire.
        assert!(first(&cache, "attacker", "later", exp + 120_000, exp).unwrap());
    }

    /// Round after round of a key filling its share and letting it expire: the counts follow
    /// the entries (none leaks), so every round gets the whole share again.
    #[test]
    fn a_keys_share_is_whole_again_after_every_expiry() {
        let cache = MemoryReplayCache::new(1_024).with_key_share(50);
        for round in 0..40u64 {
            let now = NOW + round * 10_000;
            let accepted = (0..80)
                .filter(|i| {
                    first(&cache, "k", &format!("{round}-{i}"), now + 5_000, now).unwrap_or(false)
                })
                .count();
            assert_eq!(accepted, 50, "round {round}");
            // A proof replaced in place after its expiry keeps the count as it was.
            assert!(!first(&cache, "k", &format!("{round}-0"), now + 5_000, now + 1).unwrap());
        }
        let counted: usize = cache
            .key_counts
            .as_ref()
            .unwrap()
            .1
            .iter()
            .map(|s| s.lock().unwrap().values().sum::<usize>())
            .sum();
        assert!(counted <= 50 + 50, "{counted} entries counted");
    }

    #[test]
    fn concurrent_proofs_of_one_key_get_exactly_its_share() {
        let cache = Arc::new(MemoryReplayCache::new(100_000).with_key_share(100));
        let wins = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..8 {
                let (cache, wins) = (cache.clone(), wins.clone());
                s.spawn(move || {
                    for i in 0..50 {
                        if first(&cache, "k", &format!("{t}-{i}"), NOW + 60_000, NOW)
                            .unwrap_or(false)
                        {
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 100);
    }

    #[test]
    fn capacity_is_rounded_to_whole_shards() {
        assert_eq!(MemoryReplayCache::new(0).capacity(), SHARDS);
        assert_eq!(MemoryReplayCache::new(100).capacity(), 112);
        assert_eq!(
            MemoryReplayCache::default().capacity(),
            MemoryReplayCache::DEFAULT_CAPACITY
        );
    }
}

//! The cache of verified tokens in front of verification, as Envoy's `jwt_authn` keeps one
//! (`jwt_cache_config`): a token seen again is not verified again.
//!
//! The first of the request path's cache tiers. It answers "this token verified" and never
//! whether its session is revoked: that is the revocation cache's, whose module doc
//! (`manager::cache`) states the property the tiers keep together.
//!
//! - **Keyed by the whole token.** A keyed hash finds the entry and the map compares the whole
//!   stored token with the presented one, byte for byte, before it answers: a hash match alone is
//!   never a pass. The hash reads only the token's last [`TAIL`] bytes and its length: the tail
//!   is inside the signature, and for every token that can be in the cache that is already a
//!   MAC or signature over the rest, as good as random, so hashing 400 bytes would spread the
//!   entries no better, at many times the cost. Two multiplications with keys drawn at random
//!   per process mix it, so nobody outside can aim tokens at one set; and if someone did, a
//!   collision costs a comparison in a set of at most [`WAYS`], never a wrong answer.
//! - **Only tokens that verified enter**, and only while inside their time window: an invalid
//!   or expired token never takes a place.
//! - **Holds the verified [`Session`]**, shared: a hit clones one reference count, nothing is
//!   parsed or allocated.
//! - **`exp` and `nbf` are checked on every hit** against the codec's clock, with the leeway,
//!   exactly as on a miss; the revocation check comes after, in the caller, on every request.
//! - **An entry never outlives its token**: each one expires at its `exp` plus the leeway (and
//!   no later than one access-token lifetime plus leeway from its insertion).
//! - **Bounded**: at most [`TokenCacheSettings::capacity`] entries, in sets of [`WAYS`]; a new
//!   token takes an empty or expired place of its set, else the place of a token not used since
//!   the set's hand last passed it (a CLOCK in each set, so tokens in use survive a flood of new
//!   ones), else the hand's. A flood of distinct valid tokens evicts; it never grows memory.
//! - **Cheap to hit**: one keyed hash, a shared lock on one set, a scan of at most [`WAYS`]
//!   hashes, one byte comparison, one reference count. No upkeep runs on the request's thread
//!   and nothing is allocated: a general-purpose cache's bookkeeping (admission sketches, read
//!   buffers, timer wheels) cost more than the signature check it saves a third of.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::clock::duration_ms;
use crate::config::TokenCacheSettings;
use crate::error::AuthError;
use crate::session::Session;
use crate::telemetry::{Eviction, TokenCacheMetrics};

use super::{Decoded, TokenCodec};

/// How many bytes at the end of a token the hash reads: inside the signature for every
/// algorithm (an HS256 signature is 43 characters, the shortest), 96 bits of it in base64url.
const TAIL: usize = 16;

/// How many tokens share a set: the most a lookup compares hashes with.
const WAYS: usize = 8;

/// The largest capacity honoured (2^24 tokens, several GiB of tokens): larger settings are
/// held to it, so a mistyped capacity cannot reserve the sets' bookkeeping for billions.
const MAX_CAPACITY: u64 = 1 << 24;

/// What a verified token left behind: all a hit needs to answer.
#[derive(Clone)]
struct Verified {
    session: Session,
    /// `nbf`, in milliseconds since the epoch.
    not_before_ms: Option<u64>,
}

/// One cached token.
struct Slot {
    hash: u64,
    token: Box<[u8]>,
    verified: Verified,
    /// When the entry stops answering, in milliseconds since the epoch: the token's `exp` plus
    /// the leeway, and no later than one access-token lifetime plus leeway after its insertion.
    ends_ms: u64,
    /// Used since the set's hand last passed it.
    used: AtomicBool,
}

/// The tokens of one set, and its CLOCK hand.
#[derive(Default)]
struct Set {
    slots: Vec<Slot>,
    hand: usize,
}

/// The sets of one cache.
struct TokenMap {
    sets: Box<[RwLock<Set>]>,
    /// Places per set: [`WAYS`], or the capacity when it is smaller.
    ways: usize,
    hash: TailHash,
    leeway_ms: u64,
    longest_ms: u64,
}

/// The cache of one codec (and its clones); `None` inside when turned off.
pub(crate) struct VerifiedCache {
    map: Option<TokenMap>,
    metrics: TokenCacheMetrics,
}

impl VerifiedCache {
    /// The cache `settings` ask for, for tokens that live at most `access_ttl` past their
    /// `iat` and are accepted `leeway` past their `exp`.
    pub(super) fn new(
        settings: &TokenCacheSettings,
        leeway: Duration,
        access_ttl: Duration,
    ) -> Self {
        let metrics = TokenCacheMetrics::register();
        if !settings.is_enabled() {
            return Self { map: None, metrics };
        }
        let capacity = settings.capacity().min(MAX_CAPACITY) as usize;
        let ways = capacity.min(WAYS);
        let leeway_ms = duration_ms(leeway);
        let map = TokenMap {
            sets: (0..capacity / ways).map(|_| RwLock::default()).collect(),
            ways,
            hash: TailHash::new(),
            leeway_ms,
            longest_ms: duration_ms(access_ttl).saturating_add(leeway_ms),
        };
        Self {
            map: Some(map),
            metrics,
        }
    }
}

impl TokenMap {
    /// The set `hash` falls in (the high bits, spread over the sets without a division).
    #[inline]
    fn set(&self, hash: u64) -> &RwLock<Set> {
        let index = (u128::from(hash) * self.sets.len() as u128) >> 64;
        &self.sets[index as usize]
    }

    /// The verified token equal to `token`, if held and not ended at `now_ms`.
    #[inline]
    fn get(&self, token: &[u8], now_ms: u64) -> Option<Verified> {
        let hash = self.hash.of(token);
        let set = read(self.set(hash));
        let slot = set
            .slots
            .iter()
            .find(|slot| slot.hash == hash && *slot.token == *token)?;
        if now_ms >= slot.ends_ms {
            return None;
        }
        if !slot.used.load(Ordering::Relaxed) {
            slot.used.store(true, Ordering::Relaxed);
        }
        Some(slot.verified.clone())
    }

    /// Holds `verified` for `token`, verified at `now_ms`, in its set's place (see the module
    /// docs); counts what it pushed out.
    fn insert(&self, token: &[u8], verified: Verified, now_ms: u64, metrics: &TokenCacheMetrics) {
        let hash = self.hash.of(token);
        let ends_ms = verified
            .session
            .expires_at_ms()
            .saturating_add(self.leeway_ms)
            .min(now_ms.saturating_add(self.longest_ms));
        let slot = Slot {
            hash,
            token: token.into(),
            verified,
            ends_ms,
            used: AtomicBool::new(false),
        };
        let mut set = write(self.set(hash));
        let place = set
            .slots
            .iter()
            .position(|held| held.hash == hash && *held.token == *token);
        let out = match place {
            // Two misses of one token raced: the second replaces the first.
            Some(at) => Some((std::mem::replace(&mut set.slots[at], slot), None)),
            None if set.slots.len() < self.ways => {
                set.slots.push(slot);
                None
            }
            None => {
                let at = match set.slots.iter().position(|held| now_ms >= held.ends_ms) {
                    Some(at) => at,
                    None => set.victim(),
                };
                let cause = if now_ms >= set.slots[at].ends_ms {
                    Eviction::Expired
                } else {
                    Eviction::Size
                };
                Some((std::mem::replace(&mut set.slots[at], slot), Some(cause)))
            }
        };
        drop(set);
        if let Some((old, cause)) = out {
            if let Some(cause) = cause {
                metrics.evicted(cause);
            }
            drop(old);
        }
    }

    /// How many tokens are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sets.iter().map(|set| read(set).slots.len()).sum()
    }
}

impl Set {
    /// The place a new token takes in a full set: the first one not used since the hand last
    /// passed it, clearing the marks it passes; the hand moves on past it.
    fn victim(&mut self) -> usize {
        let ways = self.slots.len();
        loop {
            let at = self.hand % ways;
            self.hand = (at + 1) % ways;
            if !self.slots[at].used.swap(false, Ordering::Relaxed) {
                return at;
            }
        }
    }
}

/// A shared lock on `set` (nothing panics while one is held, so a poisoned lock is sound).
#[inline]
fn read(set: &RwLock<Set>) -> RwLockReadGuard<'_, Set> {
    set.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(set: &RwLock<Set>) -> RwLockWriteGuard<'_, Set> {
    set.write().unwrap_or_else(PoisonError::into_inner)
}

impl TokenCodec {
    /// Verifies `token` at `now_ms` as [`verify`](Self::verify) does, answering from the cache
    /// of verified tokens when it holds this very token: the time window is checked either way.
    ///
    /// The layer, [`SessionLayer::authenticate`](crate::SessionLayer::authenticate) and
    /// [`SessionManager::verify_access_token`](crate::SessionManager::verify_access_token)
    /// verify through here; the revocation check is theirs, after it.
    #[inline]
    pub(crate) fn verify_cached(&self, token: &[u8], now_ms: u64) -> Result<Session, AuthError> {
        let cache = &self.inner.verified;
        let Some(map) = &cache.map else {
            return self.verify_uncached(token, now_ms);
        };
        if let Some(Verified {
            session,
            not_before_ms,
        }) = map.get(token, now_ms)
        {
            cache.metrics.hit();
            let decoded = Decoded {
                session,
                not_before_ms,
            };
            self.check_time(&decoded, now_ms)?;
            return Ok(decoded.session);
        }
        cache.metrics.miss();
        let decoded = self.decode(token)?;
        self.check_time(&decoded, now_ms)?;
        let verified = Verified {
            session: decoded.session.clone(),
            not_before_ms: decoded.not_before_ms,
        };
        map.insert(token, verified, now_ms, &cache.metrics);
        Ok(decoded.session)
    }

    /// Full verification, no cache.
    fn verify_uncached(&self, token: &[u8], now_ms: u64) -> Result<Session, AuthError> {
        let decoded = self.decode(token)?;
        self.check_time(&decoded, now_ms)?;
        Ok(decoded.session)
    }

    /// How many tokens the cache holds.
    #[cfg(test)]
    pub(crate) fn cached_tokens(&self) -> u64 {
        self.inner
            .verified
            .map
            .as_ref()
            .map_or(0, |map| map.len() as u64)
    }
}

/// The keyed hash of a token's last [`TAIL`] bytes and its length (see the module docs).
struct TailHash {
    keys: [u64; 4],
    /// Tests: every token hashes alike, so only the comparison tells them apart.
    #[cfg(test)]
    collide: bool,
}

impl TailHash {
    fn new() -> Self {
        let random: [u8; 32] = crate::session::random_bytes();
        Self {
            keys: std::array::from_fn(|i| word(&random[i * 8..i * 8 + 8])),
            #[cfg(test)]
            collide: tests::COLLIDE.get(),
        }
    }

    #[inline]
    fn of(&self, token: &[u8]) -> u64 {
        #[cfg(test)]
        if self.collide {
            return 0;
        }
        let mut tail = [0u8; TAIL];
        let from = token.len().saturating_sub(TAIL);
        tail[TAIL - (token.len() - from)..].copy_from_slice(&token[from..]);
        let [k0, k1, k2, k3] = self.keys;
        let mixed = folded_multiply(word(&tail[..8]) ^ k0, word(&tail[8..]) ^ k1);
        folded_multiply(mixed ^ k2, token.len() as u64 ^ k3)
    }
}

/// Eight bytes as a number.
#[inline]
fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("eight bytes"))
}

/// The two halves of the 128-bit product, folded: every input bit reaches most output bits.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock as _, ManualClock};
    use crate::config::{SessionRules, TokenCacheSettings, TokenSettings};
    use crate::session::SessionId;

    thread_local! {
        /// Set while a test builds a codec whose cache hashes every token alike.
        pub(super) static COLLIDE: Cell<bool> = const { Cell::new(false) };
    }

    const NOW_MS: u64 = 1_800_000_000_000;
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config() -> TokenSettings {
        TokenSettings::new(SECRET)
            .unwrap()
            .with_leeway(Duration::from_secs(30))
    }

    /// A codec of `tokens` whose access tokens live an hour.
    fn codec_with(tokens: TokenSettings) -> (TokenCodec, ManualClock) {
        let clock = ManualClock::new(NOW_MS);
        let rules = SessionRules::default().with_access_token_ttl(Duration::from_secs(3600));
        let codec = TokenCodec::with_clock(&tokens, &rules, Arc::new(clock.clone())).unwrap();
        (codec, clock)
    }

    fn codec() -> (TokenCodec, ManualClock) {
        codec_with(config())
    }

    fn roles() -> Vec<String> {
        vec!["user".to_owned(), "admin".to_owned()]
    }

    #[test]
    fn a_hit_returns_the_session_a_fresh_verify_returns() {
        let (codec, clock) = codec();
        let sid = SessionId::random();
        let token = codec.issue("alice", sid, &roles()).token;
        let now = clock.now_ms();
        let first = codec.verify_cached(token.as_bytes(), now).unwrap();
        assert_eq!(codec.cached_tokens(), 1);
        let hit = codec.verify_cached(token.as_bytes(), now).unwrap();
        // The very session that was stored: shared, not rebuilt.
        assert_eq!(hit.user_id().as_ptr(), first.user_id().as_ptr());
        let fresh = codec.decode(token.as_bytes()).unwrap().session;
        assert_eq!(hit.user_id(), fresh.user_id());
        assert_eq!(hit.session_id(), fresh.session_id());
        assert_eq!(hit.session_id(), sid);
        assert_eq!(
            hit.roles().collect::<Vec<_>>(),
            fresh.roles().collect::<Vec<_>>()
        );
        assert_eq!(hit.issued_at(), fresh.issued_at());
        assert_eq!(hit.expires_at(), fresh.expires_at());
        assert_eq!(codec.cached_tokens(), 1);
    }

    #[test]
    fn clones_of_a_codec_share_its_cache() {
        let (codec, clock) = codec();
        let token = codec.issue("alice", SessionId::random(), &[]).token;
        let first = codec
            .verify_cached(token.as_bytes(), clock.now_ms())
            .unwrap();
        let clone = codec.clone();
        let hit = clone
            .verify_cached(token.as_bytes(), clock.now_ms())
            .unwrap();
        assert_eq!(hit.user_id().as_ptr(), first.user_id().as_ptr());
    }

    #[test]
    fn an_expired_token_is_refused_on_a_hit() {
        let (codec, clock) = codec();
        let token = codec.issue("alice", SessionId::random(), &[]).token;
        codec
            .verify_cached(token.as_bytes(), clock.now_ms())
            .unwrap();
        assert_eq!(codec.cached_tokens(), 1);
        // Within the leeway after exp: still good.
        clock.advance(Duration::from_secs(3600 + 29));
        assert!(
            codec
                .verify_cached(token.as_bytes(), clock.now_ms())
                .is_ok()
        );
        clock.advance(Duration::from_secs(1));
        // The entry has ended with its token: verification in full refuses it, and the entry
        // stays until a new token takes its place.
        assert_eq!(codec.cached_tokens(), 1);
        assert_eq!(
            codec.verify_cached(token.as_bytes(), clock.now_ms()).err(),
            Some(AuthError::Expired)
        );
    }

    /// A token of this codec's key with these claims (the codec never issues an `nbf`).
    fn signed(codec: &TokenCodec, claims: &serde_json::Value) -> String {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use hmac::{KeyInit, Mac};
        let mut token = codec.inner.header_b64.clone();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut token);
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
        token
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_on_a_hit() {
        let (codec, clock) = codec();
        let now_secs = NOW_MS / 1000;
        let token = signed(
            &codec,
            &serde_json::json!({
                "sub": "alice", "sid": SessionId::random().to_string(), "jti": "j",
                "iat": now_secs, "exp": now_secs + 600, "nbf": now_secs + 20,
            }),
        );
        // nbf 20 s ahead, inside the 30 s leeway: valid, and cached.
        assert!(
            codec
                .verify_cached(token.as_bytes(), clock.now_ms())
                .is_ok()
        );
        assert_eq!(codec.cached_tokens(), 1);
        // The clock steps back a minute: nbf is now beyond the leeway, and the hit says so.
        clock.set(NOW_MS - 60_000);
        assert_eq!(
            codec.verify_cached(token.as_bytes(), clock.now_ms()).err(),
            Some(AuthError::NotYetValid)
        );
        assert_eq!(codec.cached_tokens(), 1);
    }

    #[test]
    fn an_entry_ends_with_its_token() {
        let (codec, clock) = codec();
        let map = codec.inner.verified.map.as_ref().unwrap();
        let metrics = TokenCacheMetrics::default();
        let held_until = |exp_ms: u64| {
            let token = format!("token-{exp_ms}");
            let session = Session::new("alice", std::iter::empty(), SessionId::random(), 0, exp_ms);
            let verified = Verified {
                session,
                not_before_ms: None,
            };
            map.insert(token.as_bytes(), verified, NOW_MS, &metrics);
            let answers = |at_ms: u64| map.get(token.as_bytes(), at_ms).is_some();
            // The last millisecond it answers.
            let (mut lo, mut hi) = (NOW_MS, NOW_MS + 10_000_000);
            assert!(answers(lo) || exp_ms + 30_000 <= NOW_MS);
            while lo + 1 < hi {
                let mid = (lo + hi) / 2;
                if answers(mid) { lo = mid } else { hi = mid }
            }
            hi - NOW_MS
        };
        assert_eq!(clock.now_ms(), NOW_MS);
        // exp plus the 30 s leeway.
        assert_eq!(held_until(NOW_MS + 10_000), 40_000);
        assert_eq!(held_until(NOW_MS - 10_000), 20_000);
        // A far exp is held no longer than one token lifetime (an hour) plus the leeway.
        assert_eq!(held_until(u64::MAX), 3_630_000);
    }

    #[test]
    fn the_tokens_in_use_survive_a_flood_of_new_ones() {
        let (codec, clock) = codec_with(
            config().with_verified_cache(TokenCacheSettings::default().with_capacity(64)),
        );
        let now = clock.now_ms();
        let hot: Vec<String> = (0..8)
            .map(|i| {
                codec
                    .issue(&format!("hot{i}"), SessionId::random(), &[])
                    .token
            })
            .collect();
        let first: Vec<Session> = hot
            .iter()
            .map(|t| codec.verify_cached(t.as_bytes(), now).unwrap())
            .collect();
        for i in 0..2_000 {
            let cold = codec
                .issue(&format!("cold{i}"), SessionId::random(), &[])
                .token;
            codec.verify_cached(cold.as_bytes(), now).unwrap();
            // The hot tokens keep being used between the cold ones.
            let token = &hot[i % hot.len()];
            codec.verify_cached(token.as_bytes(), now).unwrap();
        }
        assert!(codec.cached_tokens() <= 64);
        let kept = hot
            .iter()
            .zip(&first)
            .filter(|(t, s)| {
                let again = codec.verify_cached(t.as_bytes(), now).unwrap();
                again.user_id().as_ptr() == s.user_id().as_ptr()
            })
            .count();
        // Without the CLOCK's second chance, a set's hand would push each hot token out about
        // once per eight cold ones in its set.
        assert!(
            kept >= 6,
            "only {kept} of 8 tokens in use survived the flood"
        );
    }

    #[test]
    fn invalid_tokens_never_enter() {
        let (codec, clock) = codec();
        let (other, _) =
            codec_with(TokenSettings::new("another-secret-another-secret-another!").unwrap());
        // Issued an hour and a half ago: expired beyond the leeway.
        clock.set(NOW_MS - 5_400_000);
        let expired = codec.issue("old", SessionId::random(), &[]).token;
        clock.set(NOW_MS);
        for i in 0..500 {
            let good = codec
                .issue(&format!("user{i}"), SessionId::random(), &[])
                .token;
            let (signed, signature) = good.rsplit_once('.').unwrap();
            let flipped = if signature.ends_with('A') { 'B' } else { 'A' };
            let tampered = format!("{signed}.{}{flipped}", &signature[..signature.len() - 1]);
            let foreign = other
                .issue(&format!("user{i}"), SessionId::random(), &[])
                .token;
            for bad in [
                tampered.as_str(),
                foreign.as_str(),
                expired.as_str(),
                signed,
                "garbage",
                "a.b.c",
                "",
            ] {
                assert!(codec.verify_cached(bad.as_bytes(), clock.now_ms()).is_err());
            }
        }
        assert_eq!(codec.cached_tokens(), 0);
    }

    #[test]
    fn a_flood_of_valid_tokens_stays_within_the_capacity() {
        let (codec, clock) = codec_with(
            config().with_verified_cache(TokenCacheSettings::default().with_capacity(100)),
        );
        for i in 0..3_000 {
            let token = codec
                .issue(&format!("user{i}"), SessionId::random(), &[])
                .token;
            codec
                .verify_cached(token.as_bytes(), clock.now_ms())
                .unwrap();
        }
        let held = codec.cached_tokens();
        assert!(held <= 100, "{held} entries for a capacity of 100");
        assert!(held > 0);
    }

    #[test]
    fn tokens_with_the_same_hash_are_never_confused() {
        COLLIDE.set(true);
        let (codec, clock) = codec();
        COLLIDE.set(false);
        let now = clock.now_ms();
        let user_of = |token: &str| {
            let session = codec.verify_cached(token.as_bytes(), now).unwrap();
            session.user_id().to_owned()
        };
        // Same length, same hash: only the comparison of the whole token tells them apart.
        let alice = codec.issue("alice", SessionId::random(), &[]).token;
        let bobby = codec.issue("bobby", SessionId::random(), &[]).token;
        assert_eq!(alice.len(), bobby.len());
        assert_eq!(user_of(&alice), "alice");
        assert_eq!(user_of(&bobby), "bobby");
        assert_eq!(codec.cached_tokens(), 2);
        for _ in 0..3 {
            assert_eq!(user_of(&alice), "alice");
            assert_eq!(user_of(&bobby), "bobby");
        }
        // Alice's claims under Bob's signature: same hash as both, equal to neither.
        let (alice_signed, _) = alice.rsplit_once('.').unwrap();
        let (_, bobby_signature) = bobby.rsplit_once('.').unwrap();
        let spliced = format!("{alice_signed}.{bobby_signature}");
        assert_eq!(
            codec.verify_cached(spliced.as_bytes(), now).err(),
            Some(AuthError::InvalidSignature)
        );
        assert_eq!(codec.cached_tokens(), 2);
    }

    #[test]
    fn the_hash_reads_the_signature_and_the_length() {
        let hash = TailHash::new();
        let token = |s: &str| hash.of(s.as_bytes());
        assert_eq!(
            token("header.payload.signature"),
            token("header.payload.signature")
        );
        assert_ne!(
            token("header.payload.signature"),
            token("header.payload.signaturf")
        );
        // Equal tails, different lengths.
        let tail = "x".repeat(TAIL);
        assert_ne!(token(&format!("a{tail}")), token(&format!("ab{tail}")));
        // Shorter than the tail.
        assert_ne!(token("a.b.c"), token("a.b.d"));
    }

    /// Real tokens spread over the sets as random ones would: 10 000 tokens over 1 250 sets
    /// (the default capacity) put 8 in a set on average, and no set near 3 times that.
    #[test]
    fn real_tokens_spread_over_the_sets() {
        let (codec, _) = codec();
        let map = codec.inner.verified.map.as_ref().unwrap();
        assert_eq!(map.sets.len(), 1_250);
        let mut load = vec![0u32; map.sets.len()];
        for i in 0..10_000 {
            let token = codec
                .issue(&format!("user{i}"), SessionId::random(), &[])
                .token;
            let set = map.set(map.hash.of(token.as_bytes()));
            let index = map.sets.iter().position(|s| std::ptr::eq(s, set)).unwrap();
            load[index] += 1;
        }
        let fullest = *load.iter().max().unwrap();
        assert!(fullest <= 24, "a set drew {fullest} of 10 000 tokens");
    }

    #[test]
    fn off_means_no_entries() {
        let (codec, clock) = codec_with(
            config().with_verified_cache(TokenCacheSettings::default().with_capacity(0)),
        );
        let token = codec.issue("alice", SessionId::random(), &[]).token;
        let first = codec
            .verify_cached(token.as_bytes(), clock.now_ms())
            .unwrap();
        let second = codec
            .verify_cached(token.as_bytes(), clock.now_ms())
            .unwrap();
        assert_ne!(first.user_id().as_ptr(), second.user_id().as_ptr());
        assert!(codec.inner.verified.map.is_none());
        assert_eq!(codec.cached_tokens(), 0);
        assert_eq!(second.user_id(), "alice");
    }
}

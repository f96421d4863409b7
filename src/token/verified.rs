//! The cache of verified tokens in front of verification, as Envoy's `jwt_authn` keeps one
//! (`jwt_cache_config`): a token seen again is not verified again.
//!
//! - **Keyed by the whole token.** A keyed hash finds the entry and the map compares the whole
//!   stored token with the presented one, byte for byte, before it answers: a hash match alone is
//!   never a pass. The hash reads only the token's last [`TAIL`] bytes, which are its signature:
//!   for every token that can be in the cache they are already a MAC or signature over the rest,
//!   as good as random, so hashing 400 bytes would spread the entries no better, at ten times
//!   the cost. The hash key is random per process (std's SipHash keys), so nobody outside can
//!   aim tokens at one bucket; and if someone did, a collision costs a comparison, never a
//!   wrong answer.
//! - **Only tokens that verified enter**, and only while inside their time window: an invalid
//!   or expired token never takes a place.
//! - **Holds the verified [`Session`]**, shared: a hit clones one reference count, nothing is
//!   parsed or allocated.
//! - **`exp` and `nbf` are checked on every hit** against the codec's clock, with the leeway,
//!   exactly as on a miss; the revocation check comes after, in the caller, on every request.
//! - **An entry never outlives its token**: each one expires at its `exp` plus the leeway (and
//!   no later than one access-token lifetime plus leeway from its insertion).
//! - **Bounded**: at most [`TokenCacheSettings::capacity`] entries; a flood of distinct valid
//!   tokens evicts (moka's TinyLFU admission keeps the tokens in use), it never grows memory.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use crate::clock::{SharedClock, duration_ms};
use crate::config::{SessionConfig, TokenCacheSettings};
use crate::error::AuthError;
use crate::session::Session;
use crate::telemetry::{Eviction, TokenCacheMetrics};

use super::{Decoded, TokenCodec};

/// How many bytes at the end of a token the hash reads: inside the signature for every
/// algorithm (an HS256 signature is 43 characters, the shortest).
const TAIL: usize = 32;

/// What a verified token left behind: all a hit needs to answer.
#[derive(Clone)]
struct Verified {
    session: Session,
    /// `nbf`, in milliseconds since the epoch.
    not_before_ms: Option<u64>,
}

type TokenMap = Cache<Box<[u8]>, Verified, TailHash>;

/// The cache of one codec (and its clones); `None` inside when turned off.
pub(crate) struct VerifiedCache {
    map: Option<TokenMap>,
    metrics: TokenCacheMetrics,
}

impl VerifiedCache {
    /// The cache `config` asks for, its entries expiring on `clock`.
    pub(super) fn new(config: &SessionConfig, clock: &SharedClock) -> Self {
        let metrics = TokenCacheMetrics::register();
        let settings: &TokenCacheSettings = config.token_cache();
        if !settings.is_enabled() {
            return Self { map: None, metrics };
        }
        let leeway_ms = duration_ms(config.tokens().leeway());
        let lifetime = ExpiresWithToken {
            clock: clock.clone(),
            leeway_ms,
            longest_ms: duration_ms(config.rules().access_token_ttl()).saturating_add(leeway_ms),
        };
        let counted = metrics.clone();
        let map = Cache::builder()
            .max_capacity(settings.capacity())
            .expire_after(lifetime)
            .eviction_listener(move |_, _, cause| match cause {
                RemovalCause::Size => counted.evicted(Eviction::Size),
                RemovalCause::Expired => counted.evicted(Eviction::Expired),
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build_with_hasher(TailHash::new());
        Self {
            map: Some(map),
            metrics,
        }
    }
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
        }) = map.get(token)
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
        map.insert(
            token.into(),
            Verified {
                session: decoded.session.clone(),
                not_before_ms: decoded.not_before_ms,
            },
        );
        Ok(decoded.session)
    }

    /// Full verification, no cache.
    fn verify_uncached(&self, token: &[u8], now_ms: u64) -> Result<Session, AuthError> {
        let decoded = self.decode(token)?;
        self.check_time(&decoded, now_ms)?;
        Ok(decoded.session)
    }

    /// How many tokens the cache holds, once its pending work is done.
    #[cfg(test)]
    pub(crate) fn cached_tokens(&self) -> u64 {
        self.inner.verified.map.as_ref().map_or(0, |map| {
            map.run_pending_tasks();
            map.entry_count()
        })
    }
}

/// Each entry lives until its token's `exp` plus the leeway, measured on the codec's clock when
/// it is written, and never longer than one access-token lifetime plus leeway.
struct ExpiresWithToken {
    clock: SharedClock,
    leeway_ms: u64,
    longest_ms: u64,
}

impl Expiry<Box<[u8]>, Verified> for ExpiresWithToken {
    fn expire_after_create(&self, _: &Box<[u8]>, value: &Verified, _: Instant) -> Option<Duration> {
        let ends_ms = value.session.expires_at_ms().saturating_add(self.leeway_ms);
        let left_ms = ends_ms.saturating_sub(self.clock.now_ms());
        Some(Duration::from_millis(left_ms.min(self.longest_ms)))
    }
}

/// SipHash-1-3 with per-process random keys, over the last [`TAIL`] bytes (see the module docs).
#[derive(Clone)]
struct TailHash {
    keys: RandomState,
    /// Tests: every token hashes alike, so only the comparison tells them apart.
    #[cfg(test)]
    collide: bool,
}

impl TailHash {
    fn new() -> Self {
        Self {
            keys: RandomState::new(),
            #[cfg(test)]
            collide: tests::COLLIDE.get(),
        }
    }
}

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    #[inline]
    fn build_hasher(&self) -> TailHasher {
        TailHasher {
            inner: self.keys.build_hasher(),
            #[cfg(test)]
            collide: self.collide,
        }
    }
}

struct TailHasher {
    inner: std::hash::DefaultHasher,
    #[cfg(test)]
    collide: bool,
}

impl Hasher for TailHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.inner.write(&bytes[bytes.len().saturating_sub(TAIL)..]);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.inner.write_usize(n);
    }

    #[inline]
    fn finish(&self) -> u64 {
        #[cfg(test)]
        if self.collide {
            return 0;
        }
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock as _, ManualClock};
    use crate::session::SessionId;

    thread_local! {
        /// Set while a test builds a codec whose cache hashes every token alike.
        pub(super) static COLLIDE: Cell<bool> = const { Cell::new(false) };
    }

    const NOW_MS: u64 = 1_800_000_000_000;
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config() -> SessionConfig {
        SessionConfig::new(SECRET)
            .unwrap()
            .access_token_ttl(Duration::from_secs(3600))
            .leeway(Duration::from_secs(30))
    }

    fn codec_with(config: SessionConfig) -> (TokenCodec, ManualClock) {
        let clock = ManualClock::new(NOW_MS);
        let codec = TokenCodec::with_clock(&config, Arc::new(clock.clone())).unwrap();
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
        // The entry is still there (moka's own clock has not moved): the refusal is the hit's.
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
    fn an_entry_expires_with_its_token() {
        let clock = ManualClock::new(NOW_MS);
        let lifetime = ExpiresWithToken {
            clock: Arc::new(clock.clone()),
            leeway_ms: 30_000,
            longest_ms: 3_630_000,
        };
        let entry = |exp_ms: u64| Verified {
            session: Session::new("alice", std::iter::empty(), SessionId::random(), 0, exp_ms),
            not_before_ms: None,
        };
        let ttl = |exp_ms| {
            lifetime.expire_after_create(&Box::from(&b"t"[..]), &entry(exp_ms), Instant::now())
        };
        assert_eq!(ttl(NOW_MS + 10_000), Some(Duration::from_secs(40)));
        // Past exp but inside the leeway: what is left of the leeway.
        assert_eq!(ttl(NOW_MS - 10_000), Some(Duration::from_secs(20)));
        assert_eq!(ttl(NOW_MS - 60_000), Some(Duration::ZERO));
        // A far exp is held no longer than one token lifetime.
        assert_eq!(ttl(u64::MAX), Some(Duration::from_millis(3_630_000)));
    }

    #[test]
    fn invalid_tokens_never_enter() {
        let (codec, clock) = codec();
        let (other, _) = codec_with(
            SessionConfig::new("another-secret-another-secret-another!")
                .unwrap()
                .access_token_ttl(Duration::from_secs(3600)),
        );
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
        let (codec, clock) = codec_with(config().verified_cache_capacity(100));
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
        let token = |s: &str| hash.hash_one(s.as_bytes());
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
    }

    #[test]
    fn off_means_no_entries() {
        let (codec, clock) = codec_with(config().verified_cache_capacity(0));
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

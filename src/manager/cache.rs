//! The caches of the request path, and the one property they keep together.
//!
//! **A revocation known to this process is never answered active.** Known means: made through
//! this process's [`SessionManager`](crate::SessionManager), pushed by the store
//! ([`RevocationSink`]), or read from the store by a lookup. Everything below is there to make a
//! repeat request nearly free without breaking that sentence; a change to any of the three tiers
//! is checked against it.
//!
//! | tier | where | holds | answers |
//! |---|---|---|---|
//! | verified tokens | `token::verified` (inside the [`TokenCodec`](crate::token::TokenCodec)) | a token that verified, with its [`Session`] | "this token verified": signature and claims, never revocation (`exp`/`nbf` are checked on every hit) |
//! | revocation cache | this module, [`RevocationCache`] | per session: active since a read, or revoked | "is this session revoked?", from memory or the store |
//! | status memo | `session::memo`, [`StatusMemo`] (one word on the cached [`Session`]) | a packed copy of this cache's answer and the shard's revocation count when it was given | the same question, without a hash lookup, while the count has not moved |
//!
//! They sit in three modules because the layering asks it: tokens know nothing of stores (so the
//! verified-token tier lives with the codec and holds no revocation state), a session carries its
//! memo word (so the word's type lives with [`Session`]), and only this module, above the store,
//! decides what the word means. The first tier never answers the question the property is about;
//! the last two answer it only from state this module owns.
//!
//! How the property is kept:
//! - A revocation is written here before the call that made it returns, and bumps its shard's
//!   revocation count ([`Epochs`]), which voids every memo of that shard at once.
//! - A lookup caches "active" only if no revocation was delivered for its shard after the lookup
//!   started ([`ReadStart`]): a store read that raced a revocation is answered once, never kept.
//! - A memo is read only by the cache that wrote it, and lives no longer than its entry.
//!
//! What proves it:
//! - the shuttle model in `cache/tests.rs` (`shuttle_model`): every interleaving of a lookup, a
//!   delivered revocation and a memo read, 2 000 random and 2 000 PCT schedules per protocol;
//!   `a_delivered_revocation_wins_under_any_interleaving` and
//!   `a_memo_never_outlives_a_delivered_revocation`, and the broken protocols they must catch
//!   (`the_rule_without_the_revocation_count_is_caught`,
//!   `a_memo_protocol_missing_either_order_is_caught`);
//! - the racing tests beside it (`a_pushed_revocation_wins_over_an_in_flight_lookup`, its
//!   full-cache variant, `every_revocation_voids_the_memo`,
//!   `a_memo_is_read_only_by_the_cache_that_wrote_it`, and the refresh and login races);
//! - `layer::tests::a_revoked_session_is_refused_on_a_cache_hit` (all three tiers at once);
//! - the model test `tests/it/model`, whose concurrent run holds every store to "a revoked
//!   session is refused within the bound" against a reference implementation.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use rustc_hash::FxBuildHasher;

use crate::clock::SharedClock;
use crate::revocation::{Checked, RevocationCheck, SessionStatus};
use crate::session::{Session, SessionId, StatusMemo};
use crate::store::{RevocationEvent, RevocationSink, SessionStore};

mod epochs;
use epochs::Epochs;

/// The future of a revocation lookup that missed the cache. Boxed: it only exists on a miss.
pub(crate) type RevocationFuture = Pin<Box<dyn Future<Output = SessionStatus> + Send>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Live, as a store read that started at `read_at` said (or a login or refresh made then).
    /// The entry's lifetime counts from `read_at`, not from the write: a slow read does not
    /// stretch how long its answer is served.
    Active {
        read_at: Instant,
    },
    Revoked,
}

/// How long each kind of answer may be served from memory.
struct Lifetimes {
    active: Duration,
    revoked: Duration,
}

impl Expiry<SessionId, Entry> for Lifetimes {
    fn expire_after_create(&self, _: &SessionId, value: &Entry, now: Instant) -> Option<Duration> {
        Some(self.ttl(*value, now))
    }

    fn expire_after_update(
        &self,
        _: &SessionId,
        value: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl(*value, now))
    }
}

impl Lifetimes {
    /// How much longer `entry`, written at `now`, may be served.
    fn ttl(&self, entry: Entry, now: Instant) -> Duration {
        match entry {
            Entry::Active { read_at } => self
                .active
                .saturating_sub(now.saturating_duration_since(read_at)),
            Entry::Revoked => self.revoked,
        }
    }
}

/// How many low bits of a memo word hold the shard's revocation count (the rest hold the
/// deadline). A memo could only be fooled by exactly a multiple of 2^24 revocations in one
/// shard between its write and a read, all within one revocation TTL.
const MEMO_EPOCH_BITS: u32 = 24;
const MEMO_EPOCH_MASK: u64 = (1 << MEMO_EPOCH_BITS) - 1;

/// The word this cache leaves in a session's [`StatusMemo`] when it serves "active" from an
/// entry: "active until `deadline_ms` (milliseconds since the cache's `base`), as long as the
/// session's shard of the revocation count is still `epoch`". The next request with the same
/// token (a hit in the cache of verified tokens hands out the same session) is answered from
/// the word, without a lookup: one lookup serves both the token and its revocation status.
///
/// Why a revocation still wins: the word's count is taken *before* the entry is read, and every
/// revocation moves the count both before and after it writes the cache (see
/// [`Inner::revoke`]). A word written from an entry read before the revocation's cache write
/// carries a count the second move has left behind; a word whose count was taken after that
/// move was written from an entry read after the cache write, which said "revoked", so no word
/// was written. The deadline is the entry's own: an answer read at `read_at` is served until
/// `read_at` plus the TTL, from the entry or from the word, never longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemoWord {
    deadline_ms: u64,
    epoch: u64,
}

impl MemoWord {
    /// The packed word; `None` when the deadline does not fit its 40 bits (34 years).
    fn pack(self) -> Option<u64> {
        (self.deadline_ms < 1 << (64 - MEMO_EPOCH_BITS))
            .then_some(self.deadline_ms << MEMO_EPOCH_BITS | (self.epoch & MEMO_EPOCH_MASK))
    }

    fn unpack(word: u64) -> Self {
        Self {
            deadline_ms: word >> MEMO_EPOCH_BITS,
            epoch: word & MEMO_EPOCH_MASK,
        }
    }

    /// Whether the word still says "active" at `now_ms` with the shard's count at `epoch`. A
    /// fresh memo (0) never does.
    fn active(self, now_ms: u64, epoch: u64) -> bool {
        now_ms < self.deadline_ms && self.epoch == epoch & MEMO_EPOCH_MASK
    }
}

/// Tells each cache's memo words from another's: two checks may share a codec.
fn next_cache_id() -> NonZeroU64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NonZeroU64::new(NEXT.fetch_add(1, Ordering::Relaxed)).expect("counted up from 1")
}

/// When a store operation that may find a session live began: see [`RevocationCache::begin`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActiveSince(ReadStart);

/// When a store read about a session started, and its shard's revocation count then.
#[derive(Debug, Clone, Copy)]
struct ReadStart {
    at: Instant,
    epoch: u64,
}

struct Inner {
    // Session ids are 128 random bits minted by this server, looked up only after the token
    // naming them verified: Fx (one multiply) rather than SipHash on the hot path.
    cache: Cache<SessionId, Entry, FxBuildHasher>,
    epochs: Epochs,
    active_ttl: Duration,
    store: Arc<dyn SessionStore>,
    clock: SharedClock,
    fail_open: bool,
    /// Whose words are in a session's [`StatusMemo`].
    id: NonZeroU64,
    /// What memo deadlines count from.
    base: Instant,
}

/// Answers "is this session revoked?" from memory when it can, from the store when it must.
///
/// - A "not revoked" answer is kept for the configured
///   [`RevocationCacheSettings::with_ttl`](crate::config::RevocationCacheSettings::with_ttl) (1 s by default),
///   counted from when the store read started: that is the longest a revocation made by
///   *another* instance can go unnoticed here.
/// - A revocation wins. Once one is delivered (pushed by the store, or a resync after pushes
///   may have been lost), no store read that started before it is cached, even when the
///   revocation itself has already left the cache again.
/// - Revocations made through this process's [`SessionManager`](crate::SessionManager) are
///   written into the cache at once, so they are refused on the very next request.
/// - A "revoked" answer is kept for the access-token lifetime plus leeway, after which no token
///   of the session can verify anyway.
/// - On a miss the store is asked. When it cannot be reached the request gets 503 (fail closed)
///   unless [`fail_open`](crate::config::RevocationCacheSettings::with_fail_open) is set.
#[derive(Clone)]
pub struct RevocationCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for RevocationCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationCache")
            .field("entries", &self.inner.cache.entry_count())
            .field("store", &self.inner.store)
            .field("fail_open", &self.inner.fail_open)
            .finish()
    }
}

impl Inner {
    /// Marks the start of a store read (or of a local operation) about `sid`.
    fn begin(&self, sid: SessionId) -> ReadStart {
        let epoch = self.epochs.current(sid);
        ReadStart {
            at: Instant::now(),
            epoch,
        }
    }

    /// Records that a read started at `start` found `sid` live, unless a revocation may have
    /// overtaken it or its answer is already older than the TTL. Returns the answer for the
    /// request that made the read: what the cache holds afterwards, or "active" if nothing.
    fn record_active(&self, sid: SessionId, start: ReadStart) -> Entry {
        let seen = Entry::Active { read_at: start.at };
        self.record(sid, seen, || {
            self.epochs.current(sid) != start.epoch || start.at.elapsed() >= self.active_ttl
        })
    }

    /// Records a revocation of `sid` this cache has been told of. The epoch moves first (see
    /// [`Epochs`]) and again after the write, which voids every memo word written from an
    /// entry read before it (see [`MemoWord`]).
    fn revoke(&self, sid: SessionId) {
        self.epochs.bump(sid);
        self.record(sid, Entry::Revoked, || false);
        self.epochs.bump(sid);
    }

    /// Records that a session was found revoked or gone by a store read, and voids its memo
    /// words.
    fn record_revoked(&self, sid: SessionId) -> Entry {
        let entry = self.record(sid, Entry::Revoked, || false);
        self.epochs.bump(sid);
        entry
    }

    /// Forgets what the cache knows of `sid`: reads in flight are kept out, memo words voided.
    fn forget(&self, sid: SessionId) {
        self.epochs.bump(sid);
        self.cache.invalidate(&sid);
        self.epochs.bump(sid);
    }

    /// Events may have been lost: forget everything, keep every read in flight out, and void
    /// every memo word.
    fn resync(&self) {
        self.epochs.bump_all();
        self.cache.invalidate_all();
        self.epochs.bump_all();
    }

    /// Milliseconds from the cache's base to `at` (0 before it).
    #[inline]
    fn ms_since_base(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.base);
        // No 128-bit division on the hot path; 2^64 ms is beyond any uptime.
        since
            .as_secs()
            .saturating_mul(1_000)
            .saturating_add(u64::from(since.subsec_millis()))
    }

    /// Whether `session`'s memo says "active" for this cache now.
    #[inline]
    fn memo_says_active(&self, session: &Session) -> bool {
        let Some(word) = session.status_memo().read(self.id) else {
            return false;
        };
        let epoch = self.epochs.current(session.session_id());
        MemoWord::unpack(word).active(self.ms_since_base(Instant::now()), epoch)
    }

    /// Leaves on `memo` that an entry read after the shard's count was `epoch` said "active"
    /// from `read_at`.
    #[inline]
    fn remember_active(&self, memo: &StatusMemo, epoch: u64, read_at: Instant) {
        let word = MemoWord {
            deadline_ms: self.ms_since_base(read_at + self.active_ttl),
            epoch,
        };
        if let Some(word) = word.pack() {
            memo.write(self.id, word);
        }
    }

    /// Writes what was learnt about a session, and returns what the cache holds afterwards.
    ///
    /// `Revoked` is sticky: an `Active` never replaces it. Without that, a refresh or a
    /// revocation lookup that read the store just before a logout could write `Active` over the
    /// logout's `Revoked`, and the logged-out session's tokens would pass until the entry
    /// expired. `stale` says whether an `Active` comes too late to be cached; it is asked under
    /// the key's lock. Every write goes through moka's per-key compute, so writes to one
    /// session are serialized and none is lost between the read and the write.
    fn record(&self, sid: SessionId, seen: Entry, stale: impl FnOnce() -> bool) -> Entry {
        let result = self.cache.entry(sid).and_compute_with(|current| {
            match merge(current.map(|e| e.into_value()), seen, stale) {
                Some(write) => Op::Put(write),
                None => Op::Nop,
            }
        });
        match result {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e) => {
                e.into_value()
            }
            _ => seen,
        }
    }
}

/// What to write when `seen` is learnt about a session the cache holds `current` for: `None`
/// keeps `current`. A revocation wins: `Revoked` is never replaced, and an `Active` that is
/// `stale` (a revocation may have overtaken its read, or it is older than the TTL) is not
/// written.
fn merge(current: Option<Entry>, seen: Entry, stale: impl FnOnce() -> bool) -> Option<Entry> {
    match (current, seen) {
        (Some(Entry::Revoked), _) => None,
        (_, Entry::Active { .. }) if stale() => None,
        _ => Some(seen),
    }
}

impl From<Entry> for SessionStatus {
    fn from(entry: Entry) -> Self {
        match entry {
            Entry::Active { .. } => SessionStatus::Active,
            Entry::Revoked => SessionStatus::Revoked,
        }
    }
}

impl RevocationCache {
    pub(crate) fn new(
        store: Arc<dyn SessionStore>,
        clock: SharedClock,
        capacity: u64,
        active_ttl: Duration,
        revoked_ttl: Duration,
        fail_open: bool,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .expire_after(Lifetimes {
                active: active_ttl,
                revoked: revoked_ttl,
            })
            .build_with_hasher(FxBuildHasher);
        Self {
            inner: Arc::new(Inner {
                cache,
                epochs: Epochs::new(),
                active_ttl,
                store,
                clock,
                fail_open,
                id: next_cache_id(),
                base: Instant::now(),
            }),
        }
    }

    /// The start of a store operation that may find `sid` live (a login, a refresh): take it
    /// before the store is asked, and hand it to [`mark_active_since`](Self::mark_active_since)
    /// after, so that a revocation delivered in between wins.
    pub(crate) fn begin(&self, sid: SessionId) -> ActiveSince {
        ActiveSince(self.inner.begin(sid))
    }

    /// Records that a session is live (it was just created or refreshed here by an operation
    /// that began at `since`), unless a revocation may have overtaken it: `Revoked` is sticky,
    /// and a revocation delivered since `since` wins even when it left the cache.
    pub(crate) fn mark_active_since(&self, sid: SessionId, since: ActiveSince) {
        self.inner.record_active(sid, since.0);
    }

    /// Records that a session has been revoked here.
    pub(crate) fn mark_revoked(&self, sid: SessionId) {
        self.inner.revoke(sid);
    }

    /// Forgets what the cache knows about a session, so the next check asks the store. A
    /// lookup of the session already in flight does not cache its answer.
    pub fn invalidate(&self, sid: SessionId) {
        self.inner.forget(sid);
    }

    /// A receiver for the store's revocation events. It holds the cache weakly, so a store
    /// keeping it does not keep the cache (and through it the store) alive.
    pub(crate) fn sink(&self) -> RevocationSink {
        let weak = Arc::downgrade(&self.inner);
        Arc::new(move |event| {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            match event {
                RevocationEvent::Revoked(sid) => inner.revoke(sid),
                RevocationEvent::Resync => inner.resync(),
            }
        })
    }

    /// Asks the store and caches the answer. The answer is the cache's after the merge: a
    /// revocation recorded while the store was being asked wins over what the store said, and
    /// one delivered while it was being asked keeps "active" out of the cache.
    async fn lookup(inner: Arc<Inner>, sid: SessionId) -> SessionStatus {
        let start = inner.begin(sid);
        let now = inner.clock.now_ms();
        // Under a request's deadline (a token route authenticating its caller), no longer.
        let read = crate::deadline::bound(inner.store.get(sid))
            .await
            .unwrap_or(Err(crate::store::StoreError::Timeout));
        match read {
            Ok(Some(record)) if record.revoked_at.is_none() && now < record.expires_at => {
                inner.record_active(sid, start).into()
            }
            Ok(None) => {
                // Ended where this instance did not see it end, or lost by the store.
                crate::telemetry::session_unknown("access", "no_record");
                tracing::debug!(session_id = %sid, "the store has no record of this session: refused as token_revoked");
                inner.record_revoked(sid).into()
            }
            Ok(Some(_)) => inner.record_revoked(sid).into(),
            Err(error) => {
                tracing::warn!(%error, session_id = %sid, fail_open = inner.fail_open, "revocation lookup failed");
                if inner.fail_open {
                    SessionStatus::Active
                } else {
                    SessionStatus::Unavailable
                }
            }
        }
    }

    /// The status of a verified session: from its memo or the cache, or from the store on a
    /// miss (what the layer's check answers).
    pub(crate) async fn status_of(&self, session: &Session) -> SessionStatus {
        match self.check(session) {
            Checked::Ready(status) => status,
            Checked::Pending(lookup) => lookup.await,
        }
    }

    /// The status of a session: from the cache, or from the store on a miss.
    pub async fn status(&self, sid: SessionId) -> SessionStatus {
        match self.inner.cache.get(&sid) {
            Some(Entry::Active { .. }) => SessionStatus::Active,
            Some(Entry::Revoked) => SessionStatus::Revoked,
            None => Self::lookup(self.inner.clone(), sid).await,
        }
    }
}

impl RevocationCheck for RevocationCache {
    type Future = RevocationFuture;

    #[inline]
    fn check(&self, session: &Session) -> Checked<Self::Future> {
        let inner = &*self.inner;
        if inner.memo_says_active(session) {
            return Checked::Ready(SessionStatus::Active);
        }
        let sid = session.session_id();
        // Before the read: see `MemoWord`.
        let epoch = inner.epochs.current(sid);
        match inner.cache.get(&sid) {
            Some(Entry::Active { read_at }) => {
                inner.remember_active(session.status_memo(), epoch, read_at);
                Checked::Ready(SessionStatus::Active)
            }
            Some(Entry::Revoked) => Checked::Ready(SessionStatus::Revoked),
            None => Checked::Pending(Box::pin(Self::lookup(self.inner.clone(), sid))),
        }
    }
}

#[cfg(test)]
mod tests;

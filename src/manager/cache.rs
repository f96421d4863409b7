//! [`RevocationCache`]: the moka cache in front of the store's revocation lookups.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use rustc_hash::FxBuildHasher;

use crate::clock::SharedClock;
use crate::revocation::{Checked, RevocationCheck, SessionStatus};
use crate::session::{Session, SessionId};
use crate::store::{RevocationEvent, RevocationSink, SessionStore};

/// The future of a revocation lookup that missed the cache. Boxed: it only exists on a miss.
pub(crate) type RevocationFuture = Pin<Box<dyn Future<Output = SessionStatus> + Send>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Active,
    Revoked,
}

/// How long each kind of answer may be served from memory.
struct Lifetimes {
    active: Duration,
    revoked: Duration,
}

impl Expiry<SessionId, Entry> for Lifetimes {
    fn expire_after_create(&self, _: &SessionId, value: &Entry, _: Instant) -> Option<Duration> {
        Some(self.ttl(*value))
    }

    fn expire_after_update(
        &self,
        _: &SessionId,
        value: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl(*value))
    }
}

impl Lifetimes {
    fn ttl(&self, entry: Entry) -> Duration {
        match entry {
            Entry::Active => self.active,
            Entry::Revoked => self.revoked,
        }
    }
}

struct Inner {
    // Session ids are 128 random bits minted by this server, looked up only after the token
    // naming them verified: Fx (one multiply) rather than SipHash on the hot path.
    cache: Cache<SessionId, Entry, FxBuildHasher>,
    store: Arc<dyn SessionStore>,
    clock: SharedClock,
    fail_open: bool,
}

/// Answers "is this session revoked?" from memory when it can, from the store when it must.
///
/// - A "not revoked" answer is kept for the configured
///   [`revocation_cache_ttl`](crate::SessionConfig::revocation_cache_ttl) (1 s by default): that
///   is the longest a revocation made by *another* instance can go unnoticed here.
/// - Revocations made through this process's [`SessionManager`](crate::SessionManager) are
///   written into the cache at once, so they are refused on the very next request.
/// - A "revoked" answer is kept for the access-token lifetime plus leeway, after which no token
///   of the session can verify anyway.
/// - On a miss the store is asked. When it cannot be reached the request gets 503 (fail closed)
///   unless [`fail_open`](crate::SessionConfig::fail_open) is set.
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
    /// Writes what was learnt about a session, and returns what the cache holds afterwards.
    ///
    /// `Revoked` is sticky: an `Active` never replaces it. Without that, a refresh or a
    /// revocation lookup that read the store just before a logout could write `Active` over the
    /// logout's `Revoked`, and the logged-out session's tokens would pass until the entry
    /// expired. Every write goes through moka's per-key compute, so writes to one session are
    /// serialized and none is lost between the read and the write.
    fn record(&self, sid: SessionId, seen: Entry) -> Entry {
        let result = self.cache.entry(sid).and_compute_with(|current| {
            match merge(current.map(|e| e.into_value()), seen) {
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
/// keeps `current`. `Revoked` is never replaced.
fn merge(current: Option<Entry>, seen: Entry) -> Option<Entry> {
    match current {
        Some(Entry::Revoked) => None,
        _ => Some(seen),
    }
}

impl From<Entry> for SessionStatus {
    fn from(entry: Entry) -> Self {
        match entry {
            Entry::Active => SessionStatus::Active,
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
                store,
                clock,
                fail_open,
            }),
        }
    }

    /// Records that a session is live (it was just created or refreshed here), unless the
    /// cache already knows it revoked: `Revoked` is sticky.
    pub(crate) fn mark_active(&self, sid: SessionId) {
        self.inner.record(sid, Entry::Active);
    }

    /// Records that a session has been revoked here.
    pub(crate) fn mark_revoked(&self, sid: SessionId) {
        self.inner.record(sid, Entry::Revoked);
    }

    /// Forgets what the cache knows about a session, so the next check asks the store.
    pub fn invalidate(&self, sid: SessionId) {
        self.inner.cache.invalidate(&sid);
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
                RevocationEvent::Revoked(sid) => {
                    inner.record(sid, Entry::Revoked);
                }
                _ => inner.cache.invalidate_all(),
            }
        })
    }

    /// Asks the store and caches the answer. The answer is the cache's after the merge: a
    /// revocation recorded while the store was being asked wins over what the store said.
    async fn lookup(inner: Arc<Inner>, sid: SessionId) -> SessionStatus {
        let now = inner.clock.now_ms();
        match inner.store.get(sid).await {
            Ok(Some(record)) if record.revoked_at.is_none() && now < record.expires_at => {
                inner.record(sid, Entry::Active).into()
            }
            Ok(_) => inner.record(sid, Entry::Revoked).into(),
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

    /// The status of a session: from the cache, or from the store on a miss.
    pub async fn status(&self, sid: SessionId) -> SessionStatus {
        match self.inner.cache.get(&sid) {
            Some(Entry::Active) => SessionStatus::Active,
            Some(Entry::Revoked) => SessionStatus::Revoked,
            None => Self::lookup(self.inner.clone(), sid).await,
        }
    }
}

impl RevocationCheck for RevocationCache {
    type Future = RevocationFuture;

    #[inline]
    fn check(&self, session: &Session) -> Checked<Self::Future> {
        let sid = session.session_id();
        match self.inner.cache.get(&sid) {
            Some(Entry::Active) => Checked::Ready(SessionStatus::Active),
            Some(Entry::Revoked) => Checked::Ready(SessionStatus::Revoked),
            None => Checked::Pending(Box::pin(Self::lookup(self.inner.clone(), sid))),
        }
    }
}

#[cfg(test)]
mod tests;

//! [`RevocationCache`]: the moka cache in front of the store's revocation lookups.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;

use crate::clock::SharedClock;
use crate::revocation::{Checked, RevocationCheck, SessionStatus};
use crate::session::{Session, SessionId};
use crate::store::{RevocationEvent, RevocationSink, SessionStore};

/// The future of a revocation lookup that missed the cache. Boxed: it only exists on a miss.
pub type RevocationFuture = Pin<Box<dyn Future<Output = SessionStatus> + Send>>;

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

/// Session ids are 128 random bits minted by this server and only looked up after the token
/// naming them verified, so their first 64 bits are already a uniform hash; hashing them again
/// (SipHash) would only cost time on the hot path.
#[derive(Clone, Copy, Default)]
pub(crate) struct SessionIdHasher(u64);

impl Hasher for SessionIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

impl BuildHasher for SessionIdHasher {
    type Hasher = SessionIdHasher;
    fn build_hasher(&self) -> SessionIdHasher {
        SessionIdHasher(0)
    }
}

struct Inner {
    cache: Cache<SessionId, Entry, SessionIdHasher>,
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
            .build_with_hasher(SessionIdHasher(0));
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
mod tests {
    //! Logout racing a refresh or a revocation lookup, with the interleaving forced: the store
    //! call of one operation is held open while the other runs to the end, then released. No
    //! loop that "usually" hits the race.

    use std::sync::Mutex;

    use async_trait::async_trait;
    use tokio::sync::oneshot;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{
        CreateOutcome, Lifetimes, MemoryStore, RotateOutcome, RotateRequest, SessionLimit,
        SessionRecord, StoreError,
    };
    use crate::{SessionConfig, SessionError, SessionManager};

    /// Which store call to hold, and the two halves of the hand-off.
    #[derive(Default)]
    struct Gate {
        /// Tells the test the held call has done its store work.
        reached: Option<oneshot::Sender<()>>,
        /// Released by the test when the other operation has finished.
        release: Option<oneshot::Receiver<()>>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Held {
        Get,
        Rotate,
    }

    /// A memory store whose next `get` or `rotate` does its work, then waits for the test.
    #[derive(Default)]
    struct GatedStore {
        inner: MemoryStore,
        gate: Mutex<Option<(Held, Gate)>>,
    }

    impl fmt::Debug for GatedStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("GatedStore")
        }
    }

    impl GatedStore {
        /// Arms the gate for the next `held` call; returns (reached, release).
        fn arm(&self, held: Held) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
            let (reached_tx, reached_rx) = oneshot::channel();
            let (release_tx, release_rx) = oneshot::channel();
            *self.gate.lock().unwrap() = Some((
                held,
                Gate {
                    reached: Some(reached_tx),
                    release: Some(release_rx),
                },
            ));
            (reached_rx, release_tx)
        }

        async fn hold(&self, call: Held) {
            let gate = {
                let mut slot = self.gate.lock().unwrap();
                match slot.as_ref() {
                    Some((held, _)) if *held == call => slot.take().map(|(_, g)| g),
                    _ => None,
                }
            };
            if let Some(mut gate) = gate {
                let _ = gate.reached.take().unwrap().send(());
                let _ = gate.release.take().unwrap().await;
            }
        }
    }

    #[async_trait]
    impl SessionStore for Arc<GatedStore> {
        async fn create(
            &self,
            record: SessionRecord,
            limit: SessionLimit,
            lifetimes: &Lifetimes,
            now: u64,
        ) -> Result<CreateOutcome, StoreError> {
            self.inner.create(record, limit, lifetimes, now).await
        }

        async fn rotate(&self, request: RotateRequest) -> Result<RotateOutcome, StoreError> {
            let out = self.inner.rotate(request).await;
            self.hold(Held::Rotate).await;
            out
        }

        async fn get(&self, sid: SessionId) -> Result<Option<SessionRecord>, StoreError> {
            // The answer is read before the hold: it is what the store said before the logout.
            let out = self.inner.get(sid).await;
            self.hold(Held::Get).await;
            out
        }

        async fn list(&self, user: &str, now: u64) -> Result<Vec<SessionRecord>, StoreError> {
            self.inner.list(user, now).await
        }

        async fn revoke(&self, sid: SessionId, now: u64) -> Result<bool, StoreError> {
            self.inner.revoke(sid, now).await
        }

        async fn revoke_all(&self, user: &str, now: u64) -> Result<Vec<SessionId>, StoreError> {
            self.inner.revoke_all(user, now).await
        }

        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }

        fn kind(&self) -> &'static str {
            "gated"
        }
    }

    fn manager() -> (SessionManager, Arc<GatedStore>) {
        let store = Arc::new(GatedStore::default());
        let config = SessionConfig::new("0123456789abcdef0123456789abcdef").unwrap();
        let manager = SessionManager::builder(config)
            .store(store.clone())
            .clock(ManualClock::new(1_800_000_000_000))
            .build()
            .unwrap();
        (manager, store)
    }

    /// A session whose next access-token check misses the cache and is held open right after
    /// the store answered "active": the manager, the login, the check, and its release.
    async fn lookup_held_open() -> (
        SessionManager,
        crate::TokenPair,
        tokio::task::JoinHandle<Result<Session, crate::AuthError>>,
        oneshot::Sender<()>,
    ) {
        let (manager, store) = manager();
        let login = manager.create_session("alice", &[]).await.unwrap();
        manager.revocation_cache().invalidate(login.session_id);
        let (reached, release) = store.arm(Held::Get);
        let check = tokio::spawn({
            let manager = manager.clone();
            let token = login.access_token.clone();
            async move { manager.verify_access_token(&token).await }
        });
        reached.await.unwrap();
        (manager, login, check, release)
    }

    /// A revocation lookup reads "active", a logout completes, then the lookup writes its
    /// answer. Before the fix it wrote `Active` over the logout's `Revoked`.
    #[tokio::test]
    async fn a_lookup_that_read_active_before_a_logout_does_not_undo_it() {
        let (manager, login, check, release) = lookup_held_open().await;
        assert!(manager.revoke(login.session_id).await.unwrap());
        release.send(()).unwrap();

        let raced = check.await.unwrap();
        assert!(
            raced.is_err(),
            "the lookup answered active after the logout"
        );
        assert!(
            manager
                .verify_access_token(&login.access_token)
                .await
                .is_err(),
            "the logout was undone in the cache"
        );
    }

    /// A refresh rotates in the store, a logout completes, then the refresh marks the session
    /// active. Before the fix the fresh access token of the logged-out session was accepted.
    #[tokio::test]
    async fn a_refresh_finishing_after_a_logout_does_not_undo_it() {
        let (manager, store) = manager();
        let login = manager.create_session("alice", &[]).await.unwrap();

        let (reached, release) = store.arm(Held::Rotate);
        let refresh = tokio::spawn({
            let manager = manager.clone();
            let token = login.refresh_token.clone();
            async move { manager.refresh(&token).await }
        });
        reached.await.unwrap();
        assert!(manager.revoke(login.session_id).await.unwrap());
        release.send(()).unwrap();

        // The rotation happened before the logout, so the refresh itself succeeded ...
        let pair = refresh.await.unwrap().expect("rotated before the logout");
        // ... but the session has ended: none of its tokens pass.
        assert!(
            manager
                .verify_access_token(&pair.access_token)
                .await
                .is_err()
        );
        assert!(
            manager
                .verify_access_token(&login.access_token)
                .await
                .is_err()
        );
        assert!(matches!(
            manager.refresh(&pair.refresh_token).await,
            Err(SessionError::Revoked)
        ));
    }

    /// A revocation pushed by another instance while a lookup is in flight wins too.
    #[tokio::test]
    async fn a_pushed_revocation_wins_over_an_in_flight_lookup() {
        let (manager, login, check, release) = lookup_held_open().await;
        (manager.revocation_cache().sink())(RevocationEvent::Revoked(login.session_id));
        release.send(()).unwrap();
        assert!(check.await.unwrap().is_err());
    }

    /// The protocol of logout, refresh and revocation lookup, explored under shuttle's
    /// schedulers. Each operation is a store step (atomic under the store's lock) followed by
    /// a cache write (atomic per key, as moka's compute is), with the crate's own [`merge`]
    /// deciding the write. Shuttle tries the interleavings that matter: a store step before the
    /// logout and its cache write after it.
    mod shuttle_model {
        use std::sync::Arc;

        use shuttle::sync::Mutex;
        use shuttle::sync::atomic::{AtomicBool, Ordering};
        use shuttle::thread;

        use super::super::{Entry, merge};

        struct World {
            /// The store: is the session live?
            live: Mutex<bool>,
            /// The cache entry of that session.
            cache: Mutex<Option<Entry>>,
            logged_out: AtomicBool,
        }

        fn record(world: &World, seen: Entry, merge: fn(Option<Entry>, Entry) -> Option<Entry>) {
            let mut entry = world.cache.lock().unwrap();
            if let Some(write) = merge(*entry, seen) {
                *entry = Some(write);
            }
        }

        /// A status check as the layer makes it: the cache, or on a miss the store then the
        /// cache write.
        fn status(world: &World, merge: fn(Option<Entry>, Entry) -> Option<Entry>) -> Entry {
            if let Some(entry) = *world.cache.lock().unwrap() {
                return entry;
            }
            let seen = if *world.live.lock().unwrap() {
                Entry::Active
            } else {
                Entry::Revoked
            };
            record(world, seen, merge);
            world.cache.lock().unwrap().unwrap_or(seen)
        }

        fn scenario(merge: fn(Option<Entry>, Entry) -> Option<Entry>) {
            let world = Arc::new(World {
                live: Mutex::new(true),
                cache: Mutex::new(None),
                logged_out: AtomicBool::new(false),
            });
            let refresh = {
                let world = world.clone();
                thread::spawn(move || {
                    let rotated = *world.live.lock().unwrap();
                    if rotated {
                        record(&world, Entry::Active, merge);
                    }
                })
            };
            let lookup = {
                let world = world.clone();
                thread::spawn(move || {
                    status(&world, merge);
                })
            };
            let logout = {
                let world = world.clone();
                thread::spawn(move || {
                    *world.live.lock().unwrap() = false;
                    record(&world, Entry::Revoked, merge);
                    world.logged_out.store(true, Ordering::SeqCst);
                })
            };
            // A request that arrives at any time: once the logout has returned, it must be
            // refused, whatever the other two are doing.
            let request = {
                let world = world.clone();
                thread::spawn(move || {
                    for _ in 0..3 {
                        if world.logged_out.load(Ordering::SeqCst) {
                            assert_eq!(status(&world, merge), Entry::Revoked, "logout undone");
                        }
                        thread::yield_now();
                    }
                })
            };
            for t in [refresh, lookup, logout, request] {
                t.join().unwrap();
            }
            assert_eq!(status(&world, merge), Entry::Revoked, "logout undone");
        }

        #[test]
        fn a_logout_is_never_undone_under_any_interleaving() {
            shuttle::check_random(|| scenario(merge), 2_000);
            shuttle::check_pct(|| scenario(merge), 2_000, 3);
        }

        /// The model can fail: the merge of the old code (always write) is caught.
        #[test]
        fn the_old_unconditional_write_is_caught() {
            fn always(_: Option<Entry>, seen: Entry) -> Option<Entry> {
                Some(seen)
            }
            let caught = std::panic::catch_unwind(|| {
                shuttle::check_random(|| scenario(always), 2_000);
            });
            assert!(caught.is_err(), "shuttle missed the race of the old code");
        }
    }
}

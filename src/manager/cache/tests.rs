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
use crate::{NO_ROLES, SessionConfig, SessionError, SessionManager};

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
    tokio::task::JoinHandle<Result<Session, crate::error::AuthError>>,
    oneshot::Sender<()>,
) {
    let (manager, store) = manager();
    let login = manager.create_session("alice", NO_ROLES).await.unwrap();
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
    let login = manager.create_session("alice", NO_ROLES).await.unwrap();

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

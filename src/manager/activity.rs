//! The security activity trail on the manager's side: events go through one bounded queue to
//! one background task, which writes them to the store and hands them to the app's
//! [`SecurityEventHook`]. A request only puts an event in the queue (never waits, never fails):
//! a full queue drops the event, counted and said at `warn` at most once every ten seconds.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::HookError;
use crate::clock::SharedClock;
use crate::store::{ActivityBounds, SecurityEvent, SessionStore};
use crate::telemetry::{self, Escaped};

/// Events waiting to be recorded at most; past this they are dropped (and counted).
pub(crate) const QUEUE_CAPACITY: usize = 1024;
/// Hook calls running at once at most; past this an event is not handed to the hook (counted).
const HOOK_CONCURRENCY: usize = 32;
/// How long a hook call may take by default.
pub(super) const DEFAULT_EVENT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two `warn` lines about dropped events or failing writes, in ms.
const WARN_EVERY_MS: u64 = 10_000;

/// The app's receiver of security events, installed with
/// [`SessionManagerBuilder::on_security_event`](super::SessionManagerBuilder::on_security_event):
/// to mail "new sign-in from Firefox on Linux", or to write an audit log.
///
/// Called from a background task, never from a request: a request that produces an event
/// neither waits for the hook nor fails with it. Calls run concurrently (at most 32 at once;
/// beyond that an event is not handed over); a call that fails or outlasts its timeout is
/// counted (`tjs_security_events_total{outcome="hook_failed"|"hook_timeout"}`) and logged.
/// Events are delivered at most once, in the order they happened on this instance.
///
/// Any `Fn(SecurityEvent) -> impl Future<Output = Result<(), HookError>>` is a hook:
///
/// ```
/// use tower_jwt_session::manager::NewSession;
/// use tower_jwt_session::manager::HookError;
/// use tower_jwt_session::store::{EventKind, SecurityEvent};
/// use tower_jwt_session::{SessionConfig, SessionManager};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::builder(SessionConfig::new("0123456789abcdef0123456789abcdef")?)
///     .on_security_event(|event: SecurityEvent| async move {
///         if event.kind == EventKind::Login {
///             // send "new sign-in from {device}" mail here
///         }
///         Ok::<(), HookError>(())
///     })
///     .build()?;
/// manager.create_session(NewSession::new("alice").roles(&["user"])).await?;
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait SecurityEventHook: Send + Sync + 'static {
    /// Receives one event.
    async fn on_event(&self, event: SecurityEvent) -> Result<(), HookError>;
}

#[async_trait]
impl<F, Fut> SecurityEventHook for F
where
    F: Fn(SecurityEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HookError>> + Send + 'static,
{
    async fn on_event(&self, event: SecurityEvent) -> Result<(), HookError> {
        self(event).await
    }
}

impl std::fmt::Debug for dyn SecurityEventHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecurityEventHook")
    }
}

enum Message {
    Event(SecurityEvent),
    Flush(oneshot::Sender<()>),
}

/// What the background task needs: never the manager itself, so that the task ends once the
/// last manager clone is dropped (the queue's sender goes with it).
struct Worker {
    store: Arc<dyn SessionStore>,
    hook: Option<(Arc<dyn SecurityEventHook>, Duration)>,
    bounds: ActivityBounds,
    clock: SharedClock,
    store_timeout: Duration,
    keeps: bool,
    hook_slots: Arc<Semaphore>,
    warned_at: Arc<AtomicU64>,
}

/// The queue's sending side, held by the manager.
pub(super) struct Recorder {
    tx: mpsc::Sender<Message>,
    /// The receiver and worker until the task is started (on the first event: building a
    /// manager needs no runtime).
    pending: Mutex<Option<(mpsc::Receiver<Message>, Worker)>>,
    started: AtomicBool,
    warned_at: Arc<AtomicU64>,
    dropped: AtomicU64,
    clock: SharedClock,
    /// Accounts whose lock-out was recorded within the lock-out period (bounded).
    lockouts: moka::sync::Cache<String, ()>,
}

impl Recorder {
    pub(super) fn new(
        store: Arc<dyn SessionStore>,
        hook: Option<(Arc<dyn SecurityEventHook>, Duration)>,
        bounds: ActivityBounds,
        clock: SharedClock,
        store_timeout: Duration,
        lockout: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let keeps = store.keeps_activity();
        if !keeps {
            tracing::warn!(
                store = store.kind(),
                "this session store does not keep the security activity trail: GET /api/token/activity answers an empty list (the security event hook still gets every event)"
            );
        }
        let warned_at = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            store,
            hook,
            bounds,
            clock: clock.clone(),
            store_timeout,
            keeps,
            hook_slots: Arc::new(Semaphore::new(HOOK_CONCURRENCY)),
            warned_at: warned_at.clone(),
        };
        Self {
            tx,
            pending: Mutex::new(Some((rx, worker))),
            started: AtomicBool::new(false),
            warned_at,
            dropped: AtomicU64::new(0),
            clock,
            lockouts: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(lockout.max(Duration::from_secs(1)))
                .build(),
        }
    }

    /// Starts the background task on the current runtime, once. Without a runtime the task
    /// waits for the next call.
    fn start(&self) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((rx, worker)) = pending.take() {
            runtime.spawn(worker.run(rx));
            self.started.store(true, Ordering::Release);
        }
    }

    /// Puts `event` in the queue, or drops it (counted) when the queue is full. Never waits.
    pub(super) fn record(&self, event: SecurityEvent) {
        self.start();
        match self.tx.try_send(Message::Event(event)) {
            Ok(()) => {}
            Err(_) => {
                telemetry::activity("dropped");
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if should_warn(&self.warned_at, self.clock.now_ms()) {
                    tracing::warn!(
                        dropped_so_far = dropped,
                        "security events dropped: the activity queue ({QUEUE_CAPACITY}) is full (a slow store?)"
                    );
                }
            }
        }
    }

    /// Waits until every event queued before the call has been written to the store.
    pub(super) async fn flush(&self) {
        self.start();
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Whether this is the first lock-out of `user` seen within the lock-out period.
    pub(super) fn first_lockout(&self, user: &str) -> bool {
        let entry = self.lockouts.entry_by_ref(user).or_insert(());
        entry.is_fresh()
    }

    /// How many events were dropped because the queue was full.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Whether a rate-limited `warn` may be logged now (and claims it).
fn should_warn(warned_at: &AtomicU64, now: u64) -> bool {
    let last = warned_at.load(Ordering::Relaxed);
    (last == 0 || now.saturating_sub(last) >= WARN_EVERY_MS)
        && warned_at
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        while let Some(message) = rx.recv().await {
            match message {
                Message::Event(event) => self.handle(event).await,
                Message::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
        tracing::debug!("security activity queue closed: the manager was dropped");
    }

    async fn handle(&self, event: SecurityEvent) {
        self.to_hook(&event);
        if !self.keeps {
            return;
        }
        let now = self.clock.now_ms();
        let write = self.store.record_activity(&event, self.bounds, now);
        match tokio::time::timeout(self.store_timeout, write).await {
            Ok(Ok(())) => telemetry::activity("recorded"),
            Ok(Err(error)) => {
                telemetry::activity("store_failed");
                if should_warn(&self.warned_at, now) {
                    tracing::warn!(%error, "a security event could not be stored");
                }
            }
            Err(_) => {
                telemetry::activity("store_failed");
                if should_warn(&self.warned_at, now) {
                    tracing::warn!("a security event could not be stored: the store timed out");
                }
            }
        }
    }

    /// Hands `event` to the app's hook, if any, on a task of its own: at most
    /// [`HOOK_CONCURRENCY`] at once, each bounded by the hook's timeout.
    fn to_hook(&self, event: &SecurityEvent) {
        if let Some((hook, timeout)) = &self.hook {
            match self.hook_slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let hook = hook.clone();
                    let timeout = *timeout;
                    let event = event.clone();
                    tokio::spawn(async move {
                        let kind = event.kind.as_str();
                        match tokio::time::timeout(timeout, hook.on_event(event)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => {
                                telemetry::activity("hook_failed");
                                tracing::warn!(
                                    kind,
                                    error = %Escaped::with_max_len(&error.to_string(), 512),
                                    "the security event hook failed"
                                );
                            }
                            Err(_) => {
                                telemetry::activity("hook_timeout");
                                tracing::warn!(
                                    kind,
                                    timeout_ms = crate::clock::duration_ms(timeout),
                                    "the security event hook did not finish in time"
                                );
                            }
                        }
                        drop(permit);
                    });
                }
                Err(_) => {
                    telemetry::activity("hook_dropped");
                    if should_warn(&self.warned_at, self.clock.now_ms()) {
                        tracing::warn!(
                            "security events not handed to the hook: {HOOK_CONCURRENCY} calls already running (a slow hook?)"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;
    use crate::store::{
        CreateOutcome, Lifetimes, MemoryStore, RotateOutcome, RotateRequest, SessionLimit,
        SessionRecord, StoreError,
    };
    use crate::{SessionConfig, SessionManager};

    /// The memory store, with activity writes that take a second each.
    #[derive(Debug, Default)]
    struct SlowTrail(MemoryStore);

    #[async_trait]
    impl SessionStore for SlowTrail {
        async fn create(
            &self,
            r: SessionRecord,
            l: SessionLimit,
            t: &Lifetimes,
            now: u64,
        ) -> Result<CreateOutcome, StoreError> {
            self.0.create(r, l, t, now).await
        }
        async fn rotate(&self, q: RotateRequest) -> Result<RotateOutcome, StoreError> {
            self.0.rotate(q).await
        }
        async fn get(&self, s: SessionId) -> Result<Option<SessionRecord>, StoreError> {
            self.0.get(s).await
        }
        async fn list(&self, u: &str, now: u64) -> Result<Vec<SessionRecord>, StoreError> {
            self.0.list(u, now).await
        }
        async fn revoke(&self, s: SessionId, now: u64) -> Result<bool, StoreError> {
            self.0.revoke(s, now).await
        }
        async fn revoke_all(&self, u: &str, now: u64) -> Result<Vec<SessionId>, StoreError> {
            self.0.revoke_all(u, now).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn keeps_activity(&self) -> bool {
            true
        }
        async fn record_activity(
            &self,
            event: &SecurityEvent,
            bounds: ActivityBounds,
            now: u64,
        ) -> Result<(), StoreError> {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.0.record_activity(event, bounds, now).await
        }
        fn kind(&self) -> &'static str {
            "slow"
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// A stalled store fills the queue: later events are dropped and counted, and the logins
    /// that made them do not wait.
    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let manager = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
            .store(SlowTrail::default())
            .build()
            .unwrap();
        let start = std::time::Instant::now();
        for _ in 0..(QUEUE_CAPACITY + 100) {
            let pair = manager
                .create_session(crate::manager::NewSession::new("alice").roles(&["user"]))
                .await
                .unwrap();
            manager.revoke(pair.session_id).await.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert!(manager.dropped_security_events() > 0);
    }

    /// The background task ends with the last clone of the manager: nothing keeps the store.
    #[tokio::test]
    async fn the_task_ends_when_the_manager_is_dropped() {
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
        let manager = SessionManager::builder(SessionConfig::new(SECRET).unwrap())
            .shared_store(store.clone())
            .build()
            .unwrap();
        manager
            .create_session(crate::manager::NewSession::new("alice").roles(&["user"]))
            .await
            .unwrap();
        manager.flush_activity().await;
        assert_eq!(manager.activity("alice").await.unwrap().len(), 1);
        drop(manager);
        for _ in 0..100 {
            if Arc::strong_count(&store) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the store is still held: {}", Arc::strong_count(&store));
    }

    #[test]
    fn warnings_are_rate_limited() {
        let at = AtomicU64::new(0);
        assert!(should_warn(&at, 5));
        assert!(!should_warn(&at, 6));
        assert!(!should_warn(&at, 5 + WARN_EVERY_MS - 1));
        assert!(should_warn(&at, 5 + WARN_EVERY_MS));
    }
}

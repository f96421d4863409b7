//! A store that stalls: what a paused Redis or PostgreSQL does to the rotations sent to it.
//!
//! A rotation sent to a stalled server is not lost: it waits in the server's socket and runs
//! when the server wakes, after the caller has given up and answered 503. [`Stalled`] holds
//! each rotation past its deadline on a task of its own (the socket) and then hands it to the
//! real store, while the caller's future never completes (the server does not answer in time).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tower_jwt_session::session::SessionId;
use tower_jwt_session::store::{
    CreateOutcome, Lifetimes, RotateOutcome, RotateRequest, SessionLimit, SessionRecord,
    SessionStore, StoreError,
};

/// How long a stalled rotation waits after its deadline before the store gets it.
const PAST_THE_DEADLINE: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub struct Stalled {
    inner: Arc<dyn SessionStore>,
    late: Mutex<Option<JoinHandle<Result<RotateOutcome, StoreError>>>>,
}

impl Stalled {
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        Self {
            inner,
            late: Mutex::new(None),
        }
    }

    /// What the store answered the last stalled rotation when it finally ran it.
    pub async fn late_answer(&self) -> Option<Result<RotateOutcome, StoreError>> {
        let late = self.late.lock().unwrap().take()?;
        Some(late.await.expect("the stalled rotation's task"))
    }
}

fn real_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

#[async_trait]
impl SessionStore for Stalled {
    fn new_session_id(&self, user_id: &str) -> SessionId {
        self.inner.new_session_id(user_id)
    }

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
        let inner = self.inner.clone();
        let hold = request
            .deadline
            .map_or(Duration::from_millis(200), |deadline| {
                Duration::from_millis(deadline.saturating_sub(real_now_ms()))
            })
            + PAST_THE_DEADLINE;
        let late = tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            inner.rotate(request).await
        });
        *self.late.lock().unwrap() = Some(late);
        std::future::pending().await
    }

    async fn get(&self, session_id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.get(session_id).await
    }

    async fn list(&self, user_id: &str, now: u64) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list(user_id, now).await
    }

    async fn revoke(&self, session_id: SessionId, now: u64) -> Result<bool, StoreError> {
        self.inner.revoke(session_id, now).await
    }

    async fn revoke_all(&self, user_id: &str, now: u64) -> Result<Vec<SessionId>, StoreError> {
        self.inner.revoke_all(user_id, now).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

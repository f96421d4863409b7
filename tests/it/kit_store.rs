//! A session store written outside the crate, with its public API alone: a `HashMap` behind a
//! mutex, applying the crate's published rules (`decide_rotation`, `apply_rotation`,
//! `plan_admission`), and passing the crate's whole store suite (`store_suite!`, feature
//! `test-util`). What a third-party store (DynamoDB, SQLite, …) starts from.
#![cfg(feature = "test-util")]

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tower_jwt_session::session::SessionId;
use tower_jwt_session::store::{
    CreateOutcome, Lifetimes, RotateOutcome, RotateRequest, RotationDecision, SessionLimit,
    SessionRecord, SessionStore, StoreError, apply_rotation, decide_rotation, plan_admission,
    rotation_outcome,
};

/// Sessions in a map, one lock for all: every operation is atomic.
#[derive(Debug, Default)]
struct HashMapStore {
    sessions: Mutex<HashMap<SessionId, SessionRecord>>,
}

impl HashMapStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, SessionRecord>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The user's live sessions at `now`, in creation order.
fn live_of(map: &HashMap<SessionId, SessionRecord>, user: &str, now: u64) -> Vec<SessionRecord> {
    let mut live: Vec<SessionRecord> = map
        .values()
        .filter(|r| r.user_id == user && r.is_live(now))
        .cloned()
        .collect();
    live.sort_by_key(|r| (r.created_at, r.session_id.as_bytes().to_vec()));
    live
}

#[async_trait]
impl SessionStore for HashMapStore {
    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
        _lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let mut map = self.lock();
        map.retain(|_, r| now <= r.purge_at);
        let live: Vec<(SessionId, u64)> = live_of(&map, &record.user_id, now)
            .iter()
            .map(|r| (r.session_id, r.last_active_at))
            .collect();
        let Some(evicted) = plan_admission(&live, limit) else {
            return Ok(CreateOutcome::LimitReached);
        };
        for sid in &evicted {
            map.remove(sid);
        }
        map.insert(record.session_id, record);
        Ok(CreateOutcome::Created { evicted })
    }

    async fn rotate(&self, request: RotateRequest) -> Result<RotateOutcome, StoreError> {
        let mut map = self.lock();
        if request.past_deadline(now_real()) {
            return Err(StoreError::DeadlinePassed);
        }
        let sid = request.session_id;
        let Some(record) = map.get_mut(&sid) else {
            return Ok(RotateOutcome::NotFound);
        };
        if request.now > record.purge_at {
            map.remove(&sid);
            return Ok(RotateOutcome::NotFound);
        }
        let decision = decide_rotation(record, &request);
        apply_rotation(record, decision, &request);
        let outcome = rotation_outcome(decision, record);
        // An ended session is not kept.
        if matches!(
            decision,
            RotationDecision::Reuse(_) | RotationDecision::Revoked
        ) {
            map.remove(&sid);
        }
        Ok(outcome)
    }

    async fn get(&self, session_id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock().get(&session_id).cloned())
    }

    async fn list(&self, user_id: &str, now: u64) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(live_of(&self.lock(), user_id, now))
    }

    async fn revoke(&self, session_id: SessionId, now: u64) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .remove(&session_id)
            .is_some_and(|r| r.is_live(now)))
    }

    async fn revoke_all(&self, user_id: &str, now: u64) -> Result<Vec<SessionId>, StoreError> {
        let mut map = self.lock();
        let ended: Vec<SessionId> = live_of(&map, user_id, now)
            .iter()
            .map(|r| r.session_id)
            .collect();
        map.retain(|_, r| r.user_id != user_id);
        Ok(ended)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "hashmap"
    }
}

fn now_real() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

tower_jwt_session::store_suite!(HashMapStore::default());

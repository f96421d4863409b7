use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    CreateOutcome, Lifetimes, RotateOutcome, RotateRequest, SessionLimit, SessionRecord,
    SessionStore, StoreError, apply_rotation, decide_rotation, plan_admission,
};
use crate::session::SessionId;
use crate::store::RotationDecision;

/// How many due records one write operation reclaims at most, to bound its latency.
const PURGE_BATCH: usize = 64;

/// The default store: sessions in this process's memory. Zero set-up, nothing survives a
/// restart, and nothing is shared with other instances (use the Redis store for that).
///
/// Memory is bounded by expiry: every record sits in a queue ordered by the time it may be
/// forgotten, and each write reclaims the records that have come due, so a process that keeps
/// creating sessions holds only the ones that can still be used.
///
/// All operations take one mutex for a few hundred nanoseconds; each is atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Boxed: the table doubles as it grows, and a slot of 24 bytes wastes far less in the empty
    /// half than a slot holding the whole record would (`cargo bench --bench sessions` at one
    /// million sessions: 475 bytes a session unboxed, 382 boxed).
    sessions: HashMap<SessionId, Box<SessionRecord>>,
    by_user: HashMap<String, Vec<SessionId>>,
    /// `(purge_at, session)`, one entry per record; an entry that comes due for a record whose
    /// `purge_at` moved later is pushed again with the new time.
    purge_queue: BinaryHeap<Reverse<(u64, SessionId)>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records (live or retained after revocation) the store holds.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every record whose purge time is before `now`. Writes do this a batch at a
    /// time on their own; call it to reclaim everything at once.
    pub fn purge(&self, now: u64) {
        self.lock().purge(now, usize::MAX);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a record half-written (every mutation is
        // a single assignment or insert), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Forgets up to `max` records whose purge time has passed.
    fn purge(&mut self, now: u64, max: usize) {
        for _ in 0..max {
            match self.purge_queue.peek() {
                Some(Reverse((at, _))) if *at < now => {}
                _ => return,
            }
            let Some(Reverse((_, sid))) = self.purge_queue.pop() else {
                return;
            };
            let Some(record) = self.sessions.get(&sid) else {
                continue;
            };
            if record.purge_at >= now {
                self.purge_queue.push(Reverse((record.purge_at, sid)));
                continue;
            }
            let record = self.sessions.remove(&sid).expect("present");
            if let Some(list) = self.by_user.get_mut(&record.user_id) {
                list.retain(|s| *s != sid);
                if list.is_empty() {
                    self.by_user.remove(&record.user_id);
                }
            }
        }
    }

    fn live_of(&self, user_id: &str, now: u64) -> impl Iterator<Item = &SessionRecord> {
        self.by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter_map(|sid| self.sessions.get(sid))
            .map(|r| &**r)
            .filter(move |r| r.is_live(now))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
        _lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let mut state = self.lock();
        state.purge(now, PURGE_BATCH);
        let live: Vec<(SessionId, u64)> = state
            .live_of(&record.user_id, now)
            .map(|r| (r.session_id, r.last_active_at))
            .collect();
        let Some(evicted) = plan_admission(&live, limit) else {
            return Ok(CreateOutcome::LimitReached);
        };
        for sid in &evicted {
            if let Some(r) = state.sessions.get_mut(sid) {
                r.revoked_at = Some(now);
            }
        }
        let sid = record.session_id;
        state.purge_queue.push(Reverse((record.purge_at, sid)));
        state
            .by_user
            .entry(record.user_id.clone())
            .or_default()
            .push(sid);
        state.sessions.insert(sid, Box::new(record));
        crate::telemetry::sessions_held(state.sessions.len());
        Ok(CreateOutcome::Created { evicted })
    }

    async fn rotate(&self, req: RotateRequest) -> Result<RotateOutcome, StoreError> {
        let mut state = self.lock();
        state.purge(req.now, PURGE_BATCH);
        let Some(record) = state.sessions.get_mut(&req.session_id) else {
            return Ok(RotateOutcome::NotFound);
        };
        let decision = decide_rotation(record, &req);
        apply_rotation(record, decision, req.now);
        Ok(match decision {
            RotationDecision::Rotate { .. } => RotateOutcome::Rotated((**record).clone()),
            RotationDecision::Grace => RotateOutcome::Grace((**record).clone()),
            RotationDecision::Reuse(kind) => RotateOutcome::Reused((**record).clone(), kind),
            RotationDecision::Revoked => RotateOutcome::Revoked,
            RotationDecision::SessionExpired => RotateOutcome::SessionExpired,
            RotationDecision::TokenExpired => RotateOutcome::TokenExpired,
            RotationDecision::NotFound => RotateOutcome::NotFound,
        })
    }

    async fn get(&self, session_id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock().sessions.get(&session_id).map(|r| (**r).clone()))
    }

    async fn list(&self, user_id: &str, now: u64) -> Result<Vec<SessionRecord>, StoreError> {
        let state = self.lock();
        let mut list: Vec<SessionRecord> = state.live_of(user_id, now).cloned().collect();
        list.sort_by_key(|r| (r.created_at, r.session_id));
        Ok(list)
    }

    async fn revoke(&self, session_id: SessionId, now: u64) -> Result<bool, StoreError> {
        let mut state = self.lock();
        state.purge(now, PURGE_BATCH);
        Ok(match state.sessions.get_mut(&session_id) {
            Some(r) if r.is_live(now) => {
                r.revoked_at = Some(now);
                true
            }
            _ => false,
        })
    }

    async fn revoke_all(&self, user_id: &str, now: u64) -> Result<Vec<SessionId>, StoreError> {
        let mut state = self.lock();
        state.purge(now, PURGE_BATCH);
        let live: Vec<SessionId> = state.live_of(user_id, now).map(|r| r.session_id).collect();
        for sid in &live {
            if let Some(r) = state.sessions.get_mut(sid) {
                r.revoked_at = Some(now);
            }
        }
        Ok(live)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store_suite!(MemoryStore::new());

    #[tokio::test]
    async fn memory_is_reclaimed_as_records_come_due() {
        let store = MemoryStore::new();
        let l = crate::store::suite::lifetimes();
        for i in 0..1000u64 {
            let r = crate::store::suite::record(&format!("user{i}"), 0, &l);
            store
                .create(r, crate::store::suite::limit(10), &l, 0)
                .await
                .unwrap();
        }
        assert_eq!(store.len(), 1000);
        // Writes reclaim a batch each once records are due.
        let later = crate::store::suite::record("late", 0, &l).purge_at + 1;
        let r = crate::store::suite::record("late", later, &l);
        store
            .create(r, crate::store::suite::limit(10), &l, later)
            .await
            .unwrap();
        assert_eq!(store.len(), 1001 - PURGE_BATCH);
        store.purge(later);
        assert_eq!(store.len(), 1);
        assert!(store.lock().by_user.len() == 1 && store.lock().purge_queue.len() == 1);
    }
}

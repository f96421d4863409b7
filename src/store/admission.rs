//! The admission rule every store applies at login: the per-user session limit and whom a new
//! session evicts.

use crate::config::SessionLimitPolicy;
use crate::session::SessionId;

/// The per-user session limit and what to do beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    /// Live sessions allowed per user.
    pub max: usize,
    /// Evict the least recently active, or deny the new one.
    pub policy: SessionLimitPolicy,
}

/// The outcome of [`SessionStore::create`](super::SessionStore::create).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateOutcome {
    /// Stored; these sessions were revoked to make room (least recently active first).
    Created {
        /// The sessions evicted.
        evicted: Vec<SessionId>,
    },
    /// The user is at the limit and the policy is `deny`: nothing was stored.
    LimitReached,
}

/// Which of a user's live sessions to evict before adding one more, or `None` to deny.
/// `live` holds `(session, last_active_at)` of the user's live sessions in creation order, which
/// breaks ties between sessions last active in the same millisecond.
pub fn plan_admission(live: &[(SessionId, u64)], limit: SessionLimit) -> Option<Vec<SessionId>> {
    if live.len() < limit.max {
        return Some(Vec::new());
    }
    match limit.policy {
        SessionLimitPolicy::Deny => None,
        _ => {
            let mut by_activity = live.to_vec();
            by_activity.sort_by_key(|(_, at)| *at);
            let excess = live.len() + 1 - limit.max;
            Some(
                by_activity
                    .into_iter()
                    .take(excess)
                    .map(|(sid, _)| sid)
                    .collect(),
            )
        }
    }
}

//! The rotation rule every store applies: a refresh request, how it is decided (rotate, answer
//! again within the reuse interval, or reuse detected), and what it writes and answers.

use super::{Lifetimes, SessionRecord};
use crate::session::{AuthContext, CustomClaims, SessionId};

/// Fresh roles and claims for a session, from the app's refresh hook: a rotation that advances
/// the generation stores them with it, in the same atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUpdate {
    /// The roles from now on.
    pub roles: Vec<String>,
    /// The custom claims from now on.
    pub claims: CustomClaims,
    /// A new authentication context, from a credential check (a re-authentication); `None`
    /// keeps the record's. A rotation that carries one is no refresh: its generation is the
    /// one the caller read from the store, not a presented token, so any other generation is
    /// a lost race, answered [`RotateOutcome::NotFound`] with nothing changed (never a grace
    /// answer, never reuse detection).
    pub auth: Option<AuthContext>,
}

/// A refresh request: the session and generation named by a refresh token whose MAC has
/// already been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateRequest {
    /// The session the token belongs to.
    pub session_id: SessionId,
    /// The generation the token was issued for.
    pub generation: u64,
    /// Now.
    pub now: u64,
    /// The lifetimes in force.
    pub lifetimes: Lifetimes,
    /// Roles and claims to store when the rotation advances the generation (and only then: a
    /// grace answer hands out the record as it is, so every answer for one successor carries
    /// the same claims). `None` keeps them.
    pub update: Option<SessionUpdate>,
    /// When the caller stops waiting, in milliseconds since the Unix epoch on the caller's
    /// machine clock (the real clock, not the manager's injectable one). A store that reaches
    /// the rotation later than this, by its own clock, must not apply it and answers
    /// [`StoreError::DeadlinePassed`]: the caller has answered 503 by then and the client
    /// still holds the token it presented, so a rotation applied late would turn the client's
    /// retry into "reuse detected" once the grace interval is over. Stores' clocks and the
    /// callers' must agree to well within the store timeout (NTP). `None`: no deadline.
    ///
    /// [`StoreError::DeadlinePassed`]: super::StoreError::DeadlinePassed
    pub deadline: Option<u64>,
}

impl RotateRequest {
    /// Whether the deadline has passed at `store_now_ms`, the store's own time.
    pub fn past_deadline(&self, store_now_ms: u64) -> bool {
        self.deadline
            .is_some_and(|deadline| store_now_ms > deadline)
    }
}

/// Why a presented refresh token counts as stolen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReuseKind {
    /// The immediate parent of the current token, presented after the grace interval.
    RetiredAfterInterval,
    /// A token two or more generations old.
    Ancestor,
}

impl ReuseKind {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ReuseKind::RetiredAfterInterval => "retired_after_interval",
            ReuseKind::Ancestor => "ancestor",
        }
    }
}

/// The outcome of [`SessionStore::rotate`](super::SessionStore::rotate).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotateOutcome {
    /// The presented token was current: the session moved to the next generation.
    Rotated(SessionRecord),
    /// The presented token is the immediate parent, within the grace interval: the current
    /// generation stands and is handed out again.
    Grace(SessionRecord),
    /// A retired token was presented: the session has been revoked by this call.
    Reused(SessionRecord, ReuseKind),
    /// The session was already revoked.
    Revoked,
    /// The session has passed its absolute end.
    SessionExpired,
    /// The presented (current) token has passed its own expiry.
    TokenExpired,
    /// No such session, or a generation that was never issued.
    NotFound,
}

/// What the store does to the record, decided by [`decide_rotation`]: the rules of
/// [`SessionStore::rotate`](super::SessionStore::rotate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationDecision {
    /// Advance to `generation + 1`.
    Rotate {
        /// The new refresh token's expiry.
        refresh_expires_at: u64,
        /// The record's new purge time.
        purge_at: u64,
    },
    /// Hand out the current generation again.
    Grace,
    /// Revoke the session.
    Reuse(ReuseKind),
    /// Refuse: already revoked.
    Revoked,
    /// Refuse: past the absolute end.
    SessionExpired,
    /// Refuse: the current token has expired.
    TokenExpired,
    /// Refuse: unknown generation.
    NotFound,
}

/// The rules of [the session rules](crate::routes#sessions-and-tokens) for one refresh, as a pure function of the record. Every store applies
/// this decision atomically (the Redis backend mirrors it in its script).
pub fn decide_rotation(record: &SessionRecord, req: &RotateRequest) -> RotationDecision {
    let now = req.now;
    if record.revoked_at.is_some() {
        return RotationDecision::Revoked;
    }
    if now >= record.expires_at {
        return RotationDecision::SessionExpired;
    }
    let current = record.generation;
    let reauthentication = req.update.as_ref().is_some_and(|u| u.auth.is_some());
    if reauthentication && req.generation != current {
        return RotationDecision::NotFound;
    }
    if req.generation == current {
        if now >= record.refresh_expires_at {
            return RotationDecision::TokenExpired;
        }
        let refresh_expires_at = now
            .saturating_add(req.lifetimes.refresh_ttl)
            .min(record.expires_at);
        return RotationDecision::Rotate {
            refresh_expires_at,
            purge_at: purge_at(record.expires_at, refresh_expires_at, now, &req.lifetimes),
        };
    }
    if req.generation > current {
        return RotationDecision::NotFound;
    }
    if req.generation + 1 == current {
        if now
            < record
                .rotated_at
                .saturating_add(req.lifetimes.reuse_interval)
        {
            return RotationDecision::Grace;
        }
        return RotationDecision::Reuse(ReuseKind::RetiredAfterInterval);
    }
    RotationDecision::Reuse(ReuseKind::Ancestor)
}

/// When a record may be forgotten: once neither its refresh token nor any access token issued
/// at its last activity can be presented, and never after the session's absolute end.
pub fn purge_at(
    expires_at: u64,
    refresh_expires_at: u64,
    last_active_at: u64,
    l: &Lifetimes,
) -> u64 {
    refresh_expires_at
        .max(last_active_at.saturating_add(l.access_retention))
        .min(expires_at.saturating_add(l.access_retention))
}

/// What a rotation answers, from its decision and the record as [`apply_rotation`] left it.
pub fn rotation_outcome(decision: RotationDecision, record: &SessionRecord) -> RotateOutcome {
    match decision {
        RotationDecision::Rotate { .. } => RotateOutcome::Rotated(record.clone()),
        RotationDecision::Grace => RotateOutcome::Grace(record.clone()),
        RotationDecision::Reuse(kind) => RotateOutcome::Reused(record.clone(), kind),
        RotationDecision::Revoked => RotateOutcome::Revoked,
        RotationDecision::SessionExpired => RotateOutcome::SessionExpired,
        RotationDecision::TokenExpired => RotateOutcome::TokenExpired,
        RotationDecision::NotFound => RotateOutcome::NotFound,
    }
}

/// Applies a decision to a record (the in-memory half of an atomic rotation), with the
/// request's update when it advances the generation.
pub fn apply_rotation(record: &mut SessionRecord, decision: RotationDecision, req: &RotateRequest) {
    let now = req.now;
    match decision {
        RotationDecision::Rotate {
            refresh_expires_at,
            purge_at,
        } => {
            record.generation += 1;
            record.rotated_at = now;
            record.last_active_at = now;
            record.refresh_expires_at = refresh_expires_at;
            record.purge_at = purge_at;
            if let Some(update) = &req.update {
                record.roles.clone_from(&update.roles);
                record.claims = update.claims.clone();
                if let Some(auth) = &update.auth {
                    record.auth = auth.clone();
                }
            }
        }
        RotationDecision::Reuse(_) => record.revoked_at = Some(now),
        _ => {}
    }
}

//! The writes of [`RedisStore`](super::RedisStore) beyond one script each: sealed rotations
//! (read, decide, compare-and-set), revoking all but one, announcing revocations, and waiting
//! for replicas.

use redis::{FromRedisValue, ScriptInvocation, Value};

use super::RedisStore;
use crate::session::SessionId;
use crate::store::redis::connection::Written;
use crate::store::redis::record::{corrupt, data_fields, decode, pairs, sid_of, time_fields};
use crate::store::{
    ReuseKind, RotateOutcome, RotateRequest, RotationDecision, SessionRecord, StoreError,
    apply_rotation, decide_rotation,
};

impl RedisStore {
    /// Runs `action` on the record of `sid` if it is still as `read` (its first sealed part
    /// and its generation `generation`): `false` when it changed or went away meanwhile.
    pub(super) async fn apply(
        &self,
        sid: SessionId,
        read: &[(String, String)],
        generation: u64,
        action: Action<'_>,
        deadline: Option<u64>,
    ) -> Result<bool, StoreError> {
        let expected = read
            .iter()
            .find(|(k, _)| k == "d")
            .map_or("", |(_, v)| v.as_str());
        let key = self.names().record_key(sid);
        let mut invocation = self.scripts.apply.key(&key);
        invocation
            .arg(expected)
            .arg(generation)
            .arg(match action {
                Action::Write(_) => "write",
                Action::Drop => "drop",
            })
            .arg(self.script_channel())
            .arg(sid.to_string())
            .arg(self.names().index_prefix(&sid.as_bytes()[..4]))
            .arg(deadline.unwrap_or(0));
        if let Action::Write(record) = action {
            invocation.arg(record.purge_at);
            for (name, value) in time_fields(record) {
                invocation.arg(name).arg(value);
            }
            for (name, value) in data_fields(self.cipher(), record)? {
                invocation.arg(name).arg(value);
            }
        }
        let (applied, written): (i64, _) = self.redis.write(&invocation, &key).await?;
        if applied == -1 {
            return Err(StoreError::DeadlinePassed);
        }
        if applied == 1 {
            written.confirm().await?;
            if let Action::Drop = action {
                self.announce([sid.to_string()]).await;
            }
        }
        Ok(applied == 1)
    }

    /// [`SessionStore::rotate`] on sealed records: a script cannot open a seal, so the rule is
    /// decided here on the opened record ([`decide_rotation`]) and applied by a
    /// compare-and-set script; a record that changed in between is read again.
    pub(super) async fn rotate_sealed(
        &self,
        req: RotateRequest,
    ) -> Result<RotateOutcome, StoreError> {
        let sid = req.session_id;
        for _ in 0..MAX_SEALED_ATTEMPTS {
            let invocation = self.scripts.get.key(self.names().record_key(sid));
            let (fields, pttl): (Vec<Value>, i64) = self.run(&invocation).await?;
            if fields.is_empty() {
                return Ok(RotateOutcome::NotFound);
            }
            let fields = pairs(&fields)?;
            let Some((record, _)) = decode(self.cipher(), sid, &fields, pttl)? else {
                return Ok(RotateOutcome::NotFound);
            };
            let drop = |outcome| (Some(Action::Drop), outcome);
            let decision = decide_rotation(&record, &req);
            let mut next = record.clone();
            apply_rotation(&mut next, decision, &req);
            let (action, outcome) = if req.now > record.purge_at {
                drop(RotateOutcome::NotFound)
            } else {
                match decision {
                    RotationDecision::Revoked => drop(RotateOutcome::Revoked),
                    RotationDecision::Reuse(kind) => {
                        drop(RotateOutcome::Reused(next.clone(), kind))
                    }
                    RotationDecision::Rotate { .. } => (
                        Some(Action::Write(&next)),
                        RotateOutcome::Rotated(next.clone()),
                    ),
                    RotationDecision::Grace => (None, RotateOutcome::Grace(record.clone())),
                    RotationDecision::SessionExpired => (None, RotateOutcome::SessionExpired),
                    RotationDecision::TokenExpired => (None, RotateOutcome::TokenExpired),
                    RotationDecision::NotFound => (None, RotateOutcome::NotFound),
                }
            };
            match action {
                None => return Ok(outcome),
                Some(action) => {
                    if self
                        .apply(sid, &fields, record.generation, action, req.deadline)
                        .await?
                    {
                        return Ok(outcome);
                    }
                }
            }
        }
        Err(StoreError::Unavailable(
            "the session changed under every attempt to rotate it".to_owned(),
        ))
    }

    /// Revokes every session of a user but `keep`, index by index, each in one script.
    pub(super) async fn revoke_all_but(
        &self,
        user_id: &str,
        keep: Option<SessionId>,
        now: u64,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut revoked = Vec::new();
        for (index, tag) in self.names().index_keys(user_id) {
            let mut invocation = self.scripts.revoke_all.key(&index);
            invocation
                .arg(now)
                .arg(self.names().record_prefix(&tag))
                .arg(self.script_channel());
            if let Some(keep) = keep {
                invocation.arg(keep.to_string());
            }
            let (reply, written): (Vec<Value>, _) = self.redis.write(&invocation, &index).await?;
            written.confirm().await?;
            let ended = reply.iter().map(sid_of).collect::<Result<Vec<_>, _>>()?;
            self.announce(ended.iter().map(SessionId::to_string)).await;
            revoked.extend(ended);
        }
        Ok(revoked)
    }

    pub(super) async fn run<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.redis.run(invocation).await
    }

    /// The channel the scripts publish revocations on: none when writes wait for replicas,
    /// since a revocation published before its write is confirmed would be believed by every
    /// instance even if a failover then lost the write; [`announce`](Self::announce) publishes
    /// it once confirmed.
    pub(super) fn script_channel(&self) -> &str {
        match self.redis.wait() {
            Some(_) => "",
            None => &self.channel,
        }
    }

    /// When writes wait for replicas: publishes revocations whose writes replicas confirmed
    /// (the scripts published them otherwise). A failed publish leaves the other instances to
    /// the cache's 1 s lifetime for "active" answers.
    pub(super) async fn announce(&self, sids: impl IntoIterator<Item = String>) {
        if self.redis.wait().is_none() {
            return;
        }
        for sid in sids {
            let published: Result<i64, _> = self
                .command(redis::cmd("PUBLISH").arg(&self.channel).arg(&sid))
                .await;
            if let Err(error) = published {
                tracing::debug!(%error, "a confirmed revocation could not be published");
            }
        }
    }

    /// Runs a script that may write the record of `sid` (and its user's index, in the same
    /// slot); its [`Written`] confirms the write with replicas when the settings ask for it.
    pub(super) async fn write(
        &self,
        invocation: &ScriptInvocation<'_>,
        sid: SessionId,
    ) -> Result<(Vec<Value>, Written<'_>), StoreError> {
        self.redis
            .write(invocation, &self.names().record_key(sid))
            .await
    }
}

/// What [`RedisStore::apply`] does to a sealed record.
#[derive(Clone, Copy)]
pub(super) enum Action<'a> {
    /// Write this record, sealed anew.
    Write(&'a SessionRecord),
    /// Delete it, take it out of its user's index, and publish its revocation.
    Drop,
}

/// How often a sealed rotation reads again after the record changed under it. Each retry
/// means another writer won (and a rule that writes moves the generation on), so the next read
/// almost always decides without a write: a few attempts are plenty.
pub(super) const MAX_SEALED_ATTEMPTS: usize = 8;

/// Confirms a rotation with replicas (when the settings ask for it) before a client is given
/// what it decided: a successor (`rotated`), the successor again (`grace`: a retry after a 503
/// answers from the first attempt's write, which may not have reached a replica), a reuse
/// revocation, or "no such session" (the write that ended it may not have reached a replica
/// either). Only the expiries, which follow from times alone, are answered as they are.
pub(super) async fn confirm_rotation(status: &str, written: Written<'_>) -> Result<(), StoreError> {
    match status {
        "session_expired" | "token_expired" => Ok(()),
        _ => written.confirm().await,
    }
}

/// The outcome of the rotate script's `status` for a record it returned.
pub(super) fn rotate_outcome(
    status: &str,
    record: SessionRecord,
    now: u64,
) -> Result<RotateOutcome, StoreError> {
    let reused = |kind| {
        let record = SessionRecord {
            revoked_at: Some(now),
            ..record.clone()
        };
        RotateOutcome::Reused(record, kind)
    };
    Ok(match status {
        "reused_retired" => reused(ReuseKind::RetiredAfterInterval),
        "reused_ancestor" => reused(ReuseKind::Ancestor),
        "rotated" => RotateOutcome::Rotated(record),
        "grace" => RotateOutcome::Grace(record),
        _ => return Err(corrupt("rotate reply")),
    })
}

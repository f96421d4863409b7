//! [`RedisStore`]: the [`SessionStore`] on Redis, each rule one Lua script.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redis::{FromRedisValue, Script, Value};

use super::connection::RedisConnection;
use super::keys::KeyNames;
use super::record::{auth_field, claims_fields, corrupt, data_fields, decode, pairs, sid_of};
use crate::config::SessionLimitPolicy;
use crate::session::{SessionId, random_bytes};
use crate::store::sealing::Cipher;
use crate::store::{
    ActivityBounds, CreateOutcome, Lifetimes, RevocationSink, RotateOutcome, RotateRequest,
    SecurityEvent, SessionLimit, SessionRecord, SessionStore, StoreError, StoreWarning,
};

mod health;
mod setup;
mod subscriber;
mod writes;

pub(super) use health::eviction_warning;
use writes::{confirm_rotation, rotate_outcome};

struct Scripts {
    create: Script,
    get: Script,
    rotate: Script,
    revoke: Script,
    revoke_all: Script,
    list: Script,
    apply: Script,
    claim: Script,
    activity: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            create: Script::new(include_str!("lua/create.lua")),
            get: Script::new(include_str!("lua/get.lua")),
            rotate: Script::new(include_str!("lua/rotate.lua")),
            revoke: Script::new(include_str!("lua/revoke.lua")),
            revoke_all: Script::new(include_str!("lua/revoke_all.lua")),
            list: Script::new(include_str!("lua/list.lua")),
            apply: Script::new(include_str!("lua/apply.lua")),
            claim: Script::new(include_str!("lua/claim.lua")),
            activity: Script::new(include_str!("lua/activity.lua")),
        }
    }
}

/// Sessions in Redis or Redis Cluster: see the [module docs](crate::store::redis).
pub struct RedisStore {
    redis: RedisConnection,
    channel: String,
    scripts: Arc<Scripts>,
    sinks: Arc<Mutex<Vec<RevocationSink>>>,
    subscriber: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("connection", &self.redis)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl RedisStore {
    /// The connection this store runs on, for the Redis backends of the rate limiter and the
    /// attempt tracker (`rate_limit::RedisRateLimitBackend::new`,
    /// `rate_limit::RedisAttemptBackend::new`), so the limits hold across instances on the
    /// same connection, prefix and key-name hashing as the sessions.
    pub fn connection(&self) -> RedisConnection {
        self.redis.clone()
    }

    pub(super) fn names(&self) -> &KeyNames {
        self.redis.names()
    }

    pub(super) fn cipher(&self) -> Option<&Cipher> {
        self.names().cipher()
    }

    pub(super) async fn command<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.redis.command(cmd).await
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn new_session_id(&self, user_id: &str) -> SessionId {
        let mut bytes: [u8; 16] = random_bytes();
        bytes[..4].copy_from_slice(&self.names().tag_of_user(user_id));
        SessionId::from_bytes(bytes)
    }

    fn watch_revocations(&self, sink: RevocationSink) {
        self.sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
    }

    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
        lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let sid = record.session_id;
        if sid.as_bytes()[..4] != self.names().tag_of_user(&record.user_id) {
            return Err(corrupt(
                "session id not made by RedisStore::new_session_id for this user",
            ));
        }
        let data = data_fields(self.cipher(), &record)?;
        // The index outlives every record it lists: none is kept past its end plus retention.
        let index_expiry = record.expires_at.saturating_add(lifetimes.access_retention) + 1;
        let policy = match limit.policy {
            SessionLimitPolicy::Deny => "deny",
            _ => "evict",
        };
        let index = self.names().index_key(&record.user_id);
        let mut invocation = self.scripts.create.key(&index);
        invocation
            .key(self.names().record_key(sid))
            .arg(now)
            .arg(limit.max)
            .arg(policy)
            .arg(sid.to_string())
            .arg(self.names().record_prefix(&sid.as_bytes()[..4]))
            .arg(self.script_channel())
            .arg(record.created_at)
            .arg(record.last_active_at)
            .arg(record.expires_at)
            .arg(record.generation)
            .arg(record.refresh_expires_at)
            .arg(record.purge_at)
            .arg(index_expiry)
            .arg(self.names().index_suffix(0, &record.user_id));
        for (name, value) in &data {
            invocation.arg(name).arg(value);
        }
        let (reply, written): (Vec<Value>, _) = self.redis.write(&invocation, &index).await?;
        let status = reply
            .first()
            .and_then(|v| String::from_redis_value(v.clone()).ok())
            .ok_or_else(|| corrupt("create reply"))?;
        match status.as_str() {
            "deny" => Ok(CreateOutcome::LimitReached),
            "ok" => {
                let evicted: Vec<SessionId> =
                    reply[1..].iter().map(sid_of).collect::<Result<_, _>>()?;
                written.confirm().await?;
                self.announce(evicted.iter().map(SessionId::to_string))
                    .await;
                Ok(CreateOutcome::Created { evicted })
            }
            _ => Err(corrupt("create reply")),
        }
    }

    async fn rotate(&self, req: RotateRequest) -> Result<RotateOutcome, StoreError> {
        if self.cipher().is_some() {
            return self.rotate_sealed(req).await;
        }
        let sid = req.session_id;
        let mut invocation = self.scripts.rotate.key(self.names().record_key(sid));
        invocation
            .arg(req.now)
            .arg(req.generation)
            .arg(req.lifetimes.refresh_ttl)
            .arg(req.lifetimes.reuse_interval)
            .arg(req.lifetimes.access_retention)
            .arg(&self.channel)
            .arg(sid.to_string())
            .arg(self.names().index_prefix(&sid.as_bytes()[..4]))
            .arg(req.deadline.unwrap_or(0));
        if let Some(update) = &req.update {
            let roles = serde_json::to_string(&update.roles).map_err(|_| corrupt("roles"))?;
            invocation.arg(roles);
            match &update.auth {
                Some(auth) => invocation.arg(auth_field(auth)?),
                None => invocation.arg(""),
            };
            for (name, value) in claims_fields(&update.claims) {
                invocation.arg(name).arg(value);
            }
        }
        let (reply, written) = self.write(&invocation, sid).await?;
        let status = reply
            .first()
            .and_then(|v| String::from_redis_value(v.clone()).ok())
            .ok_or_else(|| corrupt("rotate reply"))?;
        if status == "deadline" {
            return Err(StoreError::DeadlinePassed);
        }
        confirm_rotation(&status, written).await?;
        let decoded = match &reply[1..] {
            [Value::Array(fields), pttl] => decode(
                self.cipher(),
                sid,
                &pairs(fields)?,
                i64::from_redis_value(pttl.clone()).map_err(|_| corrupt("pttl"))?,
            )?,
            _ => None,
        };
        // A record whose sealed data does not open is no session.
        let Some((record, _)) = decoded else {
            return Ok(match status.as_str() {
                "revoked" => RotateOutcome::Revoked,
                "session_expired" => RotateOutcome::SessionExpired,
                "token_expired" => RotateOutcome::TokenExpired,
                "not_found" | "rotated" | "grace" | "reused_retired" | "reused_ancestor" => {
                    RotateOutcome::NotFound
                }
                _ => return Err(corrupt("rotate reply")),
            });
        };
        rotate_outcome(&status, record, req.now)
    }

    async fn get(&self, session_id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let key = self.names().record_key(session_id);
        let invocation = self.scripts.get.key(&key);
        let (fields, pttl): (Vec<Value>, i64) = self.run(&invocation).await?;
        if fields.is_empty() {
            // "No such session" refuses it: with writes confirmed, not before replicas have
            // the write that ended it (a logout retried after a 503 must not read as done).
            self.redis.confirm_slot(&key).await?;
            return Ok(None);
        }
        Ok(decode(self.cipher(), session_id, &pairs(&fields)?, pttl)?.map(|(record, _)| record))
    }

    async fn list(&self, user_id: &str, now: u64) -> Result<Vec<SessionRecord>, StoreError> {
        let mut records = Vec::new();
        for (index, tag) in self.names().index_keys(user_id) {
            let mut invocation = self.scripts.list.key(index);
            invocation.arg(now).arg(self.names().record_prefix(&tag));
            let reply: Vec<Value> = self.run(&invocation).await?;
            for entry in reply.chunks(3) {
                let [sid, Value::Array(fields), pttl] = entry else {
                    return Err(corrupt("list reply"));
                };
                let pttl = i64::from_redis_value(pttl.clone()).map_err(|_| corrupt("pttl"))?;
                if let Some((record, _)) =
                    decode(self.cipher(), sid_of(sid)?, &pairs(fields)?, pttl)?
                {
                    records.push(record);
                }
            }
        }
        records.sort_by_key(|r| (r.created_at, r.session_id));
        Ok(records)
    }

    async fn revoke(&self, session_id: SessionId, now: u64) -> Result<bool, StoreError> {
        let key = self.names().record_key(session_id);
        let mut invocation = self.scripts.revoke.key(&key);
        invocation
            .arg(now)
            .arg(self.script_channel())
            .arg(session_id.to_string())
            .arg(self.names().index_prefix(&session_id.as_bytes()[..4]));
        // Confirmed also when it found nothing live: a logout retried after a 503 finds its
        // session gone, by a write that may not have reached a replica yet.
        let (revoked, written): (i64, _) = self.redis.write(&invocation, &key).await?;
        written.confirm().await?;
        self.announce([session_id.to_string()]).await;
        Ok(revoked == 1)
    }

    async fn revoke_all(&self, user_id: &str, now: u64) -> Result<Vec<SessionId>, StoreError> {
        self.revoke_all_but(user_id, None, now).await
    }

    /// One script per index, as `revoke_all`, told which session to keep.
    async fn revoke_all_except(
        &self,
        user_id: &str,
        keep: SessionId,
        now: u64,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.revoke_all_but(user_id, Some(keep), now).await
    }

    /// One node: `PING`. A cluster: a read of a key in every slot range, each sent the way
    /// a script on that range is (the same connection, slot map and redirects), so a
    /// connection stuck on a node that no longer answers fails here as the requests do.
    async fn ping(&self) -> Result<(), StoreError> {
        let Some(shards) = self.redis.shards().await? else {
            let pong: String = self.command(&redis::cmd("PING")).await?;
            return match pong.as_str() {
                "PONG" => Ok(()),
                _ => Err(corrupt("PING answered something else")),
            };
        };
        for shard in &shards {
            let (key, slot) = self.probe_key(shard);
            let _: i64 = self
                .redis
                .command_at_slot(redis::cmd("EXISTS").arg(&key), slot)
                .await?;
        }
        Ok(())
    }

    /// A Redis with a memory limit and any eviction policy but `noeviction` deletes keys when
    /// full, and every key here has a lifetime, so even the `volatile-*` policies pick them: a
    /// logout, a user's index or a whole session can vanish without an error. With writes
    /// confirmed by replicas, a primary with fewer replicas than that answers every write 503.
    /// Asked of every primary of a cluster (`INFO memory replication`, which managed services
    /// allow where they rename `CONFIG`), each on the route its slots' scripts take.
    async fn warnings(&self) -> Result<Vec<StoreWarning>, StoreError> {
        let mut info = Vec::new();
        match self.redis.shards().await? {
            None => {
                let text: String = self
                    .command(redis::cmd("INFO").arg("memory").arg("replication"))
                    .await?;
                info.push((None, text));
            }
            Some(shards) => {
                for shard in &shards {
                    let (_, slot) = self.probe_key(shard);
                    let text: String = self
                        .redis
                        .command_at_slot(redis::cmd("INFO").arg("memory").arg("replication"), slot)
                        .await?;
                    let (host, port) = &shard.nodes[0];
                    info.push((Some(format!("{host}:{port}")), text));
                }
            }
        }
        let mut warnings: Vec<StoreWarning> = Vec::new();
        for (node, text) in &info {
            let found = eviction_warning(text)
                .into_iter()
                .chain(self.replicas_warning(text));
            for warning in found {
                if warnings.iter().all(|w| w.code() != warning.code()) {
                    warnings.push(match node {
                        Some(node) => StoreWarning::new(
                            warning.code(),
                            format!("{node}: {}", warning.message()),
                        ),
                        None => warning,
                    });
                }
            }
        }
        Ok(warnings)
    }

    fn keeps_activity(&self) -> bool {
        true
    }

    async fn record_activity(
        &self,
        event: &SecurityEvent,
        bounds: ActivityBounds,
        _now: u64,
    ) -> Result<(), StoreError> {
        let key = self.names().activity_key(&event.user_id);
        let stored = event.to_stored();
        let value = match self.cipher() {
            Some(cipher) => cipher.seal(key.as_bytes(), stored.as_bytes()),
            None => stored,
        };
        let mut invocation = self.scripts.activity.key(&key);
        invocation
            .arg(value)
            .arg(bounds.max.max(1))
            .arg(bounds.retention.max(1));
        let _: i64 = self.run(&invocation).await?;
        Ok(())
    }

    async fn activity(
        &self,
        user_id: &str,
        bounds: ActivityBounds,
        now: u64,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        let key = self.names().activity_key(user_id);
        let max = i64::try_from(bounds.max.max(1)).unwrap_or(i64::MAX);
        let values: Vec<String> = self
            .command(redis::cmd("LRANGE").arg(&key).arg(0).arg(max - 1))
            .await?;
        Ok(values
            .iter()
            .filter_map(|value| match self.cipher() {
                Some(cipher) => {
                    let opened = cipher.open(|_| key.as_bytes().to_vec(), value)?;
                    let plain = String::from_utf8(opened.plain).ok()?;
                    SecurityEvent::from_stored(user_id, &plain)
                }
                None => SecurityEvent::from_stored(user_id, value),
            })
            .filter(|event| !event.expired(bounds, now))
            .collect())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn backing(&self) -> crate::store::Backing {
        crate::store::Backing::Redis(Box::new(self.connection()))
    }
}

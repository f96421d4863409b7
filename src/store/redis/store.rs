//! [`RedisStore`]: the [`SessionStore`] on Redis, each rule one Lua script.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::{Client, FromRedisValue, Script, ScriptInvocation, Value};

use super::connection::{RedisConnection, client_for};
use super::keys::KeyNames;
use super::record::{corrupt, data_fields, decode, pairs, sid_of};
use super::sealing::Cipher;
use crate::config::{RedisSettings, SessionLimitPolicy};
use crate::session::{SessionId, random_bytes};
use crate::store::{
    CreateOutcome, Lifetimes, ReuseKind, RevocationEvent, RevocationSink, RotateOutcome,
    RotateRequest, SessionLimit, SessionRecord, SessionStore, StoreError,
};

struct Scripts {
    create: Script,
    get: Script,
    rotate: Script,
    revoke: Script,
    revoke_all: Script,
    list: Script,
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
    /// Connects to the Redis that `settings` name: one node (one URL) or a Redis Cluster
    /// (several seed node URLs), under their key prefix, with their timeout for every call,
    /// trusting their CA certificate for `rediss://`, and sealing records when they hold an
    /// encryption key. Must be called inside a tokio runtime: it starts the revocation
    /// subscriber task.
    ///
    /// ```no_run
    /// use tower_jwt_session::config::RedisSettings;
    /// use tower_jwt_session::store::RedisStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect(&RedisSettings::from_env()?).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`StoreError`] when no URL is configured, a URL is malformed, the prefix contains `{`
    /// or `}`, Redis cannot be reached within the timeout, or the encryption key does not fit
    /// the records already stored ([`StoreError::Misconfigured`]).
    pub async fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        Self::open(
            settings.urls(),
            settings.key_prefix(),
            settings.timeout(),
            Cipher::new(settings.encryption_keys()),
            settings.ca_cert_pem(),
        )
        .await
    }

    async fn open(
        urls: &[String],
        prefix: &str,
        timeout: Duration,
        cipher: Option<Cipher>,
        ca_cert: Option<&[u8]>,
    ) -> Result<Self, StoreError> {
        let names = KeyNames::new(prefix, cipher.map(Arc::new))?;
        let channel = names.plain("revoked");
        let redis = RedisConnection::open(urls, timeout, ca_cert, names).await?;
        let sinks: Arc<Mutex<Vec<RevocationSink>>> = Arc::default();
        let pubsub_client = client_for(&urls[0], ca_cert)?;
        let subscriber = tokio::spawn(subscribe(pubsub_client, channel.clone(), sinks.clone()));
        let store = Self {
            redis,
            channel,
            scripts: Arc::new(Scripts::new()),
            sinks,
            subscriber,
        };
        store.ping().await?;
        store.check_key().await?;
        Ok(store)
    }

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

    fn cipher(&self) -> Option<&Cipher> {
        self.names().cipher()
    }

    /// Refuses to start with a sealing key that does not open what is already in Redis, or
    /// without a key when what is there is sealed: never silent plaintext, never a silent
    /// mismatch. A small sealed marker at `P:keycheck` records which key seals.
    async fn check_key(&self) -> Result<(), StoreError> {
        let key = self.names().plain("keycheck");
        let marker: Option<String> = self.command(redis::cmd("GET").arg(&key)).await?;
        let fresh = match (self.cipher(), marker) {
            (None, None) => return Ok(()),
            (None, Some(_)) => return Err(StoreError::Misconfigured(
                "session records in Redis are sealed, but SESSION_ENCRYPTION_KEY is not set".to_owned(),
            )),
            (Some(cipher), Some(marker)) => match cipher.open(b"tjs-keycheck", &marker) {
                Some((_, false)) => return Ok(()),
                Some((_, true)) => cipher.seal(b"tjs-keycheck", b"ok"),
                None => return Err(StoreError::Misconfigured(
                    "SESSION_ENCRYPTION_KEY (and SESSION_ENCRYPTION_PREVIOUS_KEYS) do not open the session records already in Redis".to_owned(),
                )),
            },
            (Some(cipher), None) => cipher.seal(b"tjs-keycheck", b"ok"),
        };
        self.command::<()>(redis::cmd("SET").arg(&key).arg(fresh))
            .await
    }

    /// Seals a record's data again with the current key (after it was read with an old one).
    async fn reseal(&self, record: &SessionRecord) {
        let Ok(fields) = data_fields(self.cipher(), record) else {
            return;
        };
        let key = self.names().record_key(record.session_id);
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&key);
        for (k, v) in &fields {
            cmd.arg(k).arg(v);
        }
        if let Err(error) = self.command::<()>(&cmd).await {
            tracing::debug!(%error, "re-sealing a session record failed; it is retried on the next write");
        } else if fields.first().is_some_and(|(k, _)| k == "d") {
            let _ = self
                .command::<()>(redis::cmd("HDEL").arg(&key).arg("u").arg("r"))
                .await;
        }
    }

    async fn run<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.redis.run(invocation).await
    }

    pub(super) async fn command<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.redis.command(cmd).await
    }
}

/// Listens for revocations published by any instance, reconnecting with back-off.
async fn subscribe(client: Client, channel: String, sinks: Arc<Mutex<Vec<RevocationSink>>>) {
    let notify = |event: RevocationEvent| {
        let sinks = sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for sink in sinks {
            sink(event);
        }
    };
    let mut delay = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    delay = Duration::from_millis(100);
                    // Anything published while we were away is unknown: start afresh.
                    notify(RevocationEvent::Resync);
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        if let Ok(sid) = payload.parse::<SessionId>() {
                            notify(RevocationEvent::Revoked(sid));
                        }
                    }
                    tracing::warn!("revocation subscription lost; reconnecting");
                }
                Err(error) => tracing::warn!(%error, "revocation subscribe failed"),
            },
            Err(error) => tracing::debug!(%error, "revocation subscriber cannot reach Redis"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
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
        let mut invocation = self
            .scripts
            .create
            .key(self.names().index_key(&record.user_id));
        invocation
            .key(self.names().record_key(sid))
            .arg(now)
            .arg(limit.max)
            .arg(policy)
            .arg(sid.to_string())
            .arg(self.names().record_prefix(&sid.as_bytes()[..4]))
            .arg(&self.channel)
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
        let reply: Vec<Value> = self.run(&invocation).await?;
        let status = reply
            .first()
            .and_then(|v| String::from_redis_value(v.clone()).ok())
            .ok_or_else(|| corrupt("create reply"))?;
        match status.as_str() {
            "deny" => Ok(CreateOutcome::LimitReached),
            "ok" => Ok(CreateOutcome::Created {
                evicted: reply[1..].iter().map(sid_of).collect::<Result<_, _>>()?,
            }),
            _ => Err(corrupt("create reply")),
        }
    }

    async fn rotate(&self, req: RotateRequest) -> Result<RotateOutcome, StoreError> {
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
            .arg(self.names().index_prefix(&sid.as_bytes()[..4]));
        let reply: Vec<Value> = self.run(&invocation).await?;
        let status = reply
            .first()
            .and_then(|v| String::from_redis_value(v.clone()).ok())
            .ok_or_else(|| corrupt("rotate reply"))?;
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
        let Some((record, reseal)) = decoded else {
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
        // A reused session's record is already deleted: sealing it again would bring it back.
        if reseal && matches!(status.as_str(), "rotated" | "grace") {
            self.reseal(&record).await;
        }
        rotate_outcome(&status, record, req.now)
    }

    async fn get(&self, session_id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let invocation = self.scripts.get.key(self.names().record_key(session_id));
        let (fields, pttl): (Vec<Value>, i64) = self.run(&invocation).await?;
        if fields.is_empty() {
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
        let mut invocation = self.scripts.revoke.key(self.names().record_key(session_id));
        invocation
            .arg(now)
            .arg(&self.channel)
            .arg(session_id.to_string())
            .arg(self.names().index_prefix(&session_id.as_bytes()[..4]));
        let revoked: i64 = self.run(&invocation).await?;
        Ok(revoked == 1)
    }

    async fn revoke_all(&self, user_id: &str, now: u64) -> Result<Vec<SessionId>, StoreError> {
        let mut revoked = Vec::new();
        for (index, tag) in self.names().index_keys(user_id) {
            let mut invocation = self.scripts.revoke_all.key(index);
            invocation
                .arg(now)
                .arg(self.names().record_prefix(&tag))
                .arg(&self.channel);
            let reply: Vec<Value> = self.run(&invocation).await?;
            for sid in &reply {
                revoked.push(sid_of(sid)?);
            }
        }
        Ok(revoked)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.command(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(corrupt("PING answered something else"))
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// The outcome of the rotate script's `status` for a record it returned.
fn rotate_outcome(
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

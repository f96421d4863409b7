//! [`RedisStore`]: the [`SessionStore`] on Redis, each rule one Lua script.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::{FromRedisValue, Script, ScriptInvocation, Value};

use super::connection::{
    RedisConnection, Shard, WaitReplicas, Written, client_for, key_slot, node_of, unavailable,
    with_address,
};
use super::keys::KeyNames;
use super::record::{
    auth_field, claims_fields, corrupt, data_fields, decode, pairs, sid_of, time_fields,
};
use crate::config::{RedisSettings, SessionLimitPolicy};
use crate::session::{SessionId, random_bytes};
use crate::store::sealing::Cipher;
use crate::store::{
    ActivityBounds, CreateOutcome, Lifetimes, ReuseKind, RevocationEvent, RevocationSink,
    RotateOutcome, RotateRequest, RotationDecision, SecurityEvent, SessionLimit, SessionRecord,
    SessionStore, StoreError, StoreWarning, apply_rotation, decide_rotation,
};

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
    /// Connects to the Redis that `settings` name: one node (one URL) or a Redis Cluster
    /// (several seed node URLs), under their key prefix, with their timeout for every call,
    /// trusting their CA certificate for `rediss://`, sealing records when they hold an
    /// encryption key, and confirming writes with replicas when they ask for it. Must be
    /// called inside a tokio runtime: it starts the revocation subscriber task.
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
    /// or `}`, Redis cannot be reached within the timeout, the encryption key does not fit
    /// the records already stored ([`StoreError::Misconfigured`]), or Redis evicts keys when
    /// full and the settings do not accept it ([`StoreError::Misconfigured`], naming
    /// `REDIS_ALLOW_EVICTION`; see
    /// [`RedisSettings::with_eviction_allowed`]).
    pub async fn connect(settings: &RedisSettings) -> Result<Self, StoreError> {
        let cipher = Cipher::new(
            settings.encryption_keys(),
            settings.accepts_unsealed_records(),
        );
        let names = KeyNames::new(settings.key_prefix(), cipher.map(Arc::new))?;
        let channel = names.plain("revoked");
        let wait = settings
            .wait_replicas()
            .map(|(replicas, timeout)| WaitReplicas { replicas, timeout });
        let redis = RedisConnection::open(
            settings.urls(),
            settings.timeout(),
            settings.ca_cert_pem(),
            names,
            wait,
        )
        .await?;
        let sinks: Arc<Mutex<Vec<RevocationSink>>> = Arc::default();
        let subscriber = tokio::spawn(
            Subscriber {
                redis: redis.clone(),
                urls: settings.urls().to_vec(),
                ca_cert: settings.ca_cert_pem().map(<[u8]>::to_vec),
                channel: channel.clone(),
                sinks: sinks.clone(),
            }
            .run(),
        );
        let store = Self {
            redis,
            channel,
            scripts: Arc::new(Scripts::new()),
            sinks,
            subscriber,
        };
        store.ping().await?;
        store.check_key().await?;
        store.check_setup(settings.allows_eviction()).await?;
        Ok(store)
    }

    /// Refuses a Redis that evicts keys unless the settings accept it, and logs at WARN what
    /// else in its setup can lose sessions or logouts.
    async fn check_setup(&self, eviction_allowed: bool) -> Result<(), StoreError> {
        for warning in self.warnings().await? {
            if warning.code() == EVICTS_KEYS && !eviction_allowed {
                return Err(StoreError::Misconfigured(format!(
                    "{} Refused: set maxmemory-policy noeviction, or set REDIS_ALLOW_EVICTION=true \
                     to start anyway and accept that sessions and logouts can vanish",
                    warning.message()
                )));
            }
            tracing::warn!(code = warning.code(), "{}", warning.message());
        }
        Ok(())
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

    pub(super) fn cipher(&self) -> Option<&Cipher> {
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
            (Some(cipher), Some(marker)) => match cipher.open(|_| b"tjs-keycheck".to_vec(), &marker) {
                Some(opened) if !opened.old_key => return Ok(()),
                Some(_) => cipher.seal(b"tjs-keycheck", b"ok"),
                None => return Err(StoreError::Misconfigured(
                    "SESSION_ENCRYPTION_KEY (and SESSION_ENCRYPTION_PREVIOUS_KEYS) do not open the session records already in Redis".to_owned(),
                )),
            },
            (Some(cipher), None) => cipher.seal(b"tjs-keycheck", b"ok"),
        };
        self.command::<()>(redis::cmd("SET").arg(&key).arg(fresh))
            .await
    }

    /// Claims this store's key prefix for the application `config` configures, as
    /// [`SessionManagerBuilder::connect`](crate::manager::SessionManagerBuilder::connect) does at startup: two
    /// applications with different signing keys on one prefix would evict, list and revoke each
    /// other's sessions, so the second one to start is refused instead. The prefix remembers a
    /// fingerprint of each signing key (`P:owners`, an HMAC that tells nothing of the key); an
    /// application sharing any key with it (a restart, a rotation with the old secret in
    /// `JWT_PREVIOUS_SECRETS`, its rollback) is the same one, and fingerprints unused for the
    /// session lifetime are forgotten. Call it when you build a manager on a store you
    /// connected yourself.
    ///
    /// ```no_run
    /// use tower_jwt_session::store::RedisStore;
    /// use tower_jwt_session::{SessionConfig, SessionManager};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = SessionConfig::from_env()?;
    /// let store = RedisStore::connect(config.redis()).await?;
    /// store.claim(&config).await?;
    /// let manager = SessionManager::builder(config).store(store).build()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] naming the prefix when an application with none of these
    /// keys has used it within the session lifetime; [`StoreError`] when Redis cannot be
    /// reached.
    pub async fn claim(&self, config: &crate::SessionConfig) -> Result<(), StoreError> {
        let rules = config.rules();
        self.claim_with(
            &crate::token::refresh::RefreshKeys::from_tokens(config.tokens()).owner_fingerprints(),
            crate::clock::unix_ms(std::time::SystemTime::now()),
            crate::clock::duration_ms(rules.session_ttl() + rules.access_token_ttl()),
        )
        .await
    }

    /// [`claim`](Self::claim) for these fingerprints (current key first), at `now`, forgetting
    /// those unused for `retention` (both in ms).
    async fn claim_with(
        &self,
        owner: &[String],
        now: u64,
        retention: u64,
    ) -> Result<(), StoreError> {
        let Some(first) = owner.first() else {
            return Ok(());
        };
        let mut invocation = self.scripts.claim.key(self.names().plain("owners"));
        invocation
            .arg(now)
            .arg(now.saturating_sub(retention))
            .arg(first);
        for previous in &owner[1..] {
            invocation.arg(previous);
        }
        let claimed: i64 = self.run(&invocation).await?;
        if claimed == 1 {
            return Ok(());
        }
        let prefix = self.names().prefix();
        Err(StoreError::Misconfigured(format!(
            "REDIS_KEY_PREFIX `{prefix}` holds the sessions of an application signing with \
             another key: two applications on one prefix would evict, list and revoke each \
             other's sessions. Give each application its own REDIS_KEY_PREFIX. If you replaced \
             JWT_SECRET, list the old one in JWT_PREVIOUS_SECRETS, or delete the key \
             `{prefix}:owners` to let every session of the old key go"
        )))
    }

    /// A key of `shard`'s slot range under this store's prefix (it never exists), and its
    /// slot: what health reads to reach the range's primary the way the scripts do.
    fn probe_key(&self, shard: &Shard) -> (String, u16) {
        (0u32..)
            .map(|n| format!("{}:probe:{n}", self.names().prefix()))
            .map(|key| {
                let slot = key_slot(key.as_bytes());
                (key, slot)
            })
            .find(|(_, slot)| (shard.first_slot..=shard.last_slot).contains(slot))
            .expect("every slot range holds some key")
    }

    /// When writes wait for replicas: the warning for a primary whose `INFO replication`
    /// counts fewer connected replicas than they wait for (its writes all answer 503).
    fn replicas_warning(&self, info: &str) -> Option<StoreWarning> {
        let wait = self.redis.wait()?;
        let connected = info_field(info, "connected_slaves")?.parse::<u32>().ok()?;
        (connected < wait.replicas).then(|| {
            StoreWarning::new(
                "store_replicas_missing",
                format!(
                    "Redis has {connected} connected replica(s), and REDIS_WAIT_REPLICAS asks {} \
                     to confirm every write: writes to it answer 503 until enough replicas are back",
                    wait.replicas
                ),
            )
        })
    }

    /// Runs `action` on the record of `sid` if it is still as `read` (its first sealed part
    /// and its generation `generation`): `false` when it changed or went away meanwhile.
    async fn apply(
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
    async fn rotate_sealed(&self, req: RotateRequest) -> Result<RotateOutcome, StoreError> {
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
    async fn revoke_all_but(
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

    async fn run<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.redis.run(invocation).await
    }

    /// The channel the scripts publish revocations on: none when writes wait for replicas,
    /// since a revocation published before its write is confirmed would be believed by every
    /// instance even if a failover then lost the write; [`announce`](Self::announce) publishes
    /// it once confirmed.
    fn script_channel(&self) -> &str {
        match self.redis.wait() {
            Some(_) => "",
            None => &self.channel,
        }
    }

    /// When writes wait for replicas: publishes revocations whose writes replicas confirmed
    /// (the scripts published them otherwise). A failed publish leaves the other instances to
    /// the cache's 1 s lifetime for "active" answers.
    async fn announce(&self, sids: impl IntoIterator<Item = String>) {
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
    async fn write(
        &self,
        invocation: &ScriptInvocation<'_>,
        sid: SessionId,
    ) -> Result<(Vec<Value>, Written<'_>), StoreError> {
        self.redis
            .write(invocation, &self.names().record_key(sid))
            .await
    }

    pub(super) async fn command<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.redis.command(cmd).await
    }
}

/// Listens for revocations published by any instance, on any node that answers.
///
/// Published revocations reach every node of a cluster (classic pub/sub is broadcast over the
/// cluster bus), so the subscription may live on any node: the configured ones first, then
/// every node the cluster reports. It moves to the next node when its connection closes, and
/// when a heartbeat it publishes through the store's connection once a second does not come
/// back within three seconds: what a paused node, or one cut off from the rest of the cluster,
/// gives. Each time it subscribes it sends [`RevocationEvent::Resync`]: anything published
/// while it was away is unknown.
struct Subscriber {
    redis: RedisConnection,
    urls: Vec<String>,
    ca_cert: Option<Vec<u8>>,
    channel: String,
    sinks: Arc<Mutex<Vec<RevocationSink>>>,
}

/// How often the subscriber publishes its heartbeat, and how late it may come back.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
const HEARTBEAT_LATE: Duration = Duration::from_secs(3);

impl Subscriber {
    fn notify(&self, event: RevocationEvent) {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for sink in sinks {
            sink(event);
        }
    }

    /// The nodes to subscribe on, in order: the configured URLs, then every node the cluster
    /// reports (with the first URL's scheme and credentials).
    async fn candidates(&self) -> Vec<String> {
        let mut urls = self.urls.clone();
        if let Ok(Some(shards)) = self.redis.shards().await {
            for (host, port) in shards.into_iter().flat_map(|shard| shard.nodes) {
                if let Some(url) = with_address(&self.urls[0], &host, port)
                    && !urls.contains(&url)
                {
                    urls.push(url);
                }
            }
        }
        urls
    }

    async fn run(self) {
        let heartbeat = format!("hb:{}:", super::keys::hex(&random_bytes::<8>()));
        let mut next = 0usize;
        let mut delay = Duration::from_millis(100);
        loop {
            let candidates = self.candidates().await;
            let url = &candidates[next % candidates.len()];
            match self.listen(url, &heartbeat, &mut delay).await {
                Ok(lost) => tracing::warn!(
                    node = node_of(url),
                    cause = lost,
                    "revocation subscription lost; subscribing on another node"
                ),
                Err(error) => tracing::debug!(
                    node = node_of(url),
                    %error,
                    "revocation subscriber cannot subscribe on this node"
                ),
            }
            next = next.wrapping_add(1);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Subscribes on `url` and delivers what arrives until the subscription is lost; returns
    /// why, or the error that kept it from subscribing.
    async fn listen(
        &self,
        url: &str,
        heartbeat: &str,
        delay: &mut Duration,
    ) -> Result<&'static str, StoreError> {
        let timeout = self.redis.timeout() * 2;
        let client = client_for(url, self.ca_cert.as_deref())?;
        let pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(unavailable)?;
        let (mut sink, mut messages) = pubsub.split();
        tokio::time::timeout(timeout, sink.subscribe(&self.channel))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(unavailable)?;
        *delay = Duration::from_millis(100);
        self.notify(RevocationEvent::Resync);
        let mut sequence = 0u64;
        // The heartbeat published and not seen yet, and when.
        let mut pending: Option<(String, Instant)> = None;
        let mut next_beat = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_millis(250), messages.next()).await {
                Ok(Some(message)) => {
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    if pending.as_ref().is_some_and(|(beat, _)| *beat == payload) {
                        pending = None;
                    } else if let Ok(sid) = payload.parse::<SessionId>() {
                        self.notify(RevocationEvent::Revoked(sid));
                    }
                }
                Ok(None) => return Ok("the connection closed"),
                Err(_) => {}
            }
            if pending
                .as_ref()
                .is_some_and(|(_, sent)| sent.elapsed() > HEARTBEAT_LATE)
            {
                drop(sink);
                return Ok("a heartbeat published through the store did not arrive");
            }
            if pending.is_none() && Instant::now() >= next_beat {
                sequence += 1;
                let beat = format!("{heartbeat}{sequence}");
                // A failed publish is the store's failure, not the subscription's.
                let published: Result<i64, _> = self
                    .redis
                    .command(redis::cmd("PUBLISH").arg(&self.channel).arg(&beat))
                    .await;
                if published.is_ok() {
                    pending = Some((beat, Instant::now()));
                }
                next_beat = Instant::now() + HEARTBEAT_EVERY;
            }
        }
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

/// The reason code of a Redis that evicts keys when full.
const EVICTS_KEYS: &str = "store_evicts_keys";

/// The warning for a Redis whose `INFO memory` says it evicts keys when full.
pub(super) fn eviction_warning(info: &str) -> Option<StoreWarning> {
    let field = |name: &str| info_field(info, name);
    let limit = field("maxmemory")?.parse::<u64>().ok()?;
    let policy = field("maxmemory_policy")?;
    (limit > 0 && policy != "noeviction").then(|| {
        StoreWarning::new(
            EVICTS_KEYS,
            format!(
                "Redis evicts keys when it reaches maxmemory ({limit} bytes, maxmemory-policy \
                 {policy}): sessions, user indexes and logouts can vanish without an error; set \
                 maxmemory-policy noeviction (docs/deployment.md)"
            ),
        )
    })
}

/// A field of an `INFO` answer (`name:value` lines).
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// What [`RedisStore::apply`] does to a sealed record.
#[derive(Clone, Copy)]
enum Action<'a> {
    /// Write this record, sealed anew.
    Write(&'a SessionRecord),
    /// Delete it, take it out of its user's index, and publish its revocation.
    Drop,
}

/// How often a sealed rotation reads again after the record changed under it. Each retry
/// means another writer won (and a rule that writes moves the generation on), so the next read
/// almost always decides without a write: a few attempts are plenty.
const MAX_SEALED_ATTEMPTS: usize = 8;

/// Confirms a rotation with replicas (when the settings ask for it) before a client is given
/// what it decided: a successor (`rotated`), the successor again (`grace`: a retry after a 503
/// answers from the first attempt's write, which may not have reached a replica), a reuse
/// revocation, or "no such session" (the write that ended it may not have reached a replica
/// either). Only the expiries, which follow from times alone, are answered as they are.
async fn confirm_rotation(status: &str, written: Written<'_>) -> Result<(), StoreError> {
    match status {
        "session_expired" | "token_expired" => Ok(()),
        _ => written.confirm().await,
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

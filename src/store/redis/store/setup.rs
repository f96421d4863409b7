//! Starting a [`RedisStore`](super::RedisStore): connecting, checking the server's setup and the
//! sealing key, and claiming the key prefix for one application.

use std::sync::{Arc, Mutex};

use super::health::EVICTS_KEYS;
use super::subscriber::Subscriber;
use super::{RedisStore, Scripts};
use crate::config::RedisSettings;
use crate::store::redis::connection::{RedisConnection, WaitReplicas};
use crate::store::redis::keys::KeyNames;
use crate::store::sealing::Cipher;
use crate::store::{RevocationSink, SessionStore, StoreError};

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
    pub(super) async fn check_setup(&self, eviction_allowed: bool) -> Result<(), StoreError> {
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
}

impl RedisStore {
    /// Refuses to start with a sealing key that does not open what is already in Redis, or
    /// without a key when what is there is sealed: never silent plaintext, never a silent
    /// mismatch. A small sealed marker at `P:keycheck` records which key seals.
    pub(super) async fn check_key(&self) -> Result<(), StoreError> {
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
        let claim = crate::store::OwnerClaim::of(config);
        self.claim_with(&claim.fingerprints, claim.now_ms, claim.retention_ms)
            .await
    }

    /// [`claim`](Self::claim) for these fingerprints (current key first), at `now`, forgetting
    /// those unused for `retention` (both in ms).
    pub(super) async fn claim_with(
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
}

//! Session state: the [`SessionStore`] trait and its in-memory backend, [`MemoryStore`].
//!
//! A store keeps one [`SessionRecord`] per session. It never sees a refresh token: tokens are
//! derived from a server key and the session's refresh *generation*, so the store holds only
//! that counter. Every operation that must be atomic is one call on the store. Inside
//! the crate the decisions of those calls come from pure functions (the in-memory store runs
//! them, the Redis store's Lua scripts mirror them), and the shared test suite holds every
//! backend to the same rules; [`SessionStore`] documents what a custom backend must do.
//!
//! Times are milliseconds since the Unix epoch and are passed in by the caller, so stores are
//! clock-free and the rules are testable on a manual clock.

mod activity;
mod device;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod replay;
// The Redis record formats in it (sealed parts, version-1 seals) are unused without Redis.
#[cfg(any(feature = "redis", feature = "postgres"))]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) mod sealing;
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod suite;

mod admission;
mod rotation;

pub use activity::{ActivityBounds, EndReason, EventKind, SecurityEvent};
pub use admission::{CreateOutcome, SessionLimit, plan_admission};
pub use device::{DeviceInfo, MAX_DEVICE_LABEL_LEN};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisStore;
pub use rotation::{
    ReuseKind, RotateOutcome, RotateRequest, RotationDecision, SessionUpdate, apply_rotation,
    decide_rotation, purge_at, rotation_outcome,
};

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use crate::session::AuthContext;
use crate::session::{CustomClaims, SessionId};

/// A session as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub session_id: SessionId,
    /// The user it belongs to.
    pub user_id: String,
    /// Roles put into its access tokens.
    pub roles: Vec<String>,
    /// When it was created (login).
    pub created_at: u64,
    /// When it was last active: created or refreshed.
    pub last_active_at: u64,
    /// Its absolute end; no refresh extends it.
    pub expires_at: u64,
    /// The generation of the current refresh token (0 at login, +1 per rotation).
    pub generation: u64,
    /// When the current generation was issued.
    pub rotated_at: u64,
    /// When the current refresh token expires (capped by `expires_at`).
    pub refresh_expires_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
    /// The last instant the store must remember it: after this no token of the session can be
    /// used, and the store may forget it.
    pub purge_at: u64,
    /// The device it was started from, for the devices list (display only). Stores keep it
    /// as it was given at creation; records written before it existed read as the default.
    pub device: DeviceInfo,
    /// The app's own claims, put into its access tokens. Stores keep them as
    /// [`as_json`](CustomClaims::as_json) gives them (one string, sealed with the record where
    /// the store seals) and read them back with [`CustomClaims::from_json`]; records written
    /// before they existed read as none. A rotation with an update replaces them.
    pub claims: CustomClaims,
    /// When and how the user last proved who they are: set at creation, kept by every
    /// refresh, replaced only by a rotation whose update carries a new one (a
    /// re-authentication). Stores keep it with the record's data (sealed where the store
    /// seals); records written before it existed read as authenticated at `created_at`, with
    /// no `amr` or `acr`.
    pub auth: AuthContext,
}

impl SessionRecord {
    /// Whether the session can still be used at `now`: not revoked, before its absolute end,
    /// and with a token that can still be presented.
    pub fn is_live(&self, now: u64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && now <= self.purge_at
    }
}

/// Lifetimes the store needs to apply the rules, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Refresh-token lifetime.
    pub refresh_ttl: u64,
    /// Grace window for the immediate parent of the current refresh token.
    pub reuse_interval: u64,
    /// How long after its last activity a session's access tokens may still be presented
    /// (access-token lifetime plus leeway); records are kept at least that long.
    pub access_retention: u64,
}

/// A store operation failed: the store could not be reached, timed out, or answered nonsense.
/// Never treated as success: the manager maps it to 503 `unavailable`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or failed.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer in time.
    #[error("session store timed out")]
    Timeout,
    /// The store reached a write after its caller's deadline (a stall: a paused server, a long
    /// fsync) and did not apply it, because the caller had given up by then.
    #[error("session store reached the operation after its deadline; nothing was written")]
    DeadlinePassed,
    /// The backend returned data that does not decode.
    #[error("session store returned corrupt data: {0}")]
    Corrupt(String),
    /// The store's settings do not fit what it holds (e.g. a sealing key that does not open
    /// the records already stored). A startup error.
    #[error("session store misconfigured: {0}")]
    Misconfigured(String),
    /// The store does not offer this operation (a store written before it existed: the
    /// default methods of [`SessionStore`] answer this).
    #[error("the session store does not support {0}")]
    Unsupported(&'static str),
}

/// Something in a store's setup that can lose sessions or logouts without an error (a Redis
/// that evicts keys when full, a PostgreSQL that acknowledges commits before they are durable),
/// from [`SessionStore::warnings`].
///
/// The [`code`](Self::code) is a stable reason code, the only part `GET /api/token/health`
/// shows (that answer is public: it never carries settings, sizes or host names). The
/// [`message`](Self::message) says what is wrong and how to fix it, for an operator: the
/// manager logs it at `warn` when the warning first appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreWarning {
    code: &'static str,
    message: String,
}

impl StoreWarning {
    /// A warning with its reason code (`snake_case`, stable across releases) and its message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The reason code, as health reports show it (`store_evicts_keys`, …).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// What is wrong and how to fix it, for an operator's log.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Where a store keeps its state, so that the protections around the sessions (the per-client
/// rate limit, the login lock-out, the failed-refresh tracking) keep theirs in the same place,
/// on the same connection: shared by every instance when the sessions are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Backing {
    /// In this process only: the memory store, or a store of your own that names no shared
    /// connection (the protections then count per instance, said at `warn` when the store is
    /// not the memory store).
    Process,
    /// A Redis or Redis Cluster connection.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis(Box<redis::RedisConnection>),
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(Box<postgres::PostgresConnection>),
}

/// What a store tells the revocation cache about revocations it learns of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationEvent {
    /// This session was revoked, possibly by another instance.
    Revoked(SessionId),
    /// Events may have been missed (a subscription was re-established): forget everything.
    Resync,
}

/// A receiver of [`RevocationEvent`]s, registered with [`SessionStore::watch_revocations`].
pub type RevocationSink = Arc<dyn Fn(RevocationEvent) + Send + Sync>;

/// Session state shared by every instance that uses it.
///
/// Implementations must make each method atomic with respect to the others for the same session
/// and user; in particular [`rotate`](Self::rotate) and [`create`](Self::create) must decide
/// and write in one step, without a read-modify-write race. Usable as a trait object
/// (`Arc<dyn SessionStore>`). The crate's own backends ([`MemoryStore`], and `RedisStore` with
/// the `redis` feature) pass one shared test suite of these rules.
#[async_trait]
pub trait SessionStore: fmt::Debug + Send + Sync + 'static {
    /// A fresh session id for a session of `user_id`. The default is 128 random bits; a store
    /// may put routing information into it (the Redis store puts the user's hash tag there).
    fn new_session_id(&self, user_id: &str) -> SessionId {
        let _ = user_id;
        SessionId::random()
    }

    /// Registers a receiver for revocations this store learns of from elsewhere (other
    /// instances). The default does nothing: a store private to one process has no "elsewhere".
    fn watch_revocations(&self, sink: RevocationSink) {
        let _ = sink;
    }

    /// Stores a new session for `record.user_id`, applying the per-user `limit` atomically:
    /// below `limit.max` live sessions it is added; at the limit, with the evict policy, the
    /// least recently active live sessions (ties broken by creation order) are revoked to make
    /// room and returned in [`CreateOutcome::Created`]; with the deny policy nothing is stored
    /// and the answer is [`CreateOutcome::LimitReached`].
    async fn create(
        &self,
        record: SessionRecord,
        limit: SessionLimit,
        lifetimes: &Lifetimes,
        now: u64,
    ) -> Result<CreateOutcome, StoreError>;

    /// Applies the refresh rules of [the session rules](crate::routes#sessions-and-tokens) to the session atomically and returns the outcome,
    /// checked in this order: a revoked session is [`RotateOutcome::Revoked`]; one at or past
    /// its `expires_at` is [`RotateOutcome::SessionExpired`]; the current generation past its
    /// `refresh_expires_at` is [`RotateOutcome::TokenExpired`], otherwise it advances to the
    /// next generation ([`RotateOutcome::Rotated`]: `rotated_at` and `last_active_at` become
    /// `now`, the refresh expiry `now + refresh_ttl` capped by `expires_at`, and the purge time
    /// the later of that and `now + access_retention`, capped by `expires_at +
    /// access_retention`, and the roles, claims and authentication context of the request's
    /// [`update`](RotateRequest::update), if any, replace the record's in the same atomic step);
    /// a rotation whose update carries an authentication context (a re-authentication) at any
    /// generation but the current one is [`RotateOutcome::NotFound`] and changes nothing;
    /// a generation never issued is [`RotateOutcome::NotFound`]; the immediate parent within
    /// `reuse_interval` of the rotation is [`RotateOutcome::Grace`] (nothing changes, an update
    /// included); the parent after it, or any older generation, revokes the session
    /// ([`RotateOutcome::Reused`]).
    ///
    /// Before it writes anything, a store compares the request's
    /// [`deadline`](RotateRequest::deadline) with its own clock (Redis `TIME`, PostgreSQL
    /// `clock_timestamp()`, the system clock in memory) and answers
    /// [`StoreError::DeadlinePassed`], changing nothing, when it has passed: a refresh answered
    /// with an error never takes effect later.
    async fn rotate(&self, request: RotateRequest) -> Result<RotateOutcome, StoreError>;

    /// The record of a session, live or revoked, if the store still has it.
    async fn get(&self, session_id: SessionId) -> Result<Option<SessionRecord>, StoreError>;

    /// A user's live sessions at `now`.
    async fn list(&self, user_id: &str, now: u64) -> Result<Vec<SessionRecord>, StoreError>;

    /// Revokes one session. Returns whether it was live.
    async fn revoke(&self, session_id: SessionId, now: u64) -> Result<bool, StoreError>;

    /// Revokes every live session of a user and returns their ids.
    async fn revoke_all(&self, user_id: &str, now: u64) -> Result<Vec<SessionId>, StoreError>;

    /// Revokes every live session of a user but `keep` and returns their ids ("sign out all
    /// other devices"). `keep` is left as it is, live or not, even when it is another user's.
    ///
    /// The default lists the user's sessions and revokes them one by one: each revocation is
    /// atomic, the whole is not (a session created meanwhile may survive, as it would if it had
    /// been created just after). The crate's own stores do it in one step.
    async fn revoke_all_except(
        &self,
        user_id: &str,
        keep: SessionId,
        now: u64,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut revoked = Vec::new();
        for record in self.list(user_id, now).await? {
            if record.session_id != keep && self.revoke(record.session_id, now).await? {
                revoked.push(record.session_id);
            }
        }
        Ok(revoked)
    }

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Where the store keeps its state, for the protections that share it
    /// ([`Backing::Process`] by default).
    fn backing(&self) -> Backing {
        Backing::Process
    }

    /// What in the store's own setup can lose sessions or logouts without an error (a Redis
    /// that evicts keys under memory pressure, say): health reports show their codes, the
    /// manager logs their messages. None by default.
    async fn warnings(&self) -> Result<Vec<StoreWarning>, StoreError> {
        Ok(Vec::new())
    }

    /// Whether the store keeps the security activity trail
    /// ([`record_activity`](Self::record_activity), [`activity`](Self::activity)). The
    /// default is `false`: the manager then says at startup, at `warn`, and in health
    /// (`activity_not_kept`) that the trail is not kept; the app's hook still gets every event.
    fn keeps_activity(&self) -> bool {
        false
    }

    /// Adds `event` to its user's trail and trims the trail to `bounds` in the same step:
    /// never more than `bounds.max` events per user whatever the history, none kept much
    /// longer than `bounds.retention` after `now` (milliseconds). Stores that seal records
    /// seal the event too, and key the trail by the user's hash as they key sessions.
    ///
    /// The default answers [`StoreError::Unsupported`].
    async fn record_activity(
        &self,
        event: &SecurityEvent,
        bounds: ActivityBounds,
        now: u64,
    ) -> Result<(), StoreError> {
        let _ = (event, bounds, now);
        Err(StoreError::Unsupported("the security activity trail"))
    }

    /// A user's trail, newest first: at most `bounds.max` events, none older than
    /// `bounds.retention` at `now`.
    ///
    /// The default answers [`StoreError::Unsupported`].
    async fn activity(
        &self,
        user_id: &str,
        bounds: ActivityBounds,
        now: u64,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        let _ = (user_id, bounds, now);
        Err(StoreError::Unsupported("the security activity trail"))
    }

    /// A short name for health reports: `memory`, `redis`.
    fn kind(&self) -> &'static str;
}

/// What a shared store remembers of the application that claims its key prefix or table
/// prefix: fingerprints of its refresh-token keys (current first), when, and how long an unused
/// fingerprint is kept (a session lifetime and an access-token lifetime).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) struct OwnerClaim {
    pub(crate) fingerprints: Vec<String>,
    pub(crate) now_ms: u64,
    pub(crate) retention_ms: u64,
}

#[cfg(any(feature = "redis", feature = "postgres"))]
impl OwnerClaim {
    /// The claim of the application `config` configures, now.
    pub(crate) fn of(config: &crate::SessionConfig) -> Self {
        let rules = config.rules();
        Self {
            fingerprints: crate::token::refresh::RefreshKeys::from_tokens(config.tokens())
                .owner_fingerprints(),
            now_ms: crate::clock::unix_ms(std::time::SystemTime::now()),
            retention_ms: crate::clock::duration_ms(rules.session_ttl() + rules.access_token_ttl()),
        }
    }
}

#[cfg(test)]
mod tests;

//! [`RedisStore`]: sessions in Redis or Redis Cluster, shared by every instance (feature `redis`).
//!
//! # Layout
//!
//! For a key prefix `P` (`REDIS_KEY_PREFIX`, default `tjs`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{tag}:s:<sid>` | hash | one session record; expires with it |
//! | `P:{tag}:u:<user hash>` | sorted set | the user's session ids by creation time |
//! | `P:revoked` | pub/sub channel | ids of revoked sessions, for every instance's cache |
//! | `P:keycheck` | string | a sealed marker: which sealing key seals (a wrong key is a startup error) |
//! | `P:owners` | sorted set | fingerprints of the signing keys of the application using the prefix ([`RedisStore::claim`]) |
//! | `P:dpop:<hash>` | string | a DPoP proof seen within its window ([`RedisReplayCache`]); `<hash>` is 32 hex digits of SHA-256 of its key thumbprint and `jti`; expires with the proof |
//! | `P:{tag}:w` | string | with `REDIS_WAIT_REPLICAS` only: a marker written (1 s lifetime) before each `WAIT`, see below |
//!
//! `tag` is derived from the user id and is also the first four bytes of every session id this
//! store hands out, so a session's record and its user's index always share one cluster slot,
//! and every rule of [the session rules](crate::routes#sessions-and-tokens) runs as one Lua script on one node: never read-modify-write from the
//! client. No refresh token ever reaches Redis: records hold the refresh *generation* only.
//!
//! # What a user costs
//!
//! A session that ends (logout, logout-all, eviction, reuse detection) has its record deleted
//! and leaves its user's index in the same script: each record keeps the end of its index's
//! name (field `i`) for that. A record also keeps its purge time (`p`); past it, it counts as
//! gone and the next script that meets it deletes it, besides its key expiring by itself. So a
//! user's index and keys hold their live sessions plus those that expired within the last
//! access-token lifetime, and the scripts that walk the index (create, list, revoke-all) do
//! work bounded by that, whatever the user's history.
//!
//! # Sealed records
//!
//! With an encryption key, a record's user id, roles, times and refresh generation are sealed
//! together (XChaCha20-Poly1305, the session id as associated data) in fields `d`, `d1`, …; the
//! times stay in clear too, for the scripts that sort and sweep a user's sessions, and must
//! agree with the seal. A record that is not what this crate wrote is no session. Since a script
//! cannot open a seal, rotation of a sealed record is decided in Rust on the opened record and
//! applied by a compare-and-set script (`lua/apply.lua`); the other rules only read clear times
//! or delete. What this promises, and what it does not (rollback of a whole record), is in
//! `docs/deployment.md`.
//!
//! # Failure behaviour
//!
//! Every call has a timeout ([`RedisSettings::timeout`](crate::config::RedisSettings::timeout),
//! 1 s by default); a call that fails or times out is a [`StoreError`](crate::store::StoreError), which the manager turns
//! into 503 `unavailable` and the layer into a refusal on a cache miss (fail closed). The
//! connections reconnect by themselves when Redis comes back, and a call that fails the way a
//! stale connection fails (a timeout, `READONLY`, `CLUSTERDOWN`, a slot that moved) rebuilds the
//! connection from scratch, so a cluster failover needs no restart even when the old master never
//! closed its sockets (`connection.rs` says why). Health reads a key of every slot range through
//! that same connection, so a stuck instance is told from a healthy one.
//!
//! # Replicas
//!
//! Redis replicates asynchronously, so a failover can lose what a primary acknowledged last.
//! With [`RedisSettings::with_wait_replicas`](crate::config::RedisSettings::with_wait_replicas)
//! every write a client is told of is confirmed by `WAIT` first, on the connection that made it,
//! after a marker write in the same slot (`WAIT` counts the writes of its own connection; the
//! marker makes it cover what a retry answers from, written by an earlier attempt).
//!
//! # Cross-instance revocation
//!
//! Each revocation script publishes the session id on `P:revoked`; every instance subscribes and
//! writes the revocation into its cache at once, so other instances see it within milliseconds.
//! A cluster delivers a published message on every node, so the subscription lives on whichever
//! node answers, and moves when its connection closes or its heartbeat (published through the
//! store's connection every second) does not come back within 3 s. While it moves, the cache's
//! short lifetime for "active" answers (1 s) still bounds the delay, and the cache is cleared
//! each time it subscribes.
//!
//! # One connection for sessions and limits
//!
//! [`RedisStore::connection`] hands out the store's [`RedisConnection`]; the Redis backends of
//! the rate limiter and of the attempt tracker (`rate_limit::RedisRateLimitBackend` and
//! `rate_limit::RedisAttemptBackend`) run on it, under the same prefix and key-name hashing.
//! Their keys are `P:rl:{client}` and `P:at:{…}`. So does the DPoP replay cache,
//! [`RedisReplayCache`] (`Backing::dpop_replay_cache`), with keys `P:dpop:<hash>`.
//!
//! # Files
//!
//! `connection.rs` (URLs, TLS, timeouts, one node or a cluster), `keys.rs` (key names, hash
//! tags), `../sealing.rs` (record encryption, shared with the PostgreSQL store), `record.rs` (a record's hash fields),
//! `store.rs` (the [`SessionStore`](crate::store::SessionStore) impl; its rules are the Lua
//! scripts in `lua/`), `replay.rs` (the DPoP replay cache).

mod connection;
mod keys;
mod record;
mod replay;
mod store;

pub use connection::RedisConnection;
pub use replay::RedisReplayCache;
pub use store::RedisStore;

#[cfg(test)]
#[path = "../../../tests/common/redis_server.rs"]
pub(crate) mod redis_server;

#[cfg(test)]
mod tests;

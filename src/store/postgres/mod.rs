//! [`PostgresStore`]: sessions in PostgreSQL, shared by every instance (feature `postgres`).
//!
//! For applications that already run PostgreSQL and no Redis. The store runs on a `sqlx`
//! connection pool; its queries are plain SQL with bound parameters (nothing needs a database
//! at compile time).
//!
//! # Layout
//!
//! For a table prefix `P` (`DATABASE_TABLE_PREFIX`, default `tjs`):
//!
//! | object | holds |
//! |---|---|
//! | table `P_sessions` | one row per session: id (primary key), user key, the times and refresh generation the rules read, and `data` (user id and roles) |
//! | index `P_sessions_user` | `(user_key, created_at, session_id)`: a user's sessions in creation order |
//! | index `P_sessions_purge` | `purge_at`: rows whose tokens can no longer be presented, for deletion |
//! | table `P_meta` | the schema version, a sealed marker of the sealing key, and fingerprints of the signing keys of the application using the prefix ([`PostgresStore::claim`]) |
//! | channel `P_revoked` | `NOTIFY` of revoked session ids, for every instance's cache |
//! | table `P_rate_limits` (unlogged) | the rate limiter's counters, one row per client (`rate_limit::PostgresRateLimitBackend`) |
//! | table `P_attempts` (unlogged) | the attempt tracker's counts and lock-outs, one row per key (`rate_limit::PostgresAttemptBackend`) |
//! | table `P_activity` | the security activity trail: each user's newest events, in a ring of slots |
//! | table `P_dpop_replay` (unlogged) | the DPoP proofs seen within their window, one row per proof, keyed by a 16-byte hash ([`PostgresReplayCache`], schema version 4) |
//!
//! The tables are created (and later upgraded) by migrations embedded in the crate, in one
//! transaction under an advisory lock of the prefix, with `CREATE … IF NOT EXISTS`:
//! idempotent, and safe when several instances start at once. [`PostgresStore::connect`]
//! reads the schema version first and migrates only when the tables are missing or older
//! (`DATABASE_MIGRATE=auto`, the default), or refuses to start then, naming
//! `DATABASE_MIGRATE`, with `DATABASE_MIGRATE=off`; [`PostgresStore::migrate`] is the
//! migration as a step of its own. Migrating needs `CREATE` on the schema; running needs only
//! `SELECT`, `INSERT`, `UPDATE`, `DELETE` on the six tables:
//!
//! ```sql
//! GRANT SELECT, INSERT, UPDATE, DELETE
//!     ON tjs_sessions, tjs_meta, tjs_rate_limits, tjs_attempts, tjs_activity, tjs_dpop_replay
//!     TO app;
//! ```
//!
//! What is stored is what the Redis store stores: no refresh token ever (records hold the
//! refresh *generation* only); the user key is SHA-256 of the user id, or a keyed hash (HMAC
//! under a key derived from the sealing key) when records are sealed; and with
//! `SESSION_ENCRYPTION_KEY` the user id, roles and times are sealed together
//! (XChaCha20-Poly1305, the session id as associated data), so the table holds no user id or
//! role in clear, and a row whose clear times were edited behind the store's back is no
//! session; nor is a row whose user key is not the keyed hash of the user id it seals (a row
//! moved to another user's key would be out of reach of logout-all and the devices list).
//!
//! # The rules, atomically
//!
//! - **create**: one transaction takes a per-user advisory lock with its `BEGIN` (logins and
//!   logout-all of one user run one at a time, so two logins cannot both take the last place), reads the user's
//!   rows `FOR UPDATE` (a racing refresh's new activity time is seen), decides with the same
//!   function as the other stores, deletes what it evicts and inserts the new row.
//! - **rotate**: reads the session's row with its version (`xmin`, which every write of the
//!   row changes), decides in Rust with the same function as the other stores, and writes or
//!   deletes with one statement that applies only to that version (compare-and-set). When
//!   another instance wrote the row in between, nothing is written and the rotation reads and
//!   decides again, from the row as that write left it: any number of concurrent refreshes of
//!   one token, on any number of instances, agree on one successor (the first write wins, the
//!   others read it and answer it within the reuse interval). Two round trips, no transaction
//!   held open across them.
//! - **revoke**, **revoke-all**: one `DELETE … RETURNING` each (revoke-all under the user's
//!   lock), with `pg_notify` of each id in the same statement.
//!
//! A session that ends (logout, logout-all, eviction, reuse detection) has its row deleted at
//! once. A row past its purge time counts as gone; each login deletes up to 64 of them (any
//! user's, `SKIP LOCKED`) and its own user's, so the table holds the live sessions plus those
//! that expired within the last access-token lifetime. [`PostgresStore::purge`] deletes them
//! all at once, for a periodic job.
//!
//! # Failure behaviour
//!
//! Startup says why it cannot connect: `DATABASE_URL`, the host and port (never the
//! password), and the cause (refused, no such host, TLS, authentication, no such database).
//! A read-only database (a standby, `default_transaction_read_only = on`) with up-to-date
//! tables is started on: reads work, writes fail, and
//! [`warnings`](crate::store::SessionStore::warnings) says `store_read_only`.
//!
//! Every call has a timeout ([`PostgresSettings::timeout`](crate::config::PostgresSettings::timeout),
//! 1 s by default): the wait for a pooled connection, the server's `statement_timeout` (lock
//! waits included), and the call as a whole. A call that fails or times out is a
//! [`StoreError`](crate::store::StoreError), which the manager turns into 503 `unavailable`
//! and the layer into a refusal on a cache miss (fail closed). A connection that died (a
//! restarted database, `pg_terminate_backend`) is noticed when the pool hands it out and
//! replaced; nothing has to be restarted.
//!
//! # Cross-instance revocation
//!
//! Every revocation notifies `P_revoked` with the session id in the transaction that deletes
//! the row (delivered at commit). Each instance `LISTEN`s on a connection of its own and writes
//! the revocation into its cache at once. Whenever that connection is (re-)established the
//! cache is cleared, since what was notified meanwhile is unknown; meanwhile the cache's short
//! lifetime for "active" answers (1 s) bounds the delay.
//!
//! # Files
//!
//! `schema.rs` and `sql/` (migrations), `record.rs` (a row's columns and its `data`, sealing),
//! `store.rs` (the [`SessionStore`](crate::store::SessionStore) impl and the listener),
//! `connection.rs` (what the rate-limit backends run on), `replay.rs` (the DPoP replay cache).

mod connection;
mod record;
mod replay;
mod schema;
mod store;

pub use connection::PostgresConnection;
pub use replay::PostgresReplayCache;
pub use store::PostgresStore;

#[cfg(test)]
#[path = "../../../tests/common/pg_server.rs"]
pub(crate) mod pg_server;

#[cfg(test)]
mod tests;

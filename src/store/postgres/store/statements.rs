//! The SQL statements of [`PostgresStore`](super::PostgresStore), made once per store.

use crate::store::postgres::record::COLUMNS;
use crate::store::postgres::schema::Tables;

/// The statements, made once per store (their text is the key of each connection's cache of
/// prepared statements).
pub(super) struct Sql {
    pub(super) purge_due: String,
    pub(super) user_rows: String,
    pub(super) delete_notify: String,
    pub(super) insert: String,
    pub(super) select_versioned: String,
    pub(super) select: String,
    pub(super) update_if_unchanged: String,
    pub(super) delete_if_unchanged: String,
    pub(super) delete_notify_if_unchanged: String,
    pub(super) list: String,
    pub(super) revoke_all: String,
    pub(super) activity_insert: String,
    pub(super) activity_trim: String,
    pub(super) activity_sweep: String,
    pub(super) activity_read: String,
}

impl Sql {
    // Size: one format! per statement, each beside its comment; split, the SQL would scatter.
    pub(super) fn new(t: &Tables) -> Self {
        let s = &t.sessions;
        let a = &t.activity;
        Self {
            // The slot after the user's newest (modulo `$5`, the bound), overwritten: the user
            // holds at most `$5` rows. Run under the user's activity lock.
            activity_insert: format!(
                "INSERT INTO {a} (user_key, slot, seq, at, keep_until, data) VALUES ($1, \
                 COALESCE((SELECT slot + 1 FROM {a} WHERE user_key = $1 \
                 ORDER BY seq DESC LIMIT 1), 0) % $5, \
                 GREATEST((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, \
                 COALESCE((SELECT max(seq) + 1 FROM {a} WHERE user_key = $1), 0)), \
                 $2, $3, $4) \
                 ON CONFLICT (user_key, slot) DO UPDATE SET seq = excluded.seq, \
                 at = excluded.at, keep_until = excluded.keep_until, data = excluded.data"
            ),
            // Slots past a smaller bound than the one they were written under.
            activity_trim: format!("DELETE FROM {a} WHERE user_key = $1 AND slot >= $2"),
            activity_sweep: format!(
                "DELETE FROM {a} WHERE ctid IN (SELECT ctid FROM {a} WHERE keep_until < $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            activity_read: format!(
                "SELECT data FROM {a} WHERE user_key = $1 AND keep_until >= $2 \
                 ORDER BY seq DESC LIMIT $3"
            ),
            purge_due: format!(
                "DELETE FROM {s} WHERE session_id IN (SELECT session_id FROM {s} \
                 WHERE purge_at < $1 ORDER BY purge_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            user_rows: format!(
                "SELECT session_id, last_active_at, expires_at, purge_at FROM {s} \
                 WHERE user_key = ANY($1) ORDER BY created_at, session_id FOR UPDATE"
            ),
            // Deletes the sessions `$1` and tells every instance (delivered at commit).
            delete_notify: format!(
                "WITH gone AS (DELETE FROM {s} WHERE session_id = ANY($1) \
                 RETURNING session_id, expires_at, purge_at) \
                 SELECT g.session_id, g.expires_at, g.purge_at FROM gone g \
                 CROSS JOIN LATERAL (SELECT pg_notify($2, encode(g.session_id, 'hex'))) n"
            ),
            insert: format!(
                "INSERT INTO {s} (session_id, user_key, created_at, last_active_at, expires_at, \
                 generation, refresh_expires_at, purge_at, data) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            // A row and its version: `xmin`, the transaction that wrote this version of the
            // row, changes with every write of it (an update writes a new version).
            select_versioned: format!(
                "SELECT {COLUMNS}, xmin::text AS version FROM {s} WHERE session_id = $1"
            ),
            select: format!("SELECT {COLUMNS} FROM {s} WHERE session_id = $1"),
            // The writes of a rotation, each applied only to the version of the row it read,
            // and never waiting for a row lock: a write that waited could still land after the
            // caller had been told the refresh timed out (an autocommitted statement does not
            // notice its client has gone). `NOWAIT` fails at once instead (`55P03`), and the
            // rotation reads again.
            update_if_unchanged: format!(
                "WITH locked AS (SELECT session_id FROM {s} WHERE session_id = $1 \
                 AND xmin::text = $8 AND {IN_TIME_9} FOR UPDATE NOWAIT) \
                 UPDATE {s} t SET last_active_at = $2, generation = $3, refresh_expires_at = $4, \
                 purge_at = $5, data = $6, user_key = $7 FROM locked \
                 WHERE t.session_id = locked.session_id"
            ),
            delete_if_unchanged: format!(
                "WITH locked AS (SELECT session_id FROM {s} WHERE session_id = $1 \
                 AND xmin::text = $2 AND {IN_TIME_3} FOR UPDATE NOWAIT) \
                 DELETE FROM {s} t USING locked WHERE t.session_id = locked.session_id"
            ),
            delete_notify_if_unchanged: format!(
                "WITH locked AS (SELECT session_id FROM {s} WHERE session_id = $1 \
                 AND xmin::text = $3 AND {IN_TIME_4} FOR UPDATE NOWAIT), \
                 gone AS (DELETE FROM {s} t USING locked WHERE t.session_id = locked.session_id \
                 RETURNING t.session_id) \
                 SELECT pg_notify($2, encode(g.session_id, 'hex')) FROM gone g"
            ),
            list: format!(
                "SELECT {COLUMNS} FROM {s} WHERE user_key = ANY($1) \
                 AND expires_at > $2 AND purge_at >= $2 ORDER BY created_at, session_id"
            ),
            revoke_all: format!(
                "WITH gone AS (DELETE FROM {s} WHERE user_key = ANY($1) \
                 RETURNING session_id, expires_at, purge_at) \
                 SELECT g.session_id, g.expires_at, g.purge_at FROM gone g \
                 CROSS JOIN LATERAL (SELECT pg_notify($2, encode(g.session_id, 'hex'))) n"
            ),
        }
    }
}

/// The condition that a rotation's write reaches the server before its caller's deadline
/// (milliseconds since the epoch, `NULL` for none), on the server's own clock: a statement
/// that waited in a stalled backend must not apply once its caller has answered 503. One per
/// parameter position it is bound at.
pub(super) const IN_TIME_9: &str =
    "($9::bigint IS NULL OR clock_timestamp() <= to_timestamp($9::bigint / 1000.0))";
pub(super) const IN_TIME_3: &str =
    "($3::bigint IS NULL OR clock_timestamp() <= to_timestamp($3::bigint / 1000.0))";
pub(super) const IN_TIME_4: &str =
    "($4::bigint IS NULL OR clock_timestamp() <= to_timestamp($4::bigint / 1000.0))";

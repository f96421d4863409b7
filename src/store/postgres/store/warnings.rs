//! The server settings that break a promise of the store, read for
//! [`SessionStore::warnings`](crate::store::SessionStore::warnings).

use crate::store::StoreWarning;

/// What [`SessionStore::warnings`] reads, in one query: the settings (as the store's own
/// connections see them, per-database and per-role ones included) that decide whether a
/// committed logout is kept, and whether the sessions table is logged. `$1` is that table.
///
/// [`SessionStore::warnings`]: crate::store::SessionStore::warnings
pub(super) const SETTINGS: &str = "SELECT current_setting('synchronous_commit') AS synchronous_commit, \
     current_setting('fsync') AS fsync, \
     current_setting('full_page_writes') AS full_page_writes, \
     pg_is_in_recovery() AS in_recovery, \
     current_setting('default_transaction_read_only') AS read_only, \
     coalesce((SELECT relpersistence = 'u' FROM pg_class WHERE oid = to_regclass($1)), false) \
     AS sessions_unlogged";

/// The server's answer to [`SETTINGS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store::postgres) struct ServerSettings {
    pub(in crate::store::postgres) synchronous_commit: String,
    pub(in crate::store::postgres) fsync: String,
    pub(in crate::store::postgres) full_page_writes: String,
    pub(in crate::store::postgres) in_recovery: bool,
    pub(in crate::store::postgres) read_only: String,
    pub(in crate::store::postgres) sessions_unlogged: bool,
}

/// A warning, for an operator, for each setting that breaks a promise of the store
/// (docs/deployment.md, "PostgreSQL settings that keep the promises").
pub(in crate::store::postgres) fn setting_warnings(
    sessions_table: &str,
    s: &ServerSettings,
) -> Vec<StoreWarning> {
    let mut out = Vec::new();
    if s.synchronous_commit == "off" {
        out.push(StoreWarning::new(
            "store_commit_not_durable",
            "PostgreSQL runs with synchronous_commit = off: a crash of the database can lose the \
             last writes it acknowledged, and a lost logout lets that session work again until \
             it ends; set synchronous_commit = on for the store's database or role \
             (docs/deployment.md)",
        ));
    }
    if s.fsync == "off" {
        out.push(StoreWarning::new(
            "store_fsync_off",
            "PostgreSQL runs with fsync = off: a crash of the database host can lose or corrupt \
             committed sessions and logouts; set fsync = on (docs/deployment.md)",
        ));
    }
    if s.full_page_writes == "off" {
        out.push(StoreWarning::new(
            "store_full_page_writes_off",
            "PostgreSQL runs with full_page_writes = off: a crash of the database host can \
             leave the sessions table corrupt; set full_page_writes = on (docs/deployment.md)",
        ));
    }
    if s.in_recovery {
        out.push(StoreWarning::new(
            "store_read_only",
            "PostgreSQL is in recovery (a standby): logins, refreshes and logouts cannot be \
             written; point DATABASE_URL at the primary (docs/deployment.md)",
        ));
    } else if s.read_only == "on" {
        out.push(StoreWarning::new(
            "store_read_only",
            "PostgreSQL opens transactions read-only (default_transaction_read_only = on): \
             logins, refreshes and logouts cannot be written; turn it off for the store's \
             database or role (docs/deployment.md)",
        ));
    }
    if s.sessions_unlogged {
        out.push(StoreWarning::new(
            "store_table_unlogged",
            format!(
                "the sessions table {sessions_table} is UNLOGGED: a crash of the database empties \
             it (every session ends) and standbys do not have it; run ALTER TABLE \
             {sessions_table} SET LOGGED (docs/deployment.md)"
            ),
        ));
    }
    out
}

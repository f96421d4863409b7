//! A PostgreSQL database of its own for each test: created on the server that answers at
//! `postgres://postgres@127.0.0.1:5432/postgres` (or at `DATABASE_URL`, which must name a
//! user allowed to create databases and roles), named `tjs_test_<pid>_<random>`, and dropped
//! when the test's [`TestDb`] is dropped, whether the test passed or panicked; so are the roles
//! a test made for it ([`TestDb::dml_role`]).
//!
//! The tests fail, never skip, when PostgreSQL does not answer.
//!
//! Shared by the crate's unit tests (through `#[path]`) and the integration tests.

#![allow(dead_code, unreachable_pub)]

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The server and maintenance database the tests create their databases on.
pub fn admin_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
    }
}

/// `url` with its user replaced by `user` (and no password: the test server trusts local
/// connections).
pub fn with_user(url: &str, user: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host_start = rest
        .find('@')
        .filter(|at| rest[..*at].find('/').is_none())
        .map_or(0, |at| at + 1);
    format!("{}{user}@{}", &url[..scheme_end], &rest[host_start..])
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A database that exists for as long as this value.
#[derive(Debug)]
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Its name.
    pub name: String,
    admin: String,
    /// Roles made for this database, dropped with it.
    roles: std::sync::Mutex<Vec<String>>,
}

impl TestDb {
    /// Creates a fresh, empty database.
    ///
    /// # Panics
    /// When PostgreSQL does not answer or refuses: the test fails, it does not skip.
    pub async fn create() -> TestDb {
        let admin = admin_url();
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).expect("random");
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("tjs_test_{}_{suffix}", std::process::id());
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is needed at {admin} (set DATABASE_URL to another server; \
                 `pg_ctlcluster 15 main start` starts the local one): {e}"
            )
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = conn.close().await;
        TestDb {
            url: with_database(&admin, &name),
            name,
            admin,
            roles: std::sync::Mutex::default(),
        }
    }

    /// A role that may connect to this database and do no more than `SELECT`, `INSERT`,
    /// `UPDATE` and `DELETE` on the store's tables under `prefix`, as far as they exist
    /// (no `CREATE` anywhere: PostgreSQL 15 gives `PUBLIC` no `CREATE` on schema `public`);
    /// returns the URL that connects as it. Dropped with the database.
    pub async fn dml_role(&self, prefix: &str) -> String {
        let role = format!("{}_dml", self.name);
        let mut admin = PgConnection::connect(&self.admin).await.expect("admin");
        for sql in [
            format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
            format!("GRANT CONNECT ON DATABASE {} TO {role}", self.name),
        ] {
            sqlx::query(&sql)
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let _ = admin.close().await;
        self.roles.lock().unwrap().push(role.clone());
        let mut conn = self.connect().await;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relname = ANY($1)",
        )
        .bind(
            [
                "sessions",
                "meta",
                "rate_limits",
                "attempts",
                "activity",
                "dpop_replay",
            ]
            .map(|t| format!("{prefix}_{t}"))
            .to_vec(),
        )
        .fetch_all(&mut conn)
        .await
        .expect("the store's tables");
        if !tables.is_empty() {
            let sql = format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {role}",
                tables.join(", ")
            );
            sqlx::query(&sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let _ = conn.close().await;
        with_user(&self.url, &role)
    }

    /// A connection of the test's own to the database, to look at or tamper with what the
    /// store wrote.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name))
    }

    /// Terminates every connection to the database but the caller's `keep` (by backend pid),
    /// as a database restart would; returns how many it ended.
    pub async fn terminate_connections(&self, keep: Option<i32>) -> i64 {
        let mut conn = PgConnection::connect(&self.admin)
            .await
            .expect("admin connection");
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() AND pid IS DISTINCT FROM $2) t",
        )
        .bind(&self.name)
        .bind(keep)
        .fetch_one(&mut conn)
        .await
        .expect("pg_terminate_backend");
        let _ = conn.close().await;
        ended
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        let roles = std::mem::take(&mut *self.roles.lock().unwrap_or_else(|e| e.into_inner()));
        // Drop may run inside the test's runtime, which cannot be blocked on: a thread of its
        // own with a runtime of its own drops the database (FORCE ends connections still open).
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                // The database's grants went with it: nothing depends on the roles now.
                for role in roles {
                    sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
                        .execute(&mut conn)
                        .await?;
                }
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!(
                "could not drop the test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

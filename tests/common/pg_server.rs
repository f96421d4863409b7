//! A PostgreSQL database of its own for each test: created on the server that answers at
//! `postgres://postgres@127.0.0.1:5432/postgres` (or at `DATABASE_URL`, which must name a
//! user allowed to create databases), named `tjs_test_<pid>_<random>`, and dropped when the
//! test's [`TestDb`] is dropped, whether the test passed or panicked.
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
        }
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

//! PostgreSQL store figures of BENCHMARKS.md: create and refresh latency (median, p99) and
//! bytes per session at several numbers of live sessions in one run (default 10 k, 100 k and
//! 1 M), then the cross-instance revocation lag (LISTEN/NOTIFY) between two managers.
//!
//! ```text
//! cargo bench --bench postgres --features postgres                        # 10k 100k 1M
//! cargo bench --bench postgres --features postgres -- 100000              # one size
//! cargo bench --bench postgres --features postgres -- 10000 sealed samples=500
//! cargo bench --bench postgres --features postgres -- async out=DIR       # TSVs for bench/report.py
//! ```
//!
//! Arguments: sizes (numbers, any order); `samples=N` creates and refreshes timed per size
//! (default 2 000); `lag=N` revocation-lag runs (default 200); `sealed` (records sealed with an
//! encryption key); `async` (`synchronous_commit = off` for the bench's database: each create
//! and refresh commits once, so by default its latency includes one WAL flush of the server's
//! disk, and `async` leaves the store's own cost); `out=DIR` writes `postgres_scale.tsv`,
//! `postgres_lag.tsv` and `postgres_server.txt` there (what `bash bench/run.sh postgres` reads).
//!
//! **Background sessions.** Creating 1 M sessions one by one through the store takes hours
//! here, so the sessions around the measured ones are written by one `INSERT … SELECT … FROM
//! generate_series` per batch, in the store's own row format: the bench first creates one
//! session through `SessionManager` and every seeded row copies that row, with a random session
//! id (16 random bytes, as the store's), the user key the store computes for a plain record
//! (SHA-256 of the user id), the user id in `data` replaced by another of the same length, and
//! times spread as live sessions' are (created up to half a session lifetime ago, last active
//! up to half a refresh lifetime ago, every end derived from those as the store derives it).
//! Users hold 1, 2, 3, 5 or 10 sessions (8, 6, 3, 2 and 1 user in every 20: 2.45 on average,
//! within the limit of 10). With `sealed` the seeded rows copy the sealed `data` unchanged (the
//! same length, but it only opens for the template's session id): no seeded row is ever read,
//! only counted, measured and indexed.
//!
//! **What is timed**, per size N, after the table holds N − `samples` sessions, a `CHECKPOINT`
//! and `VACUUM ANALYZE` (the steady state, not the bulk load's checkpoint and autovacuum):
//! `samples` sequential `create_session` calls for new users, then one `refresh` of each of
//! `samples` sessions that were made through `create_session` while the table was being filled
//! (in ten batches between the seeding statements, so they lie spread through the table), in a
//! shuffled order. Each call through `SessionManager` (token signing included), on loopback,
//! timed with `Instant`. Bytes per session = `pg_total_relation_size` of the sessions table
//! (heap, indexes, TOAST) after the `VACUUM`, over its rows.
//!
//! **Revocation lag**, after the last size: a second manager on its own pool and listener (a
//! second instance) verifies a session's access token (caching it as active), the first
//! revokes the session, and the time from the revoke call until the second refuses the token
//! is the lag (the second polls, yielding between checks).
//!
//! The server is the one at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! a user that may create databases); the bench makes a database of its own and drops it at the
//! end.

#[path = "../tests/common/pg_server.rs"]
mod pg_server;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use sqlx::Row as _;
use tower_jwt_session::config::PostgresSettings;
use tower_jwt_session::store::PostgresStore;
use tower_jwt_session::{SessionConfig, SessionManager};

const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

/// The template session's user: seeded users are `seed-user-` and 8 digits, the same length.
const TEMPLATE_USER: &str = "seed-user-00000000";

/// Sessions of each user in every 20 seeded users: 8 with one, 6 with two, 3 with three, 2 with
/// five and 1 with ten (49 sessions).
const SESSIONS_PER_USER: &str = "CASE WHEN u % 20 < 8 THEN 1 WHEN u % 20 < 14 THEN 2 \
     WHEN u % 20 < 17 THEN 3 WHEN u % 20 < 19 THEN 5 ELSE 10 END";

/// Seeded rows per seeding statement at most (a batch's WAL and memory stay moderate).
const SEED_BATCH: usize = 250_000;

struct Options {
    sizes: Vec<usize>,
    samples: usize,
    lag_runs: usize,
    sealed: bool,
    async_commit: bool,
    out: Option<PathBuf>,
}

impl Options {
    fn from_args() -> Self {
        let mut options = Options {
            sizes: Vec::new(),
            samples: 2_000,
            lag_runs: 200,
            sealed: false,
            async_commit: false,
            out: None,
        };
        // `cargo bench` adds `--bench`; anything unknown is refused rather than ignored.
        for arg in std::env::args().skip(1).filter(|a| a != "--bench") {
            match arg.split_once('=') {
                Some(("samples", v)) => options.samples = v.parse().expect("samples=N"),
                Some(("lag", v)) => options.lag_runs = v.parse().expect("lag=N"),
                Some(("out", v)) => options.out = Some(PathBuf::from(v)),
                None if arg == "sealed" => options.sealed = true,
                None if arg == "async" => options.async_commit = true,
                _ => options.sizes.push(
                    arg.parse()
                        .unwrap_or_else(|_| panic!("unknown argument {arg:?}")),
                ),
            }
        }
        if options.sizes.is_empty() {
            options.sizes = vec![10_000, 100_000, 1_000_000];
        }
        options.sizes.sort_unstable();
        assert!(options.samples >= 10, "samples=N needs N >= 10");
        options
    }
}

/// The timings at one size.
struct SizeRow {
    sessions: i64,
    bytes_per_session: i64,
    create: Vec<Duration>,
    refresh: Vec<Duration>,
    seed: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `(p50, p99)` in µs.
fn p50_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    (
        us(percentile(&samples, 0.5)),
        us(percentile(&samples, 0.99)),
    )
}

fn main() {
    let options = Options::from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(pg_server::TestDb::create());
    rt.block_on(run(&db, &options));
    rt.block_on(async { drop(db) });
}

async fn manager(db: &pg_server::TestDb, sealed: bool) -> SessionManager {
    let mut config = SessionConfig::new(SECRET)
        .expect("secret")
        .with_rules(tower_jwt_session::config::SessionRules::default().with_max_sessions(10));
    if sealed {
        let sealing = PostgresSettings::default().with_encryption_key(&[7; 32]);
        config = config.with_postgres(sealing.expect("key"));
    }
    let mut settings = PostgresSettings::new(&db.url)
        .with_max_connections(16)
        .with_timeout(Duration::from_secs(10));
    if sealed {
        // The store seals what it writes under the key of its settings.
        settings = settings.with_encryption_key(&[7; 32]).expect("key");
    }
    let store = PostgresStore::connect(&settings).await.expect("connect");
    SessionManager::builder(config)
        .store(store)
        .build()
        .expect("manager")
}

async fn run(db: &pg_server::TestDb, options: &Options) {
    let mut conn = db.connect().await;
    if options.async_commit {
        execute(
            &mut conn,
            &format!("ALTER DATABASE {} SET synchronous_commit = off", db.name),
        )
        .await;
        // The setting applies to connections made from now on (the store's, and this one).
        conn = db.connect().await;
    }
    let manager = manager(db, options.sealed).await;
    manager
        .create_session(tower_jwt_session::manager::NewSession::new(TEMPLATE_USER).roles(&["user"]))
        .await
        .expect("template session");
    // The template row, kept aside: every seeded row copies it (see the file's docs).
    execute(
        &mut conn,
        "CREATE TEMP TABLE bench_template AS SELECT * FROM tjs_sessions",
    )
    .await;
    let mut seeder = Seeder { next_user: 1 };
    let server = server_info(&mut conn).await;
    eprintln!(
        "postgres{}{}: {server}",
        if options.sealed {
            ", sealed records"
        } else {
            ""
        },
        if options.async_commit {
            ", synchronous_commit=off"
        } else {
            ""
        },
    );
    let mut rows = Vec::new();
    for &n in &options.sizes {
        let row = at_size(&manager, &mut conn, &mut seeder, n, options.samples).await;
        let (c50, c99) = p50_p99(row.create.clone());
        let (r50, r99) = p50_p99(row.refresh.clone());
        eprintln!(
            "  {:>9} sessions: {:>4} B/session  create p50 {c50:>7.1} µs p99 {c99:>7.1} µs  \
             refresh p50 {r50:>7.1} µs p99 {r99:>7.1} µs  (seeded in {:.1?})",
            row.sessions, row.bytes_per_session, row.seed
        );
        rows.push(row);
    }
    let lags = revocation_lag(db, &manager, options).await;
    let (l50, l99) = p50_p99(lags.clone());
    let max = lags.iter().max().copied().unwrap_or_default();
    eprintln!(
        "  revocation lag across two instances ({} runs): p50 {l50:.0} µs p99 {l99:.0} µs max {:.0} µs",
        lags.len(),
        us(max)
    );
    if let Some(dir) = &options.out {
        write_results(dir, options, &server, &rows, &lags);
    }
}

/// Writes the TSVs and the server description `bench/report.py` reads.
fn write_results(
    dir: &std::path::Path,
    options: &Options,
    server: &str,
    rows: &[SizeRow],
    lags: &[Duration],
) {
    std::fs::create_dir_all(dir).expect("results dir");
    let mut scale = String::from(
        "sessions\tbytes_per_session\tcreate_p50_us\tcreate_p99_us\trefresh_p50_us\trefresh_p99_us\tseed_s\n",
    );
    for row in rows {
        let (c50, c99) = p50_p99(row.create.clone());
        let (r50, r99) = p50_p99(row.refresh.clone());
        writeln!(
            scale,
            "{}\t{}\t{c50:.1}\t{c99:.1}\t{r50:.1}\t{r99:.1}\t{:.1}",
            row.sessions,
            row.bytes_per_session,
            row.seed.as_secs_f64()
        )
        .expect("write");
    }
    std::fs::write(dir.join("postgres_scale.tsv"), scale).expect("postgres_scale.tsv");
    let (l50, l99) = p50_p99(lags.to_vec());
    let max = us(lags.iter().max().copied().unwrap_or_default());
    std::fs::write(
        dir.join("postgres_lag.tsv"),
        format!(
            "runs\tlag_p50_us\tlag_p99_us\tlag_max_us\n{}\t{l50:.0}\t{l99:.0}\t{max:.0}\n",
            lags.len()
        ),
    )
    .expect("postgres_lag.tsv");
    std::fs::write(
        dir.join("postgres_server.txt"),
        format!(
            "server: {server}\nsamples: {}\nsealed: {}\nsynchronous_commit: {}\n",
            options.samples,
            options.sealed,
            if options.async_commit {
                "off"
            } else {
                "server default"
            }
        ),
    )
    .expect("postgres_server.txt");
}

async fn execute(conn: &mut PgConnection, sql: &str) {
    sqlx::query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The server's version and the settings that move these figures.
async fn server_info(conn: &mut PgConnection) -> String {
    let row = sqlx::query(
        "SELECT split_part(version(), ' ', 2), current_setting('shared_buffers'), \
         current_setting('synchronous_commit'), current_setting('fsync')",
    )
    .fetch_one(conn)
    .await
    .expect("server settings");
    format!(
        "PostgreSQL {}, shared_buffers {}, synchronous_commit {}, fsync {}",
        row.get::<String, _>(0),
        row.get::<String, _>(1),
        row.get::<String, _>(2),
        row.get::<String, _>(3)
    )
}

/// Writes background sessions copied from the template session's row.
struct Seeder {
    next_user: u64,
}

impl Seeder {
    /// Inserts `count` sessions of new users, in the store's row format (see the file's docs).
    async fn seed(&mut self, conn: &mut PgConnection, mut count: usize) {
        while count > 0 {
            let batch = count.min(SEED_BATCH);
            // 49 sessions in every 20 users: enough users for the batch, the rest unused.
            let users = (batch as u64 * 20).div_ceil(49) + 20;
            let sql = format!(
                "WITH g AS ( \
                   SELECT 'seed-user-' || lpad(u::text, 8, '0') AS name, random() AS r_age, \
                     random() AS r_idle, (random() * 50)::bigint AS generation \
                   FROM generate_series({first}, {last_user}) u, \
                     LATERAL generate_series(1, {SESSIONS_PER_USER}) s \
                   LIMIT {batch}), \
                 r AS ( \
                   SELECT g.name, g.generation, t.data, \
                     (g.r_age * (t.expires_at - t.created_at) / 2)::bigint AS age, \
                     g.r_idle * (t.refresh_expires_at - t.last_active_at) / 2 AS idle, \
                     t.refresh_expires_at - t.last_active_at AS refresh, \
                     t.purge_at - t.refresh_expires_at AS retention, \
                     t.created_at AS t_created, t.last_active_at AS t_last, \
                     t.expires_at AS t_expires \
                   FROM g, bench_template t), \
                 s AS ( \
                   SELECT name, generation, data, refresh, retention, \
                     t_created - age AS created_at, t_expires - age AS expires_at, \
                     t_last - least(age, idle::bigint) AS last_active_at \
                   FROM r) \
                 INSERT INTO tjs_sessions (session_id, user_key, created_at, last_active_at, \
                   expires_at, generation, refresh_expires_at, purge_at, data) \
                 SELECT uuid_send(gen_random_uuid()), sha256(convert_to(name, 'UTF8')), \
                   created_at, last_active_at, expires_at, generation, \
                   least(last_active_at + refresh, expires_at), \
                   least(last_active_at + refresh, expires_at) + retention, \
                   replace(data, '{TEMPLATE_USER}', name) \
                 FROM s",
                first = self.next_user,
                last_user = self.next_user + users - 1,
            );
            execute(conn, &sql).await;
            self.next_user += users;
            count -= batch;
        }
    }
}

/// Fills the table to `n` sessions and times creates and refreshes there.
async fn at_size(
    manager: &SessionManager,
    conn: &mut PgConnection,
    seeder: &mut Seeder,
    n: usize,
    samples: usize,
) -> SizeRow {
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM tjs_sessions")
        .fetch_one(&mut *conn)
        .await
        .expect("count");
    // The refresh sample and the timed creates are `samples` sessions each.
    let background = n.saturating_sub(live as usize + 2 * samples);
    let started = Instant::now();
    let mut refresh_tokens = Vec::with_capacity(samples);
    for batch in 0..10 {
        seeder
            .seed(
                conn,
                background * (batch + 1) / 10 - background * batch / 10,
            )
            .await;
        for i in samples * batch / 10..samples * (batch + 1) / 10 {
            let pair = manager
                .create_session(
                    tower_jwt_session::manager::NewSession::new(format!("sample-{n}-{i}"))
                        .roles(&["user"]),
                )
                .await
                .expect("create");
            refresh_tokens.push(pair.refresh_token);
        }
    }
    let seed = started.elapsed();
    // Measure in a steady state, not during the checkpoint and autovacuum the fill set off.
    for settle in ["CHECKPOINT", "VACUUM ANALYZE tjs_sessions"] {
        if let Err(error) = sqlx::query(settle).execute(&mut *conn).await {
            eprintln!("{settle}: {error} (measuring anyway)");
        }
    }
    let (bytes, rows): (i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('tjs_sessions'), (SELECT count(*) FROM tjs_sessions)",
    )
    .fetch_one(&mut *conn)
    .await
    .expect("size");
    warm_up(manager).await;

    let mut create = Vec::with_capacity(samples);
    for i in 0..samples {
        let user = format!("new-{n}-{i}");
        let t = Instant::now();
        manager
            .create_session(tower_jwt_session::manager::NewSession::new(&user).roles(&["user"]))
            .await
            .expect("create");
        create.push(t.elapsed());
    }
    shuffle(&mut refresh_tokens, n as u64);
    let mut refresh = Vec::with_capacity(samples);
    for token in &refresh_tokens {
        let t = Instant::now();
        manager.refresh(token).await.expect("refresh");
        refresh.push(t.elapsed());
    }
    SizeRow {
        sessions: rows + samples as i64,
        bytes_per_session: bytes / rows.max(1),
        create,
        refresh,
        seed,
    }
}

/// A rotation chain of 50 refreshes, untimed: every pooled connection the timed loops use has
/// its statements prepared.
async fn warm_up(manager: &SessionManager) {
    let mut pair = manager
        .create_session(tower_jwt_session::manager::NewSession::new("warm-up").roles(&["user"]))
        .await
        .expect("create");
    for _ in 0..50 {
        pair = manager.refresh(&pair.refresh_token).await.expect("refresh");
    }
    manager.revoke(pair.session_id).await.expect("revoke");
}

/// Fisher–Yates with a xorshift generator (no dependency for one shuffle).
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

/// The time from a revoke on `a` until a second instance refuses the session's access token,
/// `options.lag_runs` times.
async fn revocation_lag(
    db: &pg_server::TestDb,
    a: &SessionManager,
    options: &Options,
) -> Vec<Duration> {
    let b = manager(db, options.sealed).await;
    let mut lags = Vec::with_capacity(options.lag_runs);
    for i in 0..options.lag_runs {
        let pair = a
            .create_session(
                tower_jwt_session::manager::NewSession::new(format!("lag-{i}")).roles(&["user"]),
            )
            .await
            .expect("create");
        b.verify_access_token(&pair.access_token)
            .await
            .expect("b accepts the session first");
        let start = Instant::now();
        a.revoke(pair.session_id).await.expect("revoke");
        while b.verify_access_token(&pair.access_token).await.is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "b still accepts a session revoked 1 s ago"
            );
            tokio::task::yield_now().await;
        }
        lags.push(start.elapsed());
    }
    lags
}

//! The session rules of SPEC §4 checked against a reference model, on every store.
//!
//! - `sequences`: random operation sequences (proptest, shrinking to a minimal failing
//!   sequence) driven through the public `SessionManager` API, one instance, manual clock;
//!   after every step every answer and every observable state must equal the model's
//!   (`reference`), and the invariants hold: an ended session never answers active again, one
//!   successor per refresh token, reuse always revokes, records per user within the bound.
//! - `concurrency`: two managers (two instances) on one store run racing operations on a
//!   multi-threaded runtime; the same invariants hold under any interleaving.
//!
//! Every store: memory, Redis (one node), a 3-master Redis Cluster, Redis with sealed
//! records, and PostgreSQL (plain and sealed; each test on a database of its own, each case
//! under a table prefix of its own, see `tests/common/pg_server.rs`). The Redis tests fail, never skip, when Redis is missing (see
//! `tests/common/redis_server.rs`; `REDIS_URL` / `REDIS_CLUSTER_URLS` point them at running
//! servers). `TJS_MODEL_CASES` (cases per store and policy) and `TJS_MODEL_STEPS` (longest
//! sequence) size the run; `bench/model-long.sh` runs it long.

mod concurrency;
mod reference;
mod sequences;
mod stall;

#[cfg(feature = "redis")]
use crate::common::redis_server;

#[cfg(feature = "postgres")]
use crate::common::pg_server;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_jwt_session::SessionConfig;
use tower_jwt_session::config::{SessionLimitPolicy, SessionRules};
use tower_jwt_session::store::{MemoryStore, SessionStore};

use reference::{Limits, Policy};

pub const SECRET: &str = "model-test-secret-model-test-secret-0123456789";
/// Sealing key for the sealed-Redis runs.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub const SEALING_KEY: [u8; 32] = [7; 32];

/// The stores every rule is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    #[cfg(feature = "redis")]
    Redis,
    #[cfg(feature = "redis")]
    Cluster,
    #[cfg(feature = "redis")]
    Sealed,
    #[cfg(feature = "postgres")]
    Postgres,
    #[cfg(feature = "postgres")]
    SealedPostgres,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            #[cfg(feature = "redis")]
            StoreKind::Redis => "redis",
            #[cfg(feature = "redis")]
            StoreKind::Cluster => "cluster",
            #[cfg(feature = "redis")]
            StoreKind::Sealed => "sealed-redis",
            #[cfg(feature = "postgres")]
            StoreKind::Postgres => "postgres",
            #[cfg(feature = "postgres")]
            StoreKind::SealedPostgres => "sealed-postgres",
        }
    }

    /// Where a test's manual clock starts. Redis expires keys on its own clock at the purge
    /// time the store computed on ours, so ours must never fall behind the real time (a key
    /// would vanish early): it starts an hour ahead, more than any run lasts. The test deletes
    /// its keys at the end.
    pub fn clock_start(self) -> u64 {
        if self == StoreKind::Memory {
            1_700_000_000_000
        } else {
            let real = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_millis() as u64;
            real + 3_600_000
        }
    }
}

/// A store for one test, with what the test needs to count what it holds.
pub struct Backend {
    pub store: Arc<dyn SessionStore>,
    /// The configuration the managers use (the Redis URLs and prefix included).
    pub config: SessionConfig,
    probe: Probe,
}

enum Probe {
    Memory(Arc<MemoryStore>),
    #[cfg(feature = "redis")]
    Redis {
        prefix: String,
        nodes: Vec<redis::aio::MultiplexedConnection>,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        /// Keeps the database alive while the store uses it.
        _db: Arc<pg_server::TestDb>,
        prefix: String,
        conn: sqlx::PgConnection,
    },
}

/// What a store holds: `(user or user key tag, records, index members)`, and all records.
#[derive(Debug, Default)]
pub struct Held {
    pub per_user: Vec<(String, usize, usize)>,
    pub total_records: usize,
}

/// The configuration for `limits`: small lifetimes in milliseconds, so that clock jumps cross
/// every boundary.
pub fn config_for(base: SessionConfig, limits: &Limits) -> SessionConfig {
    let rules = SessionRules::default()
        .with_access_token_ttl(Duration::from_millis(limits.access))
        .with_refresh_token_ttl(Duration::from_millis(limits.refresh))
        .with_session_ttl(Duration::from_millis(limits.session))
        .with_reuse_interval(Duration::from_millis(limits.reuse))
        .with_refresh_threshold(Duration::ZERO)
        .with_max_sessions(limits.max)
        .with_limit_policy(match limits.policy {
            Policy::Evict => SessionLimitPolicy::Evict,
            Policy::Deny => SessionLimitPolicy::Deny,
        });
    let tokens = base
        .tokens()
        .clone()
        .with_leeway(Duration::from_millis(limits.leeway));
    base.with_rules(rules).with_tokens(tokens)
}

impl Backend {
    /// A fresh, empty store of `kind` (Redis: under a key prefix of its own).
    pub async fn open(kind: StoreKind, limits: &Limits) -> Backend {
        match kind {
            StoreKind::Memory => {
                let memory = Arc::new(MemoryStore::new());
                Backend {
                    store: memory.clone(),
                    config: config_for(SessionConfig::new(SECRET).unwrap(), limits),
                    probe: Probe::Memory(memory),
                }
            }
            #[cfg(feature = "postgres")]
            StoreKind::Postgres | StoreKind::SealedPostgres => pg_backend(kind, limits).await,
            #[cfg(feature = "redis")]
            _ => redis_backend(kind, limits).await,
        }
    }

    /// The store as a second instance sees it: the same `MemoryStore`, or a connection of its
    /// own to the same Redis keys (with its own revocation subscription).
    pub async fn second_instance(&self) -> Arc<dyn SessionStore> {
        match &self.probe {
            Probe::Memory(memory) => memory.clone(),
            #[cfg(feature = "redis")]
            Probe::Redis { .. } => Arc::new(
                tower_jwt_session::store::RedisStore::connect(self.config.redis())
                    .await
                    .expect("second Redis connection"),
            ),
            #[cfg(feature = "postgres")]
            Probe::Postgres { .. } => Arc::new(
                tower_jwt_session::store::PostgresStore::connect(self.config.postgres())
                    .await
                    .expect("second PostgreSQL pool"),
            ),
        }
    }

    /// Counts what the store holds: per user (the memory store is asked about `users`, Redis
    /// keys are grouped by their user tag) and in total.
    pub async fn held(&mut self, users: &[String]) -> Held {
        match &mut self.probe {
            Probe::Memory(memory) => Held {
                per_user: users
                    .iter()
                    .map(|u| (u.clone(), memory.len_of(u), memory.len_of(u)))
                    .collect(),
                total_records: memory.len(),
            },
            #[cfg(feature = "redis")]
            Probe::Redis { prefix, nodes } => redis_held(prefix, nodes).await,
            #[cfg(feature = "postgres")]
            Probe::Postgres { prefix, conn, .. } => pg_held(prefix, conn).await,
        }
    }

    /// Deletes the test's keys (Redis) or tables (PostgreSQL); the memory store goes with the
    /// test.
    pub async fn cleanup(&mut self) {
        #[cfg(feature = "postgres")]
        if let Probe::Postgres { prefix, conn, .. } = &mut self.probe {
            let drop = format!("DROP TABLE IF EXISTS {prefix}_sessions, {prefix}_meta");
            sqlx::query(&drop)
                .execute(&mut *conn)
                .await
                .expect("drop the case's tables");
        }
        #[cfg(feature = "redis")]
        if let Probe::Redis { prefix, nodes } = &mut self.probe {
            for node in nodes.iter_mut() {
                for key in scan(node, prefix).await {
                    let _: Result<(), _> = redis::cmd("DEL").arg(&key).query_async(node).await;
                }
            }
        }
    }
}

/// A record read straight from Redis, for the sealed runs that tamper with records.
#[cfg(feature = "redis")]
pub struct RawRecord {
    node: usize,
    pub key: String,
    pub fields: Vec<(String, String)>,
}

#[cfg(feature = "redis")]
impl RawRecord {
    /// Field `name` as a number.
    pub fn number(&self, name: &str) -> Option<u64> {
        let value = &self.fields.iter().find(|(k, _)| k == name)?.1;
        value
            .parse()
            .ok()
            .or_else(|| value.parse::<f64>().ok().map(|f| f as u64))
    }

    /// The sealed parts (`d`, `d1`, …), in order.
    pub fn sealed_parts(&self) -> Vec<(String, String)> {
        let index = |name: &str| match name.strip_prefix('d')? {
            "" => Some(0),
            rest => rest.parse::<usize>().ok(),
        };
        let mut parts: Vec<(usize, (String, String))> = self
            .fields
            .iter()
            .filter_map(|(k, v)| index(k).map(|n| (n, (k.clone(), v.clone()))))
            .collect();
        parts.sort_by_key(|(n, _)| *n);
        parts.into_iter().map(|(_, part)| part).collect()
    }
}

#[cfg(feature = "redis")]
impl Backend {
    /// The record of `sid` as Redis holds it, outside the store: found by the end of its key
    /// (`P:…:s:<sid>`, see `src/store/redis/mod.rs`) under this test's prefix. `None` when no
    /// node holds it or the store is not Redis.
    pub async fn raw_record(
        &mut self,
        sid: tower_jwt_session::session::SessionId,
    ) -> Option<RawRecord> {
        let Probe::Redis { prefix, nodes } = &mut self.probe else {
            return None;
        };
        for (n, node) in nodes.iter_mut().enumerate() {
            let keys = scan_matching(node, &format!("{prefix}:*:s:{sid}")).await;
            if let [key] = keys.as_slice() {
                let fields: Vec<(String, String)> = redis::cmd("HGETALL")
                    .arg(key)
                    .query_async(node)
                    .await
                    .expect("HGETALL");
                return Some(RawRecord {
                    node: n,
                    key: key.clone(),
                    fields,
                });
            }
            assert!(keys.is_empty(), "two records for {sid}: {keys:?}");
        }
        None
    }

    /// Runs `cmd` on the node that holds `record`, as anyone with access to Redis could.
    pub async fn raw_command(&mut self, record: &RawRecord, cmd: &redis::Cmd) {
        let Probe::Redis { nodes, .. } = &mut self.probe else {
            panic!("raw commands need Redis");
        };
        let _: redis::Value = cmd
            .query_async(&mut nodes[record.node])
            .await
            .unwrap_or_else(|e| panic!("raw command on {}: {e}", record.key));
    }
}

#[cfg(feature = "redis")]
async fn redis_backend(kind: StoreKind, limits: &Limits) -> Backend {
    use tower_jwt_session::store::RedisStore;

    let urls = match kind {
        StoreKind::Cluster => redis_server::cluster().urls.clone(),
        _ => redis_server::single().urls.clone(),
    };
    let prefix = redis_server::unique_prefix(kind.name());
    let url_list = urls.join(",");
    let base = SessionConfig::from_lookup(|name| match name {
        "JWT_SECRET" => Some(SECRET.to_owned()),
        "REDIS_URL" => Some(url_list.clone()),
        "REDIS_KEY_PREFIX" => Some(prefix.clone()),
        _ => None,
    })
    .expect("Redis test configuration");
    let redis = base.redis().clone().with_timeout(Duration::from_secs(5));
    let redis = if kind == StoreKind::Sealed {
        redis.with_encryption_key(&SEALING_KEY).unwrap()
    } else {
        redis
    };
    let base = base.with_redis(redis);
    let config = config_for(base, limits);
    let store = RedisStore::connect(config.redis())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Redis at {urls:?} is needed for the {} run: {e}",
                kind.name()
            )
        });
    let mut nodes = Vec::new();
    for url in &urls {
        let client = redis::Client::open(url.as_str()).expect("Redis URL");
        nodes.push(
            client
                .get_multiplexed_async_connection()
                .await
                .unwrap_or_else(|e| panic!("probe connection to {url}: {e}")),
        );
    }
    Backend {
        store: Arc::new(store),
        config,
        probe: Probe::Redis { prefix, nodes },
    }
}

/// Every key under `prefix` on one node.
#[cfg(feature = "redis")]
async fn scan(node: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    scan_matching(node, &format!("{prefix}:*")).await
}

/// Every key matching the glob `pattern` on one node.
#[cfg(feature = "redis")]
async fn scan_matching(node: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(node)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Records (`P:{tag}:s:*`) and index members (`P:{tag}:u:*`) per user tag, on every node.
/// The tag is derived from the user id (keyed when sealed), so it groups by user either way.
#[cfg(feature = "redis")]
async fn redis_held(prefix: &str, nodes: &mut [redis::aio::MultiplexedConnection]) -> Held {
    use std::collections::BTreeMap;

    let mut by_tag: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut total = 0;
    for node in nodes.iter_mut() {
        for key in scan(node, prefix).await {
            let Some(rest) = key.strip_prefix(&format!("{prefix}:{{")) else {
                continue;
            };
            let Some((tag, rest)) = rest.split_once('}') else {
                continue;
            };
            let entry = by_tag.entry(tag.to_owned()).or_default();
            if rest.starts_with(":s:") {
                entry.0 += 1;
                total += 1;
            } else if rest.starts_with(":u:") {
                let members: usize = redis::cmd("ZCARD")
                    .arg(&key)
                    .query_async(node)
                    .await
                    .expect("ZCARD");
                entry.1 += members;
            }
        }
    }
    Held {
        per_user: by_tag
            .into_iter()
            .map(|(tag, (records, members))| (tag, records, members))
            .collect(),
        total_records: total,
    }
}

/// A whole number from the environment, or `default`.
/// A public time in the model's unit: milliseconds since the epoch.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A public time in whole seconds since the epoch (an access token's `exp`).
pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

#[cfg(feature = "postgres")]
thread_local! {
    /// The database of the PostgreSQL model test running on this thread, shared by its cases
    /// (each under a table prefix of its own); see [`PgRun`].
    static PG_DB: std::cell::RefCell<Option<Arc<pg_server::TestDb>>> =
        const { std::cell::RefCell::new(None) };
}

/// One database for the cases of one PostgreSQL model test: made when the test starts, dropped
/// when it ends (this value goes), so a run of many cases does not make a database per case.
#[cfg(feature = "postgres")]
pub struct PgRun;

#[cfg(feature = "postgres")]
impl PgRun {
    pub fn start(runtime: &tokio::runtime::Runtime) -> PgRun {
        let db = runtime.block_on(pg_server::TestDb::create());
        PG_DB.with(|slot| *slot.borrow_mut() = Some(Arc::new(db)));
        PgRun
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgRun {
    fn drop(&mut self) {
        PG_DB.with(|slot| slot.borrow_mut().take());
    }
}

#[cfg(feature = "postgres")]
async fn pg_backend(kind: StoreKind, limits: &Limits) -> Backend {
    use tower_jwt_session::config::PostgresSettings;
    use tower_jwt_session::store::PostgresStore;

    static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let db = match PG_DB.with(|slot| slot.borrow().clone()) {
        Some(db) => db,
        None => Arc::new(pg_server::TestDb::create().await),
    };
    let prefix = format!(
        "model_{}",
        CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let pg = PostgresSettings::new(&db.url)
        .with_table_prefix(&prefix)
        .expect("prefix")
        .with_timeout(Duration::from_secs(5));
    let pg = if kind == StoreKind::SealedPostgres {
        pg.with_encryption_key(&SEALING_KEY).unwrap()
    } else {
        pg
    };
    let base = SessionConfig::new(SECRET).unwrap().with_postgres(pg);
    let config = config_for(base, limits);
    let store = PostgresStore::connect(config.postgres())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is needed for the {} run: {e}",
                db.name,
                kind.name()
            )
        });
    let conn = db.connect().await;
    Backend {
        store: Arc::new(store),
        config,
        probe: Probe::Postgres {
            _db: db,
            prefix,
            conn,
        },
    }
}

/// Rows per user key, and all rows.
#[cfg(feature = "postgres")]
async fn pg_held(prefix: &str, conn: &mut sqlx::PgConnection) -> Held {
    let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT encode(user_key, 'hex'), count(*) FROM {prefix}_sessions GROUP BY 1 ORDER BY 1"
    ))
    .fetch_all(&mut *conn)
    .await
    .expect("count rows");
    let per_user: Vec<(String, usize, usize)> = rows
        .into_iter()
        .map(|(key, n)| (key, n as usize, n as usize))
        .collect();
    Held {
        total_records: per_user.iter().map(|(_, n, _)| n).sum(),
        per_user,
    }
}

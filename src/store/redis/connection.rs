//! [`RedisConnection`]: one Redis node or a cluster, the timeout every call gets, the names the
//! keys are written under, and the supervision that rebuilds the connection when calls fail.
//!
//! # Why a supervisor
//!
//! The cluster client of `redis` 1.8 learns where a slot moved only from `MOVED`/`ASK`
//! answers and dropped connections: a response timeout is retried on the same connection
//! (`RetryMethod::RetryImmediately`), with neither a reconnect nor a slot-map refresh. A master
//! that stops answering without closing its sockets (SIGSTOP, a VM pause, a partition that
//! drops packets) therefore keeps its slots in the client's map after its replica has taken
//! over, and every call for them times out until the old node answers again: after a pause,
//! when it wakes; after a partition, when the kernel gives the connection up (about 15 minutes
//! on Linux). A single-node connection has the same blind spot for a primary demoted behind a
//! fixed address (a managed service's primary endpoint): writes answer `READONLY` on a
//! connection that never reconnects.
//!
//! So every call's failure is reported here, and a failure of the kind a stale connection
//! gives (a timeout, a dropped or refused connection, `READONLY`, `CLUSTERDOWN`, `MOVED`, no
//! connection for a slot) rebuilds the connection from scratch: a fresh client from the
//! configured URLs and the nodes last seen in the cluster, whose slot map is read anew. One
//! rebuild runs at a time, and rebuilds are spaced by a back-off (0.5 s doubling to 4 s, reset
//! after 10 s without a failure), so an outage costs a few reconnects a second at most and the
//! connection follows the cluster within seconds of it being healthy again.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Client, FromRedisValue, ScriptInvocation, Value};

use super::keys::KeyNames;
use crate::store::StoreError;

/// One node through a reconnecting manager, or a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The connections of one generation: `main` for every call, and, when writes wait for
/// replicas, `writes` for the writes and their `WAIT` (Redis holds back every later command of
/// a connection while its `WAIT` blocks, so reads must not queue behind it).
struct Links {
    main: Conn,
    writes: Option<Conn>,
}

/// When writes count as done: once `replicas` replicas acknowledge them, waiting at most
/// `timeout` (`REDIS_WAIT_REPLICAS`, `REDIS_WAIT_TIMEOUT`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitReplicas {
    pub(crate) replicas: u32,
    pub(crate) timeout: Duration,
}

/// A connection to Redis or Redis Cluster, shared by the session store and by the Redis
/// backends of the rate limiter and the attempt tracker, so one connection serves them all.
///
/// Get it from [`RedisStore::connection`](super::RedisStore::connection). Cloning is cheap
/// (the clones share the connection). Every call through it has the store's timeout, and it
/// carries the store's key prefix and, when records are sealed, the key that hashes user ids
/// and client addresses in key names, so every key written through it leaks as little. When
/// calls fail the way a stale connection fails (a timeout, a dropped connection, `READONLY`
/// from a demoted primary, a cluster slot that moved), it rebuilds itself from the configured
/// URLs and the cluster's current nodes, so a failover never needs a restart.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    links: RwLock<Arc<Links>>,
    opener: Opener,
    timeout: Duration,
    names: KeyNames,
    wait: Option<WaitReplicas>,
    supervisor: Mutex<Supervisor>,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("mode", &self.mode())
            .field("prefix", &self.inner.names.prefix())
            .field("timeout", &self.inner.timeout)
            .field("wait", &self.inner.wait)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// The shortest and longest spacing of rebuilds, and how long without a failure resets it.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
const QUIET: Duration = Duration::from_secs(10);

/// When the connection was last rebuilt, and whether a rebuild is under way.
struct Supervisor {
    rebuilding: bool,
    last_rebuild: Option<Instant>,
    last_failure: Option<Instant>,
    backoff: Duration,
    rebuilds: u64,
}

/// What a connection is opened from: the configured URLs, the nodes last seen in the cluster,
/// the CA certificate, the timeout.
struct Opener {
    urls: Vec<String>,
    ca_cert: Option<Vec<u8>>,
    timeout: Duration,
    /// How long a write may wait for replicas, when writes wait: the writes' connection
    /// answers within that and the timeout.
    wait: Option<Duration>,
    /// `host:port` of every node the cluster last reported (`CLUSTER SLOTS`), seeds for a
    /// rebuild besides the configured URLs: the configured ones may all be gone.
    seen: Mutex<Vec<(String, u16)>>,
}

impl Opener {
    /// A connection whose calls answer within `response_timeout`.
    async fn open_conn(&self, response_timeout: Duration) -> Result<Conn, StoreError> {
        let timeout = self.timeout;
        let first = self.urls.first().ok_or_else(|| {
            StoreError::Unavailable("no Redis URL configured (REDIS_URL)".to_owned())
        })?;
        if self.urls.len() == 1 {
            let client = client_for(first, self.ca_cert.as_deref())?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(response_timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(2));
            let manager = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(unavailable)?;
            return Ok(Conn::Single(manager));
        }
        let mut seeds = self.urls.clone();
        for (host, port) in self.seen.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if let Some(url) = with_address(first, host, *port)
                && !seeds.contains(&url)
            {
                seeds.push(url);
            }
        }
        let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(response_timeout)
            .retries(2);
        if let Some(pem) = &self.ca_cert {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            });
        }
        let client = builder.build().map_err(unavailable)?;
        let conn = client.get_async_connection().await.map_err(unavailable)?;
        Ok(Conn::Cluster(conn))
    }

    /// A new generation of connections, within five timeouts.
    async fn open(&self) -> Result<Links, StoreError> {
        let open = async {
            let main = self.open_conn(self.timeout).await?;
            let writes = match self.wait {
                Some(wait) => Some(self.open_conn(self.timeout + wait).await?),
                None => None,
            };
            Ok::<_, StoreError>(Links { main, writes })
        };
        let links = tokio::time::timeout(self.timeout * 5, open)
            .await
            .map_err(|_| StoreError::Timeout)??;
        if let Conn::Cluster(conn) = &links.main
            && let Ok(nodes) = cluster_nodes(conn.clone(), self.timeout).await
        {
            *self.seen.lock().unwrap_or_else(|e| e.into_inner()) =
                nodes.into_iter().flat_map(|shard| shard.nodes).collect();
        }
        Ok(links)
    }
}

/// `url` with its host and port replaced (scheme, credentials, database and query kept), for
/// a node the cluster reported.
pub(crate) fn with_address(url: &str, host: &str, port: u16) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let userinfo = authority.rfind('@').map_or("", |at| &authority[..=at]);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Some(format!(
        "{}{userinfo}{host}:{port}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    ))
}

/// The `host:port` of a node URL, without its scheme, credentials or database: for logs.
pub(crate) fn node_of(url: &str) -> &str {
    let rest = url.find("://").map_or(url, |i| &url[i + 3..]);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..])
}

/// One slot range of a cluster, its master first, as `CLUSTER SLOTS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) first_slot: u16,
    pub(crate) last_slot: u16,
    /// `(host, port)` of its nodes, the master first.
    pub(crate) nodes: Vec<(String, u16)>,
}

/// The slot ranges of the cluster, as a node `conn` picks reports them.
async fn cluster_nodes(
    mut conn: ClusterConnection,
    timeout: Duration,
) -> Result<Vec<Shard>, StoreError> {
    let call = conn.route_command(
        redis::cmd("CLUSTER").arg("SLOTS").clone(),
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
    );
    let value = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| StoreError::Timeout)?
        .map_err(unavailable)?;
    parse_cluster_slots(&value)
}

/// Reads a `CLUSTER SLOTS` answer: `[[start, end, [host, port, id, …], replicas…], …]`.
pub(crate) fn parse_cluster_slots(value: &Value) -> Result<Vec<Shard>, StoreError> {
    let corrupt = || StoreError::Corrupt("CLUSTER SLOTS answer".to_owned());
    let Value::Array(ranges) = value else {
        return Err(corrupt());
    };
    let mut shards = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(corrupt());
        };
        let slot = |i: usize| {
            fields
                .get(i)
                .and_then(|v| i64::from_redis_value(v.clone()).ok())
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(corrupt)
        };
        let (first_slot, last_slot) = (slot(0)?, slot(1)?);
        let mut nodes = Vec::new();
        for node in fields.iter().skip(2) {
            let Value::Array(node) = node else {
                return Err(corrupt());
            };
            let host = node
                .first()
                .and_then(|v| String::from_redis_value(v.clone()).ok())
                .ok_or_else(corrupt)?;
            let port = node
                .get(1)
                .and_then(|v| i64::from_redis_value(v.clone()).ok())
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(corrupt)?;
            nodes.push((host, port));
        }
        if nodes.is_empty() {
            return Err(corrupt());
        }
        shards.push(Shard {
            first_slot,
            last_slot,
            nodes,
        });
    }
    Ok(shards)
}

/// Whether `error` is what a stale connection gives: a timeout, a dropped or refused
/// connection, a primary demoted under it (`READONLY`, also inside a script's error), a
/// cluster slot that moved or is not served (`MOVED`, `ASK`, `CLUSTERDOWN`, `TRYAGAIN`,
/// `MASTERDOWN`, `LOADING`, no connection for it). A script's own error, a type error or a
/// refused permission is not: a new connection would get the same answer.
fn stale(error: &redis::RedisError) -> bool {
    use redis::ErrorKind;
    use redis::ServerErrorKind as S;
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
    {
        return true;
    }
    match error.kind() {
        ErrorKind::ClusterConnectionNotFound | ErrorKind::Parse => true,
        ErrorKind::Server(
            S::ReadOnly
            | S::ClusterDown
            | S::MasterDown
            | S::TryAgain
            | S::Moved
            | S::Ask
            | S::BusyLoading,
        ) => true,
        _ => error.to_string().contains("READONLY"),
    }
}

impl RedisConnection {
    /// Connects to one Redis (`urls` has one entry) or a Redis Cluster (several seed nodes),
    /// trusting `ca_cert` (PEM) for `rediss://` when given. Connecting takes at most five
    /// timeouts. With `wait`, writes made through [`write`](Self::write) are confirmed by
    /// replicas, on connections of their own.
    pub(crate) async fn open(
        urls: &[String],
        timeout: Duration,
        ca_cert: Option<&[u8]>,
        names: KeyNames,
        wait: Option<WaitReplicas>,
    ) -> Result<Self, StoreError> {
        let opener = Opener {
            urls: urls.to_vec(),
            ca_cert: ca_cert.map(<[u8]>::to_vec),
            timeout,
            wait: wait.map(|w| w.timeout),
            seen: Mutex::default(),
        };
        let links = opener.open().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                links: RwLock::new(Arc::new(links)),
                opener,
                timeout,
                names,
                wait,
                supervisor: Mutex::new(Supervisor {
                    rebuilding: false,
                    last_rebuild: None,
                    last_failure: None,
                    backoff: MIN_BACKOFF,
                    rebuilds: 0,
                }),
            }),
        })
    }

    /// `"single"` or `"cluster"`.
    fn mode(&self) -> &'static str {
        match self.links().main {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        }
    }

    /// The timeout every call gets.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The key prefix (`REDIS_KEY_PREFIX`) every key starts with.
    pub fn prefix(&self) -> &str {
        self.inner.names.prefix()
    }

    /// How keys are named on this connection.
    pub(crate) fn names(&self) -> &KeyNames {
        &self.inner.names
    }

    /// How many replicas must confirm a write, if any.
    pub(crate) fn wait(&self) -> Option<WaitReplicas> {
        self.inner.wait
    }

    /// How many times the connection has been rebuilt.
    #[cfg(test)]
    pub(crate) fn rebuilds(&self) -> u64 {
        self.inner.supervisor.lock().unwrap().rebuilds
    }

    fn links(&self) -> Arc<Links> {
        self.inner
            .links
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `call` on a clone of `conn` within `timeout`, and tells the supervisor how it went.
    async fn on<T>(
        &self,
        conn: Conn,
        timeout: Duration,
        call: impl AsyncFnOnce(Conn) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let result = tokio::time::timeout(timeout, call(conn)).await;
        match result {
            Ok(Ok(value)) => {
                self.succeeded();
                Ok(value)
            }
            Ok(Err(error)) => {
                if stale(&error) {
                    self.failed(&error.to_string());
                }
                Err(unavailable(error))
            }
            Err(_) => {
                self.failed("no answer within the timeout");
                Err(StoreError::Timeout)
            }
        }
    }

    /// Runs a Lua script that only reads, within the timeout.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let conn = self.links().main.clone();
        self.on(conn, self.inner.timeout, async |conn| match conn {
            Conn::Single(mut c) => invocation.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => invocation.invoke_async(&mut c).await,
        })
        .await
    }

    /// Runs a Lua script that writes the keys of `key`'s slot, within the timeout. Its
    /// [`Written`] confirms the write with replicas when the settings ask for it: call
    /// [`Written::confirm`] before acknowledging what the script did.
    pub(crate) async fn write<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        key: &str,
    ) -> Result<(T, Written<'_>), StoreError> {
        let links = self.links();
        let conn = links.writes.clone().unwrap_or_else(|| links.main.clone());
        let value = self
            .on(conn.clone(), self.inner.timeout, async |conn| match conn {
                Conn::Single(mut c) => invocation.invoke_async(&mut c).await,
                Conn::Cluster(mut c) => invocation.invoke_async(&mut c).await,
            })
            .await?;
        Ok((
            value,
            Written {
                redis: self,
                conn,
                slot: key_slot(key.as_bytes()),
                marker: marker_key(key),
            },
        ))
    }

    /// When writes wait for replicas: waits until they have everything the primary of `key`'s
    /// slot holds, up to now (see [`Written::confirm`]), before a refusal read from it is
    /// answered (a record a logout deleted, by a write no replica may have yet). Does nothing
    /// otherwise.
    pub(crate) async fn confirm_slot(&self, key: &str) -> Result<(), StoreError> {
        if self.inner.wait.is_none() {
            return Ok(());
        }
        let links = self.links();
        Written {
            redis: self,
            conn: links.writes.clone().unwrap_or_else(|| links.main.clone()),
            slot: key_slot(key.as_bytes()),
            marker: marker_key(key),
        }
        .confirm()
        .await
    }

    /// Runs one command, within the timeout.
    pub(crate) async fn command<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        async fn go<C: ConnectionLike, T: FromRedisValue>(
            c: &mut C,
            cmd: &redis::Cmd,
        ) -> redis::RedisResult<T> {
            cmd.query_async(c).await
        }
        let conn = self.links().main.clone();
        self.on(conn, self.inner.timeout, async |conn| match conn {
            Conn::Single(mut c) => go(&mut c, cmd).await,
            Conn::Cluster(mut c) => go(&mut c, cmd).await,
        })
        .await
    }

    /// The cluster's slot ranges and nodes, as a node of this connection reports them; `None`
    /// for a single node.
    pub(crate) async fn shards(&self) -> Result<Option<Vec<Shard>>, StoreError> {
        let Conn::Cluster(conn) = self.links().main.clone() else {
            return Ok(None);
        };
        let shards = self
            .on(Conn::Cluster(conn), self.inner.timeout, async |conn| {
                let Conn::Cluster(mut conn) = conn else {
                    unreachable!("a cluster connection")
                };
                conn.route_command(
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await
            })
            .await?;
        parse_cluster_slots(&shards).map(Some)
    }

    /// Runs `cmd` on the node this connection sends the writes of `slot` to (the same route
    /// a script on a key of that slot takes), within the timeout; on the node itself when
    /// this is a single node.
    pub(crate) async fn command_at_slot<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        slot: u16,
    ) -> Result<T, StoreError> {
        let conn = self.links().main.clone();
        let value = self
            .on(conn, self.inner.timeout, async |conn| match conn {
                Conn::Single(mut c) => c.req_packed_command(cmd).await,
                Conn::Cluster(mut c) => {
                    c.route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                            slot,
                            SlotAddr::Master,
                        ))),
                    )
                    .await
                }
            })
            .await?;
        T::from_redis_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    fn succeeded(&self) {
        let mut s = self
            .inner
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if s.last_failure.is_some_and(|at| at.elapsed() >= QUIET) {
            s.backoff = MIN_BACKOFF;
            s.last_failure = None;
        }
    }

    /// A call failed the way a stale connection fails: rebuild the connection, unless a
    /// rebuild is under way or the last one is more recent than the back-off.
    fn failed(&self, cause: &str) {
        let backoff = {
            let mut s = self
                .inner
                .supervisor
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            s.last_failure = Some(Instant::now());
            if s.rebuilding || s.last_rebuild.is_some_and(|at| at.elapsed() < s.backoff) {
                return;
            }
            s.rebuilding = true;
            s.last_rebuild = Some(Instant::now());
            let backoff = s.backoff;
            s.backoff = (s.backoff * 2).min(MAX_BACKOFF);
            backoff
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner
                .supervisor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .rebuilding = false;
            return;
        };
        tracing::warn!(
            cause,
            next_in = ?backoff,
            "Redis calls fail as a stale connection does (a failover, a paused or unreachable node): reconnecting"
        );
        let this = self.clone();
        runtime.spawn(async move {
            let result = this.inner.opener.open().await;
            let mut s = this
                .inner
                .supervisor
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            s.rebuilding = false;
            s.last_rebuild = Some(Instant::now());
            match result {
                Ok(links) => {
                    s.rebuilds += 1;
                    drop(s);
                    *this.inner.links.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(links);
                    tracing::info!("Redis connection rebuilt");
                }
                Err(error) => {
                    drop(s);
                    tracing::warn!(%error, "Redis connection could not be rebuilt yet; the old one stays");
                }
            }
        });
    }
}

/// A write a script made (or a state it read), to be confirmed by replicas before it is
/// acknowledged.
pub(crate) struct Written<'a> {
    redis: &'a RedisConnection,
    /// The connection the script ran on.
    conn: Conn,
    slot: u16,
    /// A key of the script's slot that [`confirm`](Self::confirm) writes.
    marker: String,
}

/// How long the marker [`Written::confirm`] writes lives.
const MARKER_LIFETIME: Duration = Duration::from_secs(1);

impl Written<'_> {
    /// Waits until the replicas the settings ask for (`REDIS_WAIT_REPLICAS`) have everything
    /// the primary of the script's slot holds, up to now; does nothing when the settings ask
    /// for none.
    ///
    /// `WAIT` counts the writes of its own connection, so a script that wrote nothing (a
    /// logout retried after a 503, which finds the session already gone; a grace answer)
    /// would be confirmed at once, though what it answers from (the first attempt's write, by
    /// this or another instance) may not have reached a replica. So a short-lived marker is
    /// written in the same slot first, on the same connection: replication is in order, so a
    /// replica that has the marker has everything before it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when fewer replicas acknowledged it within the wait timeout:
    /// the write is on the primary, but a failover could lose it, so it is not acknowledged.
    pub(crate) async fn confirm(self) -> Result<(), StoreError> {
        let Some(wait) = self.redis.inner.wait else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&self.marker)
            .arg(1)
            .arg("PX")
            .arg(MARKER_LIFETIME.as_millis() as u64)
            .cmd("WAIT")
            .arg(wait.replicas)
            .arg(
                u64::try_from(wait.timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            );
        let slot = self.slot;
        let replies: Vec<Value> = self
            .redis
            .on(
                self.conn,
                wait.timeout + self.redis.inner.timeout,
                async |conn| match conn {
                    Conn::Single(mut c) => pipe.query_async(&mut c).await,
                    Conn::Cluster(mut c) => {
                        c.route_pipeline(
                            pipe.clone(),
                            0,
                            2,
                            SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)),
                        )
                        .await
                    }
                },
            )
            .await?;
        let acknowledged = replies
            .get(1)
            .and_then(|v| i64::from_redis_value(v.clone()).ok())
            .ok_or_else(|| StoreError::Corrupt("WAIT answer".to_owned()))?;
        if acknowledged >= i64::from(wait.replicas) {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "the write reached {acknowledged} of the {} replicas REDIS_WAIT_REPLICAS asks for within {:?}",
                wait.replicas, wait.timeout
            )))
        }
    }
}

/// The marker key [`Written::confirm`] writes for a script on `key`: `key` up to its hash tag,
/// then `:w` (`P:{tag}:w`), so it is in the script's slot; `key:w` for a key without a tag.
fn marker_key(key: &str) -> String {
    match (key.find('{'), key.find('}')) {
        (Some(open), Some(close)) if open < close => format!("{}:w", &key[..=close]),
        _ => format!("{key}:w"),
    }
}

/// The cluster slot of `key`: CRC16/XMODEM of its hash tag (the part between the first `{`
/// and the next `}`, when not empty) or of the whole key, modulo 16384. Written out because
/// `redis::cluster_routing::Slot` keeps its number private, and health must pick a key in each
/// slot range; a test holds it to the client's own routing.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for byte in hashed {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// A client for one node, trusting `ca_cert` (PEM) for `rediss://` when given.
pub(crate) fn client_for(url: &str, ca_cert: Option<&[u8]>) -> Result<Client, StoreError> {
    match ca_cert {
        Some(pem) if url.starts_with("rediss://") => Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        )
        .map_err(unavailable),
        _ => Client::open(url).map_err(unavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_node_keeps_the_scheme_credentials_and_database_of_the_configured_url() {
        assert_eq!(
            with_address(
                "rediss://app:s3cret@seed.example:6379/0?x=1",
                "10.0.0.7",
                7001
            )
            .as_deref(),
            Some("rediss://app:s3cret@10.0.0.7:7001/0?x=1")
        );
        assert_eq!(
            with_address("redis://seed:6379", "::1", 7002).as_deref(),
            Some("redis://[::1]:7002")
        );
    }

    #[test]
    fn key_slots_are_the_ones_the_cluster_client_routes_by() {
        for key in [
            &b"foo"[..],
            b"{user1000}.following",
            b"{}abc",
            b"a{}{b}",
            b"tjs:{81b637d8}:s:gbY32NjUse1Xv5futiCCEQ",
            b"",
        ] {
            assert_eq!(
                Route::with_key(key, SlotAddr::Master),
                Route::new(key_slot(key), SlotAddr::Master),
                "{}",
                String::from_utf8_lossy(key)
            );
        }
        // The example of the cluster specification.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
    }

    #[test]
    fn the_confirmation_marker_shares_the_scripts_slot() {
        let key = "tjs:{81b637d8}:s:gbY32NjUse1Xv5futiCCEQ";
        assert_eq!(marker_key(key), "tjs:{81b637d8}:w");
        assert_eq!(
            key_slot(marker_key(key).as_bytes()),
            key_slot(key.as_bytes())
        );
        assert_eq!(marker_key("plain"), "plain:w");
    }

    #[test]
    fn logs_name_a_node_without_its_credentials() {
        assert_eq!(
            node_of("rediss://app:s3cret@10.0.0.7:7001/0"),
            "10.0.0.7:7001"
        );
        assert_eq!(node_of("redis://seed:6379"), "seed:6379");
    }

    #[test]
    fn what_a_stale_connection_answers_rebuilds_it_and_a_scripts_own_error_does_not() {
        let server = |code: &str, detail: &str| {
            redis::RedisError::from((
                redis::ErrorKind::Extension,
                "server",
                format!("{code} {detail}"),
            ))
        };
        let timeout = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(stale(&timeout));
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(stale(&refused));
        assert!(stale(&server(
            "ERR",
            "Error running script: -READONLY You can't write against a read only replica."
        )));
        assert!(!stale(&server("ERR", "user_script:1: bad argument")));
        assert!(!stale(&redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "not a string"
        ))));
    }

    #[test]
    fn cluster_slots_are_read_master_first() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let answer = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            node("10.0.0.1", 7000),
            node("10.0.0.2", 7003),
        ])]);
        assert_eq!(
            parse_cluster_slots(&answer).unwrap(),
            vec![Shard {
                first_slot: 0,
                last_slot: 5460,
                nodes: vec![("10.0.0.1".to_owned(), 7000), ("10.0.0.2".to_owned(), 7003)],
            }]
        );
        assert!(parse_cluster_slots(&Value::Int(1)).is_err());
    }
}

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
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{FromRedisValue, ScriptInvocation};

use super::keys::KeyNames;
use crate::store::StoreError;

mod cluster;
mod opener;
mod supervisor;
mod written;

pub(crate) use cluster::{Shard, client_for, key_slot, node_of, parse_cluster_slots, with_address};
use opener::Opener;
use supervisor::Supervisor;
pub(crate) use written::Written;
use written::marker_key;

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

impl RedisConnection {
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
}

#[cfg(test)]
mod tests;

//! [`RedisConnection`]: one Redis node or a cluster, the timeout every call gets, and the
//! names the keys are written under.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Client, FromRedisValue, ScriptInvocation};

use super::keys::KeyNames;
use crate::store::StoreError;

/// One node through a reconnecting manager, or a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A connection to Redis or Redis Cluster, shared by the session store and by the Redis
/// backends of the rate limiter and the attempt tracker, so one connection serves them all.
///
/// Get it from [`RedisStore::connection`](super::RedisStore::connection). Cloning is cheap
/// (the clones share the connection). Every call through it has the store's timeout, and it
/// carries the store's key prefix and, when records are sealed, the key that hashes user ids
/// and client addresses in key names, so every key written through it leaks as little.
#[derive(Clone)]
pub struct RedisConnection {
    conn: Conn,
    timeout: Duration,
    names: Arc<KeyNames>,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("mode", &self.mode())
            .field("prefix", &self.names.prefix())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl RedisConnection {
    /// Connects to one Redis (`urls` has one entry) or a Redis Cluster (several seed nodes),
    /// trusting `ca_cert` (PEM) for `rediss://` when given. Connecting takes at most five
    /// timeouts.
    pub(crate) async fn open(
        urls: &[String],
        timeout: Duration,
        ca_cert: Option<&[u8]>,
        names: KeyNames,
    ) -> Result<Self, StoreError> {
        let first = urls.first().ok_or_else(|| {
            StoreError::Unavailable("no Redis URL configured (REDIS_URL)".to_owned())
        })?;
        let connect = async {
            if urls.len() == 1 {
                let client = client_for(first, ca_cert)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(2));
                let manager = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(unavailable)?;
                Ok::<_, StoreError>(Conn::Single(manager))
            } else {
                let mut builder = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2);
                if let Some(pem) = ca_cert {
                    builder = builder.certs(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.to_vec()),
                    });
                }
                let client = builder.build().map_err(unavailable)?;
                let conn = client.get_async_connection().await.map_err(unavailable)?;
                Ok(Conn::Cluster(conn))
            }
        };
        let conn = tokio::time::timeout(timeout * 5, connect)
            .await
            .map_err(|_| StoreError::Timeout)??;
        Ok(Self {
            conn,
            timeout,
            names: Arc::new(names),
        })
    }

    /// `"single"` or `"cluster"`.
    fn mode(&self) -> &'static str {
        match self.conn {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        }
    }

    /// The timeout every call gets.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The key prefix (`REDIS_KEY_PREFIX`) every key starts with.
    pub fn prefix(&self) -> &str {
        self.names.prefix()
    }

    /// How keys are named on this connection.
    pub(crate) fn names(&self) -> &KeyNames {
        &self.names
    }

    /// Runs a Lua script, within the timeout.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let call = async {
            match self.conn.clone() {
                Conn::Single(mut c) => invocation.invoke_async(&mut c).await,
                Conn::Cluster(mut c) => invocation.invoke_async(&mut c).await,
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(unavailable)
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
        let call = async {
            match self.conn.clone() {
                Conn::Single(mut c) => go(&mut c, cmd).await,
                Conn::Cluster(mut c) => go(&mut c, cmd).await,
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(unavailable)
    }
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

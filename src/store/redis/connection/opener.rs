//! Opening a [`RedisConnection`](super::RedisConnection): from the configured URLs (or the cluster
//! nodes last seen), with the CA certificate and the timeout.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;

use super::cluster::cluster_nodes;
use super::supervisor::{MIN_BACKOFF, Supervisor};
use super::{Conn, Inner, Links, RedisConnection, WaitReplicas, unavailable};
use super::{client_for, with_address};
use crate::store::StoreError;
use crate::store::redis::keys::KeyNames;

/// What a connection is opened from: the configured URLs, the nodes last seen in the cluster,
/// the CA certificate, the timeout.
pub(super) struct Opener {
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
    pub(super) async fn open_conn(&self, response_timeout: Duration) -> Result<Conn, StoreError> {
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
    pub(super) async fn open(&self) -> Result<Links, StoreError> {
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
}

//! A write to be confirmed by replicas before it is acknowledged, and its marker key.

use std::time::Duration;

use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{FromRedisValue, Value};

use super::{Conn, RedisConnection};
use crate::store::StoreError;

/// A write a script made (or a state it read), to be confirmed by replicas before it is
/// acknowledged.
pub(crate) struct Written<'a> {
    pub(super) redis: &'a RedisConnection,
    /// The connection the script ran on.
    pub(super) conn: Conn,
    pub(super) slot: u16,
    /// A key of the script's slot that [`confirm`](Self::confirm) writes.
    pub(super) marker: String,
}

/// How long the marker [`Written::confirm`] writes lives.
pub(super) const MARKER_LIFETIME: Duration = Duration::from_secs(1);

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
pub(super) fn marker_key(key: &str) -> String {
    match (key.find('{'), key.find('}')) {
        (Some(open), Some(close)) if open < close => format!("{}:w", &key[..=close]),
        _ => format!("{key}:w"),
    }
}

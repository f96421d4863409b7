//! The subscriber to the revocations every instance publishes, on any node that answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::session::{SessionId, random_bytes};
use crate::store::redis::connection::{
    RedisConnection, client_for, node_of, unavailable, with_address,
};
use crate::store::{RevocationEvent, RevocationSink, StoreError};

/// Listens for revocations published by any instance, on any node that answers.
///
/// Published revocations reach every node of a cluster (classic pub/sub is broadcast over the
/// cluster bus), so the subscription may live on any node: the configured ones first, then
/// every node the cluster reports. It moves to the next node when its connection closes, and
/// when a heartbeat it publishes through the store's connection once a second does not come
/// back within three seconds: what a paused node, or one cut off from the rest of the cluster,
/// gives. Each time it subscribes it sends [`RevocationEvent::Resync`]: anything published
/// while it was away is unknown.
pub(super) struct Subscriber {
    pub(in crate::store::redis) redis: RedisConnection,
    pub(in crate::store::redis) urls: Vec<String>,
    pub(in crate::store::redis) ca_cert: Option<Vec<u8>>,
    pub(in crate::store::redis) channel: String,
    pub(in crate::store::redis) sinks: Arc<Mutex<Vec<RevocationSink>>>,
}

/// How often the subscriber publishes its heartbeat, and how late it may come back.
pub(super) const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
pub(super) const HEARTBEAT_LATE: Duration = Duration::from_secs(3);

impl Subscriber {
    pub(super) fn notify(&self, event: RevocationEvent) {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for sink in sinks {
            sink(event);
        }
    }

    /// The nodes to subscribe on, in order: the configured URLs, then every node the cluster
    /// reports (with the first URL's scheme and credentials).
    pub(super) async fn candidates(&self) -> Vec<String> {
        let mut urls = self.urls.clone();
        if let Ok(Some(shards)) = self.redis.shards().await {
            for (host, port) in shards.into_iter().flat_map(|shard| shard.nodes) {
                if let Some(url) = with_address(&self.urls[0], &host, port)
                    && !urls.contains(&url)
                {
                    urls.push(url);
                }
            }
        }
        urls
    }

    pub(super) async fn run(self) {
        let heartbeat = format!(
            "hb:{}:",
            crate::store::redis::keys::hex(&random_bytes::<8>())
        );
        let mut next = 0usize;
        let mut delay = Duration::from_millis(100);
        loop {
            let candidates = self.candidates().await;
            let url = &candidates[next % candidates.len()];
            match self.listen(url, &heartbeat, &mut delay).await {
                Ok(lost) => tracing::warn!(
                    node = node_of(url),
                    cause = lost,
                    "revocation subscription lost; subscribing on another node"
                ),
                Err(error) => tracing::debug!(
                    node = node_of(url),
                    %error,
                    "revocation subscriber cannot subscribe on this node"
                ),
            }
            next = next.wrapping_add(1);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Subscribes on `url` and delivers what arrives until the subscription is lost; returns
    /// why, or the error that kept it from subscribing.
    pub(super) async fn listen(
        &self,
        url: &str,
        heartbeat: &str,
        delay: &mut Duration,
    ) -> Result<&'static str, StoreError> {
        let timeout = self.redis.timeout() * 2;
        let client = client_for(url, self.ca_cert.as_deref())?;
        let pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(unavailable)?;
        let (mut sink, mut messages) = pubsub.split();
        tokio::time::timeout(timeout, sink.subscribe(&self.channel))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(unavailable)?;
        *delay = Duration::from_millis(100);
        self.notify(RevocationEvent::Resync);
        let mut sequence = 0u64;
        // The heartbeat published and not seen yet, and when.
        let mut pending: Option<(String, Instant)> = None;
        let mut next_beat = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_millis(250), messages.next()).await {
                Ok(Some(message)) => {
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    if pending.as_ref().is_some_and(|(beat, _)| *beat == payload) {
                        pending = None;
                    } else if let Ok(sid) = payload.parse::<SessionId>() {
                        self.notify(RevocationEvent::Revoked(sid));
                    }
                }
                Ok(None) => return Ok("the connection closed"),
                Err(_) => {}
            }
            if pending
                .as_ref()
                .is_some_and(|(_, sent)| sent.elapsed() > HEARTBEAT_LATE)
            {
                drop(sink);
                return Ok("a heartbeat published through the store did not arrive");
            }
            if pending.is_none() && Instant::now() >= next_beat {
                sequence += 1;
                let beat = format!("{heartbeat}{sequence}");
                // A failed publish is the store's failure, not the subscription's.
                let published: Result<i64, _> = self
                    .redis
                    .command(redis::cmd("PUBLISH").arg(&self.channel).arg(&beat))
                    .await;
                if published.is_ok() {
                    pending = Some((beat, Instant::now()));
                }
                next_beat = Instant::now() + HEARTBEAT_EVERY;
            }
        }
    }
}

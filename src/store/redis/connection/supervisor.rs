//! The supervision that rebuilds a stale connection: which errors say it is stale, the back-off
//! of rebuilds, and the bookkeeping of each call's success or failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Conn, RedisConnection, unavailable};
use crate::store::StoreError;

/// The shortest and longest spacing of rebuilds, and how long without a failure resets it.
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(500);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(4);
pub(super) const QUIET: Duration = Duration::from_secs(10);

/// When the connection was last rebuilt, and whether a rebuild is under way.
pub(super) struct Supervisor {
    pub(super) rebuilding: bool,
    pub(super) last_rebuild: Option<Instant>,
    pub(super) last_failure: Option<Instant>,
    pub(super) backoff: Duration,
    pub(super) rebuilds: u64,
}

/// Whether `error` is what a stale connection gives: a timeout, a dropped or refused
/// connection, a primary demoted under it (`READONLY`, also inside a script's error), a
/// cluster slot that moved or is not served (`MOVED`, `ASK`, `CLUSTERDOWN`, `TRYAGAIN`,
/// `MASTERDOWN`, `LOADING`, no connection for it). A script's own error, a type error or a
/// refused permission is not: a new connection would get the same answer.
pub(super) fn stale(error: &redis::RedisError) -> bool {
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
    /// Runs `call` on a clone of `conn` within `timeout`, and tells the supervisor how it went.
    pub(super) async fn on<T>(
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
}

impl RedisConnection {
    pub(super) fn succeeded(&self) {
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
    pub(super) fn failed(&self, cause: &str) {
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

//! [`Limits`]: the protections of the login and token routes, kept where the sessions are.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Extensions, HeaderMap, Request, Response};

use super::client_ip::{IpKey, peer_ip, resolve};
use super::{
    AttemptBackend, AttemptTracker, MemoryBackend, RateDecision, RateLimitBackend,
    too_many_requests,
};
use crate::config::{AttemptConfig, RateLimitConfig};
use crate::store::{Backing, SessionStore, StoreWarning};

/// The per-client request limit: its settings and where its counts live. Shared by every route
/// that draws on the same budget (the login and token routes of one manager, and a
/// [`ClientRateLimitLayer::from_manager`](crate::layer::ClientRateLimitLayer::from_manager)).
pub struct RateLimiter {
    pub(crate) config: RateLimitConfig,
    pub(crate) backend: Arc<dyn RateLimitBackend>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.config)
            .field("backend", &self.backend)
            .finish()
    }
}

/// What the limiter says of one request.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Counted and within the limit (`None`: exempt, or the backend failed and the request goes
    /// through, fail open); the client's address.
    Allowed(IpAddr, Option<RateDecision>),
    /// Over the limit: the 429 answer.
    Refused(Response<Bytes>),
    /// No client address: nothing can be counted.
    NoAddress,
}

impl RateLimiter {
    /// A limiter with these settings, counting in `backend`.
    pub fn new(config: RateLimitConfig, backend: Arc<dyn RateLimitBackend>) -> Self {
        Self { config, backend }
    }

    /// A limiter counting in this process's memory, bounded by
    /// [`RateLimitConfig::max_tracked_clients`].
    pub fn in_memory(config: RateLimitConfig) -> Self {
        let backend = Arc::new(MemoryBackend::new(config.max_keys));
        Self::new(config, backend)
    }

    /// The settings.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The backend the counts live in.
    pub fn backend(&self) -> &Arc<dyn RateLimitBackend> {
        &self.backend
    }

    /// Resolves the client of a request and counts it (unless its `path` is exempt).
    pub(crate) async fn admit(
        &self,
        path: &str,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Admission {
        let Some(peer) = peer_ip(extensions) else {
            return Admission::NoAddress;
        };
        let config = &self.config;
        let client = resolve(peer, headers, &config.trusted_proxies);
        if config.is_exempt(path) {
            return Admission::Allowed(client, None);
        }
        let key = IpKey::new(client, config.ipv6_prefix_len);
        let (now_ms, window, max) = (config.clock.now_ms(), config.window, config.max_requests);
        let answer = match self.backend.try_hit(key.as_str(), now_ms, window, max) {
            Some(answer) => answer,
            None => crate::deadline::bound(self.backend.hit(key.as_str(), now_ms, window, max))
                .await
                .unwrap_or_else(|_| Err(super::BackendError::new("the request's deadline passed"))),
        };
        match answer {
            Ok(decision) if decision.allowed => Admission::Allowed(client, Some(decision)),
            Ok(decision) => {
                tracing::debug!(client = key.as_str(), "rate limited");
                Admission::Refused(too_many_requests(&decision))
            }
            Err(error) => {
                tracing::warn!(client = key.as_str(), %error, "rate-limit backend failed; letting the request through (fail open)");
                Admission::Allowed(client, None)
            }
        }
    }
}

/// The protections of the login and token routes, built once per
/// [`SessionManager`](crate::SessionManager) on the store's [`Backing`]: the per-client rate
/// limit, the login lock-out and the failed-refresh tracking count in Redis or PostgreSQL when
/// the sessions live there (shared by every instance), in this process's memory otherwise.
pub struct Limits {
    limiter: Arc<RateLimiter>,
    attempts: AttemptTracker,
    /// Where the counts live: `memory`, `redis` or `postgres`.
    kind: &'static str,
    /// The counts stay in this process although the sessions are shared (a store of the app's
    /// own that names no shared backing).
    per_instance: bool,
    /// A request reached the routes without a client address.
    address_missing: AtomicBool,
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("limiter", &self.limiter)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// The rate limit `rate_limit` and the lock-out `attempt_config` set, counting where `store`
    /// keeps its state.
    pub(crate) fn new(
        rate_limit: &RateLimitConfig,
        attempt_config: &AttemptConfig,
        store: &dyn SessionStore,
    ) -> Self {
        type Backends = (
            &'static str,
            Arc<dyn RateLimitBackend>,
            Option<Arc<dyn AttemptBackend>>,
        );
        let (kind, rate, attempts): Backends = match store.backing() {
            #[cfg(feature = "redis")]
            Backing::Redis(connection) => (
                "redis",
                Arc::new(super::RedisRateLimitBackend::new((*connection).clone())),
                Some(Arc::new(super::RedisAttemptBackend::new(*connection))),
            ),
            #[cfg(feature = "postgres")]
            Backing::Postgres(connection) => (
                "postgres",
                Arc::new(super::PostgresRateLimitBackend::new((*connection).clone())),
                Some(Arc::new(super::PostgresAttemptBackend::new(*connection))),
            ),
            _ => (
                "memory",
                Arc::new(MemoryBackend::new(rate_limit.max_keys)),
                None,
            ),
        };
        let attempts = match attempts {
            Some(backend) => AttemptTracker::with_backend(attempt_config.clone(), backend),
            None => AttemptTracker::new(attempt_config.clone()),
        };
        let per_instance = matches!(store.backing(), Backing::Process) && store.kind() != "memory";
        if per_instance {
            tracing::warn!(
                store = store.kind(),
                "the session store names no shared connection for the rate limit and the login lock-out: they count per instance, so N instances allow N times the attempts (implement SessionStore::backing, or keep one instance)"
            );
        }
        Self {
            limiter: Arc::new(RateLimiter::new(rate_limit.clone(), rate)),
            attempts,
            kind,
            per_instance,
            address_missing: AtomicBool::new(false),
        }
    }

    /// The per-client request limit.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// The login lock-out and the failed-refresh tracking.
    pub fn attempts(&self) -> &AttemptTracker {
        &self.attempts
    }

    /// Where the counts live: `memory`, `redis` or `postgres`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// A request reached the routes without a client address: nothing about it can be counted.
    /// Said at `warn` once, with the fix, and in health from then on.
    pub(crate) fn address_missing(&self) {
        if !self.address_missing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "a request reached the login or token routes without a client address, so the rate limit and the login lock-out cannot count it: serve axum with `into_make_service_with_connect_info::<SocketAddr>()` (hyper: insert `rate_limit::PeerAddr` into each request)"
            );
        }
    }

    /// [`admit`](Self::admit) around `handle`: the request's client resolved and (when
    /// `count`) counted, then `handle`'s answer with the `RateLimit-*` headers of the decision;
    /// or the 429, `handle` not called. The one wrapping of the login and token routes.
    pub(crate) async fn around<B, F, Fut>(
        &self,
        count: bool,
        req: Request<B>,
        handle: F,
    ) -> Response<Bytes>
    where
        F: FnOnce(Request<B>) -> Fut,
        Fut: std::future::Future<Output = Response<Bytes>>,
    {
        let (mut parts, body) = req.into_parts();
        let decision = match self
            .admit(
                count,
                parts.uri.path(),
                &parts.headers,
                &mut parts.extensions,
            )
            .await
        {
            Ok(decision) => decision,
            Err(refused) => return refused,
        };
        let mut res = handle(Request::from_parts(parts, body)).await;
        if let Some(decision) = decision {
            super::set_headers(res.headers_mut(), &decision);
        }
        res
    }

    /// What the crate's login and token routes do with a request before its work: resolve the
    /// client's address (put into the extensions as [`ClientIp`](super::ClientIp)) and, when
    /// `count`, count it against the rate limit, unless a
    /// [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) in front has counted it.
    /// `Ok` with the decision for the `RateLimit-*` headers (none when not counted here), or
    /// the 429 answer. Without a client address nothing is counted, which is said once at
    /// `warn` and from then on in health.
    pub(crate) async fn admit(
        &self,
        count: bool,
        path: &str,
        headers: &HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Option<RateDecision>, Response<Bytes>> {
        if extensions.get::<super::Counted>().is_some() {
            return Ok(None);
        }
        if !count {
            match peer_ip(extensions) {
                Some(peer) => {
                    let client = resolve(peer, headers, &self.limiter.config.trusted_proxies);
                    extensions.insert(super::ClientIp(client));
                }
                None => self.address_missing(),
            }
            return Ok(None);
        }
        match self.limiter.admit(path, headers, extensions).await {
            Admission::Allowed(client, decision) => {
                extensions.insert(super::ClientIp(client));
                Ok(decision)
            }
            Admission::Refused(answer) => Err(answer),
            Admission::NoAddress => {
                self.address_missing();
                Ok(None)
            }
        }
    }

    /// What keeps the protections from working as configured, for health.
    pub(crate) fn warnings(&self) -> Vec<StoreWarning> {
        let mut out = Vec::new();
        if self.address_missing.load(Ordering::Relaxed) {
            out.push(StoreWarning::new(
                "client_address_missing",
                "requests reach the login and token routes without a client address: the rate limit and the login lock-out are off for them; serve axum with into_make_service_with_connect_info::<SocketAddr>()",
            ));
        }
        if self.per_instance {
            out.push(StoreWarning::new(
                "limits_per_instance",
                "the rate limit and the login lock-out count per instance: the session store names no shared connection for them",
            ));
        }
        out
    }
}

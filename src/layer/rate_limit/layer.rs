use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::service::{ClientRateLimit, RateLimitCheck};
use crate::guard::Guarded;
use crate::manager::SessionManager;
use crate::rate_limit::{RateLimitBackend, RateLimitConfig, RateLimiter};

/// Limits requests per client IP: see the [module docs](crate::rate_limit).
///
/// The login and token routes already count their requests (on the manager's store); use this
/// layer for routes of your own. Cheap to clone, and clones share one set of counters: apply
/// one layer (or its clones) to every route that should draw on the same budget.
#[derive(Clone)]
#[must_use]
pub struct ClientRateLimitLayer {
    limiter: Arc<RateLimiter>,
}

impl fmt::Debug for ClientRateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRateLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl ClientRateLimitLayer {
    /// A layer counting in memory, in a [`MemoryBackend`](crate::rate_limit::MemoryBackend)
    /// bounded by [`RateLimitConfig::max_tracked_clients`].
    pub fn new(config: RateLimitConfig) -> Self {
        Self::from_limiter(Arc::new(RateLimiter::in_memory(config)))
    }

    /// A layer counting in `backend`, e.g. one shared by several instances.
    pub fn with_backend(config: RateLimitConfig, backend: Arc<dyn RateLimitBackend>) -> Self {
        Self::from_limiter(Arc::new(RateLimiter::new(config, backend)))
    }

    /// A layer drawing on the budget of `manager`'s login and token routes, counted where its
    /// sessions are (`RATE_LIMIT_*`, `TRUSTED_PROXIES`): a client's requests to your routes and
    /// to the crate's share one limit. Requests that went through it are not counted again
    /// by the crate's routes.
    pub fn from_manager(manager: &SessionManager) -> Self {
        Self::from_limiter(manager.limits().limiter().clone())
    }

    fn from_limiter(limiter: Arc<RateLimiter>) -> Self {
        Self { limiter }
    }

    /// The settings.
    pub fn config(&self) -> &RateLimitConfig {
        self.limiter.config()
    }

    /// The backend the counters live in.
    pub fn backend(&self) -> &Arc<dyn RateLimitBackend> {
        self.limiter.backend()
    }
}

impl<S> Layer<S> for ClientRateLimitLayer {
    type Service = ClientRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded::new(inner, RateLimitCheck::new(self.limiter.clone()))
    }
}

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::service::{ClientRateLimit, RateLimitCheck};
use crate::guard::Guarded;
use crate::rate_limit::{MemoryBackend, RateLimitBackend, RateLimitConfig};

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: RateLimitConfig,
    pub(crate) backend: Arc<dyn RateLimitBackend>,
}

/// Limits requests per client IP: see the [module docs](crate::rate_limit).
///
/// Cheap to clone, and clones share one set of counters: apply one layer (or its clones) to
/// every route that should draw on the same budget.
#[derive(Clone)]
#[must_use]
pub struct ClientRateLimitLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for ClientRateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRateLimitLayer")
            .field("config", &self.shared.config)
            .field("backend", &self.shared.backend)
            .finish()
    }
}

impl ClientRateLimitLayer {
    /// A layer counting in memory, in a [`MemoryBackend`] bounded by
    /// [`RateLimitConfig::max_tracked_clients`].
    pub fn new(config: RateLimitConfig) -> Self {
        let backend = Arc::new(MemoryBackend::new(config.max_keys));
        Self::with_backend(config, backend)
    }

    /// A layer counting in `backend`, e.g. one shared by several instances.
    pub fn with_backend(config: RateLimitConfig, backend: Arc<dyn RateLimitBackend>) -> Self {
        Self {
            shared: Arc::new(Shared { config, backend }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &RateLimitConfig {
        &self.shared.config
    }

    /// The backend the counters live in.
    pub fn backend(&self) -> &Arc<dyn RateLimitBackend> {
        &self.shared.backend
    }
}

impl<S> Layer<S> for ClientRateLimitLayer {
    type Service = ClientRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded::new(inner, RateLimitCheck::new(self.shared.clone()))
    }
}

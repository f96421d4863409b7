//! The rate limiter's [`Check`]: resolve the client, count the request.

use std::fmt;
use std::sync::Arc;

use http::Request;

use super::future::{HitFuture, RateLimitWait};
use crate::deadline::RequestStart;
use crate::guard::{Check, Guarded, Verdict};
use crate::rate_limit::{
    ClientIp, Counted, IpKey, RateDecision, RateLimiter, missing_peer_response, peer_ip, resolve,
    too_many_requests,
};

/// The service made by [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer): the inner
/// service behind a [`RateLimitCheck`].
pub type ClientRateLimit<S> = Guarded<S, RateLimitCheck>;

/// The check of [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer).
#[derive(Clone)]
pub struct RateLimitCheck {
    shared: Arc<RateLimiter>,
}

impl RateLimitCheck {
    pub(crate) fn new(shared: Arc<RateLimiter>) -> Self {
        Self { shared }
    }
}

impl fmt::Debug for RateLimitCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitCheck")
            .field("config", &self.shared.config)
            .field("backend", &self.shared.backend)
            .finish()
    }
}

impl<B> Check<B> for RateLimitCheck {
    type Stamp = Option<RateDecision>;
    type Future = RateLimitWait<B>;

    fn check(&self, mut req: Request<B>) -> Verdict<B, Self::Stamp, Self::Future> {
        let config = &self.shared.config;
        // The routes behind count their store deadline from here: this layer's wait on its
        // backend is part of the request's one budget. And they count nothing again.
        req.extensions_mut().insert(RequestStart::now());
        req.extensions_mut().insert(Counted);
        if config.is_exempt(req.uri().path()) {
            // Health probes and the like: not counted, never refused. The client address is
            // still resolved for the handler when there is one.
            if let Some(peer) = peer_ip(req.extensions()) {
                let client = resolve(peer, req.headers(), &config.trusted_proxies);
                req.extensions_mut().insert(ClientIp(client));
            }
            return Verdict::Allow(req, None);
        }
        let Some(peer) = peer_ip(req.extensions()) else {
            tracing::error!(
                "ClientRateLimitLayer: the request carries no peer address; serve axum with `into_make_service_with_connect_info::<SocketAddr>()`, or insert `tower_jwt_session::rate_limit::PeerAddr` into each request"
            );
            return Verdict::Refuse(missing_peer_response());
        };
        let client = resolve(peer, req.headers(), &config.trusted_proxies);
        req.extensions_mut().insert(ClientIp(client));
        let key = IpKey::new(client, config.ipv6_prefix_len);
        let (now_ms, window, max) = (config.clock.now_ms(), config.window, config.max_requests);

        match self
            .shared
            .backend
            .try_hit(key.as_str(), now_ms, window, max)
        {
            Some(Ok(decision)) if decision.allowed => Verdict::Allow(req, Some(decision)),
            Some(Ok(decision)) => {
                tracing::debug!(client = key.as_str(), "rate limited");
                Verdict::Refuse(too_many_requests(&decision))
            }
            Some(Err(error)) => {
                tracing::warn!(client = key.as_str(), %error, "rate-limit backend failed; letting the request through (fail open)");
                Verdict::Allow(req, None)
            }
            None => {
                let backend = self.shared.backend.clone();
                let key = key.as_str().to_owned();
                let hit: HitFuture = Box::pin(async move {
                    let result = backend.hit(&key, now_ms, window, max).await;
                    match &result {
                        Err(error) => {
                            tracing::warn!(client = key.as_str(), %error, "rate-limit backend failed; letting the request through (fail open)")
                        }
                        Ok(d) if !d.allowed => {
                            tracing::debug!(client = key.as_str(), "rate limited")
                        }
                        Ok(_) => {}
                    }
                    result
                });
                Verdict::Pending(RateLimitWait::new(hit, req))
            }
        }
    }
}

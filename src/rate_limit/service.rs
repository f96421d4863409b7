use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::client_ip::{ClientIp, IpKey, peer_ip, resolve};
use super::future::{HitFuture, ResponseFuture};
use super::layer::Shared;
use super::{missing_peer_response, too_many_requests};
use crate::layer::ResponseBody;

/// The service made by [`RateLimitLayer`](crate::RateLimitLayer).
pub struct RateLimitService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> RateLimitService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone> Clone for RateLimitService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .field("backend", &self.shared.backend)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.shared.config;
        if config.is_exempt(req.uri().path()) {
            // Health probes and the like: not counted, never refused. The client address is
            // still resolved for the handler when there is one.
            if let Some(peer) = peer_ip(req.extensions()) {
                let client = resolve(peer, req.headers(), &config.trusted_proxies);
                req.extensions_mut().insert(ClientIp(client));
            }
            return ResponseFuture::inner(self.inner.call(req), None);
        }
        let Some(peer) = peer_ip(req.extensions()) else {
            tracing::error!(
                "RateLimitLayer: the request carries no peer address; serve axum with `into_make_service_with_connect_info::<SocketAddr>()`, or insert `tower_jwt_session::PeerAddr` into each request"
            );
            return ResponseFuture::rejected(missing_peer_response());
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
            Some(Ok(decision)) if decision.allowed => {
                ResponseFuture::inner(self.inner.call(req), Some(decision))
            }
            Some(Ok(decision)) => {
                tracing::debug!(client = key.as_str(), "rate limited");
                ResponseFuture::rejected(too_many_requests(&decision))
            }
            Some(Err(error)) => {
                tracing::warn!(client = key.as_str(), %error, "rate-limit backend failed; letting the request through (fail open)");
                ResponseFuture::inner(self.inner.call(req), None)
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
                // The inner service was made ready by `poll_ready`; the future takes that one
                // and leaves a fresh clone here.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(hit, ready, req)
            }
        }
    }
}

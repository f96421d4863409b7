//! The wait of [`RateLimitCheck`](super::RateLimitCheck) for a backend that answers
//! asynchronously (Redis).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};

use crate::guard::Stamp;
use crate::rate_limit::{BackendError, RateDecision, set_headers, too_many_requests};

/// A backend's answer that has to be waited for. Boxed, but only a remote backend makes one.
pub(crate) type HitFuture =
    Pin<Box<dyn Future<Output = Result<RateDecision, BackendError>> + Send>>;

/// A remote backend's count in flight: lets the request through with the rate-limit headers
/// when it is under the limit (or the backend failed: fail open), answers 429 otherwise.
pub struct RateLimitWait<B> {
    hit: HitFuture,
    request: Option<Request<B>>,
}

impl<B> RateLimitWait<B> {
    pub(super) fn new(hit: HitFuture, request: Request<B>) -> Self {
        Self {
            hit,
            request: Some(request),
        }
    }
}

impl<B> fmt::Debug for RateLimitWait<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitWait")
            .field("done", &self.request.is_none())
            .finish()
    }
}

// Neither field is pinned: the hit is boxed and the request is moved out.
impl<B> Unpin for RateLimitWait<B> {}

impl<B> Future for RateLimitWait<B> {
    type Output = Result<(Request<B>, Option<RateDecision>), Response<Bytes>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = ready!(self.hit.as_mut().poll(cx));
        let request = self.request.take().expect("polled after completion");
        Poll::Ready(match result {
            Ok(decision) if !decision.allowed => Err(too_many_requests(&decision)),
            // Fail open: the error was logged where it happened.
            result => Ok((request, result.ok())),
        })
    }
}

/// The `RateLimit-*` headers on the response to an allowed request.
impl Stamp for RateDecision {
    #[inline]
    fn stamp(self, headers: &mut HeaderMap) {
        set_headers(headers, &self);
    }
}

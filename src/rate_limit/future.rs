//! The response future of [`RateLimitService`](super::RateLimitService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::backend::{BackendError, RateDecision};
use super::{set_headers, too_many_requests};
use crate::layer::ResponseBody;

/// A backend's answer that has to be waited for. Boxed, but only a remote backend makes one.
pub(crate) type HitFuture =
    Pin<Box<dyn Future<Output = Result<RateDecision, BackendError>> + Send>>;

pin_project! {
    /// Response future of [`RateLimitService`](super::RateLimitService).
    ///
    /// With an in-process backend an allowed request goes straight to the inner future and a
    /// refused one is answered from here: nothing is boxed.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        kind: Kind<S::Future, S, ReqBody>,
        decision: Option<RateDecision>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, B> {
        Inner { #[pin] future: F },
        Waiting { hit: HitFuture, pending: Option<(S, Request<B>)> },
        Rejected { response: Option<Response<Bytes>> },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    #[inline]
    pub(crate) fn inner(future: S::Future, decision: Option<RateDecision>) -> Self {
        Self {
            kind: Kind::Inner { future },
            decision,
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
            decision: None,
        }
    }

    pub(crate) fn waiting(hit: HitFuture, service: S, request: Request<ReqBody>) -> Self {
        Self {
            kind: Kind::Waiting {
                hit,
                pending: Some((service, request)),
            },
            decision: None,
        }
    }
}

impl<S, ReqBody> std::fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Waiting { .. } => "Waiting",
            Kind::Rejected { .. } => "Rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("decision", &self.decision)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.kind.as_mut().project() {
                KindProj::Inner { future } => {
                    let mut response = ready!(future.poll(cx))?.map(ResponseBody::inner);
                    if let Some(decision) = this.decision {
                        set_headers(response.headers_mut(), decision);
                    }
                    return Poll::Ready(Ok(response));
                }
                KindProj::Waiting { hit, pending } => {
                    let result = ready!(hit.as_mut().poll(cx));
                    let (mut service, request) = pending.take().expect("polled after completion");
                    match result {
                        Ok(decision) if !decision.allowed => {
                            this.kind.set(Kind::Rejected {
                                response: Some(too_many_requests(&decision)),
                            });
                        }
                        // Fail open: the error was logged where it happened.
                        result => {
                            *this.decision = result.ok();
                            let future = service.call(request);
                            this.kind.set(Kind::Inner { future });
                        }
                    }
                }
                KindProj::Rejected { response } => {
                    let response = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::full)));
                }
            }
        }
    }
}

//! The response future of [`Guarded`](super::Guarded).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{Check, ResponseBody, Stamp};

pin_project! {
    /// Response future of [`Guarded`](super::Guarded): the inner future (a check that answered
    /// at once costs nothing more), the check's wait, or the refusal.
    pub struct ResponseFuture<S, ReqBody, C>
    where
        S: Service<Request<ReqBody>>,
        C: Check<ReqBody>,
    {
        #[pin]
        kind: Kind<S::Future, C::Future, S, C::Stamp>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, W, S, T> {
        Inner { #[pin] future: F, stamp: Option<T> },
        Pending { #[pin] wait: W, service: Option<S> },
        Rejected { response: Option<Response<Bytes>> },
    }
}

impl<S, ReqBody, C> ResponseFuture<S, ReqBody, C>
where
    S: Service<Request<ReqBody>>,
    C: Check<ReqBody>,
{
    #[inline]
    pub(super) fn inner(future: S::Future, stamp: C::Stamp) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                stamp: Some(stamp),
            },
        }
    }

    pub(super) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }

    pub(super) fn pending(wait: C::Future, service: S) -> Self {
        Self {
            kind: Kind::Pending {
                wait,
                service: Some(service),
            },
        }
    }
}

impl<S, ReqBody, C> fmt::Debug for ResponseFuture<S, ReqBody, C>
where
    S: Service<Request<ReqBody>>,
    C: Check<ReqBody>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Pending { .. } => "Pending",
            Kind::Rejected { .. } => "Rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, ReqBody, C, ResBody> Future for ResponseFuture<S, ReqBody, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: Check<ReqBody>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.kind.as_mut().project() {
                KindProj::Inner { future, stamp } => {
                    let mut response = ready!(future.poll(cx))?.map(ResponseBody::inner);
                    if let Some(stamp) = stamp.take() {
                        stamp.stamp(response.headers_mut());
                    }
                    return Poll::Ready(Ok(response));
                }
                KindProj::Pending { wait, service } => {
                    let verdict = ready!(wait.poll(cx));
                    let mut service = service.take().expect("polled after completion");
                    match verdict {
                        Ok((request, stamp)) => {
                            let future = service.call(request);
                            this.kind.set(Kind::Inner {
                                future,
                                stamp: Some(stamp),
                            });
                        }
                        Err(response) => this.kind.set(Kind::Rejected {
                            response: Some(response),
                        }),
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

//! The response future of [`SessionService`](crate::layer::SessionService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::ResponseBody;
use super::responder::ErrorResponder;
use super::service::refusal;
use super::{X_TOKEN_EXPIRES_IN, X_TOKEN_REFRESH};
use crate::error::AuthError;
use crate::revocation::{RevocationCheck, SessionStatus};
use crate::session::Session;

pin_project! {
    /// Response future of [`SessionService`](crate::layer::SessionService).
    ///
    /// A request with a valid token whose revocation status is known at once goes straight to
    /// the inner future: nothing is boxed.
    pub struct ResponseFuture<S, ReqBody, R, E>
    where
        S: Service<Request<ReqBody>>,
        R: RevocationCheck,
    {
        #[pin]
        kind: Kind<S::Future, R::Future, S, ReqBody, E>,
        hint: Option<u64>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C, S, B, E> {
        Inner { #[pin] future: F },
        Checking { #[pin] check: C, pending: Option<Pending<S, B, E>> },
        Rejected { response: Option<Response<Bytes>> },
    }
}

struct Pending<S, B, E> {
    service: S,
    request: Request<B>,
    session: Session,
    responder: E,
    metrics: crate::telemetry::Metrics,
}

impl<S, ReqBody, R, E> ResponseFuture<S, ReqBody, R, E>
where
    S: Service<Request<ReqBody>>,
    R: RevocationCheck,
    E: ErrorResponder,
{
    #[inline]
    pub(crate) fn inner(future: S::Future, hint: Option<u64>) -> Self {
        Self {
            kind: Kind::Inner { future },
            hint,
        }
    }

    pub(crate) fn rejected(responder: &E, error: AuthError) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(reject(responder, error)),
            },
            hint: None,
        }
    }

    pub(crate) fn checking(
        check: R::Future,
        service: S,
        request: Request<ReqBody>,
        session: Session,
        responder: E,
        metrics: crate::telemetry::Metrics,
        hint: Option<u64>,
    ) -> Self {
        Self {
            kind: Kind::Checking {
                check,
                pending: Some(Pending {
                    service,
                    request,
                    session,
                    responder,
                    metrics,
                }),
            },
            hint,
        }
    }
}

fn reject<E: ErrorResponder>(responder: &E, error: AuthError) -> Response<Bytes> {
    let mut response = responder.respond(error);
    response.extensions_mut().insert(error);
    response
}

impl<S, ReqBody, R, E, ResBody> Future for ResponseFuture<S, ReqBody, R, E>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RevocationCheck,
    E: ErrorResponder,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.kind.as_mut().project() {
                KindProj::Inner { future } => {
                    let mut response = ready!(future.poll(cx))?.map(ResponseBody::inner);
                    if let Some(left) = *this.hint {
                        let headers = response.headers_mut();
                        headers.insert(X_TOKEN_REFRESH, HeaderValue::from_static("true"));
                        headers.insert(X_TOKEN_EXPIRES_IN, HeaderValue::from(left));
                    }
                    return Poll::Ready(Ok(response));
                }
                KindProj::Checking { check, pending } => {
                    let status = ready!(check.poll(cx));
                    let Pending {
                        mut service,
                        mut request,
                        session,
                        responder,
                        metrics,
                    } = pending.take().expect("polled after completion");
                    if status == SessionStatus::Active {
                        metrics.validation(Ok(()));
                        request.extensions_mut().insert(session);
                        let future = service.call(request);
                        this.kind.set(Kind::Inner { future });
                    } else {
                        let error = refusal(status);
                        metrics.validation(Err(error));
                        tracing::debug!(user_id = %crate::telemetry::Escaped::new(session.user_id()), session_id = %session.session_id(), %error, "request refused");
                        let response = reject(&responder, error);
                        this.kind.set(Kind::Rejected {
                            response: Some(response),
                        });
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

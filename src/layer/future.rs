//! The wait of [`SessionCheck`](super::SessionCheck) for a revocation check that has to ask
//! the store.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;

use super::responder::ErrorResponder;
use super::service::{RefreshHint, refuse};
use crate::revocation::{RevocationCheck, SessionStatus};
use crate::session::Session;

pin_project! {
    /// A revocation check in flight: lets the request through with its session when the
    /// check answers active, refuses it otherwise.
    pub struct RevocationWait<B, R, E>
    where
        R: RevocationCheck,
    {
        #[pin]
        check: R::Future,
        pending: Option<Pending<B, E>>,
    }
}

struct Pending<B, E> {
    request: Request<B>,
    session: Session,
    responder: E,
    metrics: crate::telemetry::Metrics,
    hint: Option<RefreshHint>,
}

impl<B, R: RevocationCheck, E> RevocationWait<B, R, E> {
    pub(super) fn new(
        check: R::Future,
        request: Request<B>,
        session: Session,
        responder: E,
        metrics: crate::telemetry::Metrics,
        hint: Option<RefreshHint>,
    ) -> Self {
        Self {
            check,
            pending: Some(Pending {
                request,
                session,
                responder,
                metrics,
                hint,
            }),
        }
    }
}

impl<B, R: RevocationCheck, E> fmt::Debug for RevocationWait<B, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationWait")
            .field("done", &self.pending.is_none())
            .finish()
    }
}

impl<B, R, E> Future for RevocationWait<B, R, E>
where
    R: RevocationCheck,
    E: ErrorResponder,
{
    type Output = Result<(Request<B>, Option<RefreshHint>), Response<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let status = ready!(this.check.poll(cx));
        let Pending {
            mut request,
            session,
            responder,
            metrics,
            hint,
        } = this.pending.take().expect("polled after completion");
        if status == SessionStatus::Active {
            metrics.validation(Ok(()));
            request.extensions_mut().insert(session);
            Poll::Ready(Ok((request, hint)))
        } else {
            Poll::Ready(Err(refuse(&responder, &metrics, &session, status)))
        }
    }
}

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
use super::service::{RefreshHint, SessionStamp, refuse};
use crate::revocation::{RevocationCheck, SessionStatus};
use crate::session::Session;

pin_project! {
    /// A revocation check in flight, or a DPoP proof check and then the revocation check: lets
    /// the request through with its session when both hold, refuses it otherwise.
    pub struct RevocationWait<B, R, E>
    where
        R: RevocationCheck,
    {
        #[pin]
        state: State<B, R, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B, R, E>
    where
        R: RevocationCheck,
    {
        Store {
            #[pin]
            check: R::Future,
            pending: Option<Pending<B, E>>,
        },
        // A bound token's request: the proof's replay check, then the revocation check.
        Proof {
            wait: Pin<Box<dyn Future<Output = Verdict<B>> + Send>>,
        },
    }
}

/// What a wait answers: the request and its stamp, or the refusal.
type Verdict<B> = Result<(Request<B>, SessionStamp), Response<Bytes>>;

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
            state: State::Store {
                check,
                pending: Some(Pending {
                    request,
                    session,
                    responder,
                    metrics,
                    hint,
                }),
            },
        }
    }

    /// The wait of a bound token's request: `wait` checks the proof and then the session.
    pub(super) fn proof(wait: Pin<Box<dyn Future<Output = Verdict<B>> + Send>>) -> Self {
        Self {
            state: State::Proof { wait },
        }
    }
}

impl<B, R: RevocationCheck, E> fmt::Debug for RevocationWait<B, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done = match &self.state {
            State::Store { pending, .. } => pending.is_none(),
            State::Proof { .. } => false,
        };
        f.debug_struct("RevocationWait")
            .field("done", &done)
            .finish()
    }
}

impl<B, R, E> Future for RevocationWait<B, R, E>
where
    R: RevocationCheck,
    E: ErrorResponder,
{
    type Output = Result<(Request<B>, SessionStamp), Response<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (check, pending) = match self.project().state.project() {
            StateProj::Store { check, pending } => (check, pending),
            StateProj::Proof { wait } => return wait.as_mut().poll(cx),
        };
        let status = ready!(check.poll(cx));
        let Pending {
            mut request,
            session,
            responder,
            metrics,
            hint,
        } = pending.take().expect("polled after completion");
        if status == SessionStatus::Active {
            metrics.validation(Ok(()));
            request.extensions_mut().insert(session);
            Poll::Ready(Ok((
                request,
                SessionStamp {
                    hint,
                    dpop_nonce: None,
                },
            )))
        } else {
            Poll::Ready(Err(refuse(&responder, &metrics, &session, status)))
        }
    }
}

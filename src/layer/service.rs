use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::layer::Shared;
use super::responder::ErrorResponder;
use crate::error::AuthError;
use crate::revocation::{Checked, RevocationCheck, SessionStatus};
use crate::session::Session;

/// The service made by [`SessionLayer`](crate::SessionLayer).
pub struct SessionService<S, R, E> {
    inner: S,
    shared: Arc<Shared<R>>,
    responder: E,
}

impl<S, R, E> SessionService<S, R, E> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<R>>, responder: E) -> Self {
        Self {
            inner,
            shared,
            responder,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, R, E: Clone> Clone for SessionService<S, R, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            responder: self.responder.clone(),
        }
    }
}

impl<S: fmt::Debug, R, E: fmt::Debug> fmt::Debug for SessionService<S, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .field("codec", &self.shared.codec)
            .field("responder", &self.responder)
            .finish()
    }
}

impl<S, R, E, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, R, E>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: RevocationCheck,
    E: ErrorResponder,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R, E>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let codec = &self.shared.codec;
        let now = codec.now_secs();
        let metrics = &self.shared.metrics;
        let session = match authenticate(&self.shared, &req, now) {
            Ok(session) => session,
            Err(error) => {
                metrics.validation(Err(error));
                tracing::debug!(%error, "request refused");
                return ResponseFuture::rejected(&self.responder, error);
            }
        };
        let hint = refresh_hint(session.expires_at(), now, codec.refresh_threshold_secs());
        match self.shared.revocation.check(&session) {
            Checked::Ready(SessionStatus::Active) => {
                metrics.validation(Ok(()));
                tracing::trace!(user_id = %crate::telemetry::Escaped::new(session.user_id()), session_id = %session.session_id(), "request allowed");
                req.extensions_mut().insert(session);
                ResponseFuture::inner(self.inner.call(req), hint)
            }
            Checked::Ready(status) => {
                let error = refusal(status);
                metrics.validation(Err(error));
                tracing::debug!(user_id = %crate::telemetry::Escaped::new(session.user_id()), session_id = %session.session_id(), %error, "request refused");
                ResponseFuture::rejected(&self.responder, error)
            }
            Checked::Pending(check) => {
                // The inner service was made ready by `poll_ready`; the future takes that one
                // and leaves a fresh clone here (tower-http's async authorization does the same).
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::checking(
                    check,
                    ready,
                    req,
                    session,
                    self.responder.clone(),
                    metrics.clone(),
                    hint,
                )
            }
        }
    }
}

#[inline]
fn authenticate<R, B>(
    shared: &Shared<R>,
    req: &Request<B>,
    now: u64,
) -> Result<Session, AuthError> {
    let token = super::bearer_token(req.headers())?;
    let decoded = shared.codec.decode(token)?;
    shared.codec.check_time(&decoded, now)?;
    Ok(decoded.session)
}

/// Seconds left when a refresh should be advised.
#[inline]
fn refresh_hint(expires_at: u64, now: u64, threshold: u64) -> Option<u64> {
    let left = expires_at.saturating_sub(now);
    (left <= threshold).then_some(left)
}

pub(crate) fn refusal(status: SessionStatus) -> AuthError {
    match status {
        SessionStatus::Unavailable => AuthError::Unavailable,
        _ => AuthError::Revoked,
    }
}

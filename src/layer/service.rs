//! The session layer's [`Check`]: verify the bearer token, ask the revocation check.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderMap;
use http::{HeaderValue, Request};

use super::future::RevocationWait;
use super::layer::Shared;
use super::responder::ErrorResponder;
use super::{X_TOKEN_EXPIRES_IN, X_TOKEN_REFRESH};
use crate::error::AuthError;
use crate::guard::{Check, Guarded, Stamp, Verdict};
use crate::revocation::{Checked, RevocationCheck, SessionStatus};
use crate::session::Session;
use crate::telemetry::Escaped;

/// The service made by [`SessionLayer`](crate::SessionLayer): the inner service behind a
/// [`SessionCheck`].
pub type SessionService<S, R, E> = Guarded<S, SessionCheck<R, E>>;

/// The check of [`SessionLayer`](crate::SessionLayer): see the [module docs](crate::layer).
pub struct SessionCheck<R, E> {
    shared: Arc<Shared<R>>,
    responder: E,
}

impl<R, E> SessionCheck<R, E> {
    pub(crate) fn new(shared: Arc<Shared<R>>, responder: E) -> Self {
        Self { shared, responder }
    }
}

impl<R, E: Clone> Clone for SessionCheck<R, E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            responder: self.responder.clone(),
        }
    }
}

impl<R, E: fmt::Debug> fmt::Debug for SessionCheck<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCheck")
            .field("codec", &self.shared.codec)
            .field("responder", &self.responder)
            .finish()
    }
}

/// `X-Token-Refresh: true` and `X-Token-Expires-In: <seconds>`, on the response to a request
/// whose token has no more than the refresh threshold left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshHint {
    /// Whole seconds the access token has left.
    pub left_secs: u64,
}

impl Stamp for RefreshHint {
    #[inline]
    fn stamp(self, headers: &mut HeaderMap) {
        headers.insert(X_TOKEN_REFRESH, HeaderValue::from_static("true"));
        headers.insert(X_TOKEN_EXPIRES_IN, HeaderValue::from(self.left_secs));
    }
}

impl<B, R, E> Check<B> for SessionCheck<R, E>
where
    R: RevocationCheck,
    E: ErrorResponder,
{
    type Stamp = Option<RefreshHint>;
    type Future = RevocationWait<B, R, E>;

    #[inline]
    fn check(&self, mut req: Request<B>) -> Verdict<B, Self::Stamp, Self::Future> {
        let codec = &self.shared.codec;
        let now = codec.now_ms();
        let metrics = &self.shared.metrics;
        let session = match authenticate(&self.shared, &req, now) {
            Ok(session) => session,
            Err(error) => {
                metrics.validation(Err(error));
                tracing::debug!(%error, "request refused");
                return Verdict::Refuse(reject(&self.responder, error));
            }
        };
        let left = codec.time_left(&session, now);
        let hint = left.refresh_advised().then(|| RefreshHint {
            left_secs: left.whole_secs(),
        });
        match self.shared.revocation.check(&session) {
            Checked::Ready(SessionStatus::Active) => {
                metrics.validation(Ok(()));
                tracing::trace!(user_id = %Escaped::new(session.user_id()), session_id = %session.session_id(), "request allowed");
                req.extensions_mut().insert(session);
                Verdict::Allow(req, hint)
            }
            Checked::Ready(status) => {
                Verdict::Refuse(refuse(&self.responder, metrics, &session, status))
            }
            Checked::Pending(check) => Verdict::Pending(RevocationWait::new(
                check,
                req,
                session,
                self.responder.clone(),
                metrics.clone(),
                hint,
            )),
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
    shared.codec.verify_cached(token, now)
}

/// The refusal of a verified session whose status is not active: counted, logged, answered.
pub(super) fn refuse<E: ErrorResponder>(
    responder: &E,
    metrics: &crate::telemetry::Metrics,
    session: &Session,
    status: SessionStatus,
) -> http::Response<bytes::Bytes> {
    let error = status.refusal();
    metrics.validation(Err(error));
    tracing::debug!(user_id = %Escaped::new(session.user_id()), session_id = %session.session_id(), %error, "request refused");
    reject(responder, error)
}

/// The responder's answer, with the error in its extensions.
fn reject<E: ErrorResponder>(responder: &E, error: AuthError) -> http::Response<bytes::Bytes> {
    let mut response = responder.respond(error);
    response.extensions_mut().insert(error);
    response
}

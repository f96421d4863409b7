//! The session layer's [`Check`]: verify the bearer token, ask the revocation check.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderMap;
use http::{HeaderValue, Request};

use super::future::RevocationWait;
use super::layer::Shared;
use super::proof::{ProofWait, binding, with_nonce};
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

/// What the session layer adds to the response of a request it let through: the
/// [`RefreshHint`], and for a DPoP proof made with the previous server nonce, the current one
/// (`DPoP-Nonce`, RFC 9449 §8.2), so the client's next proof needs no retry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStamp {
    /// The refresh hint, when the token has no more than the refresh threshold left.
    pub hint: Option<RefreshHint>,
    /// The server nonce the client should use from now on.
    pub dpop_nonce: Option<HeaderValue>,
}

impl Stamp for SessionStamp {
    #[inline]
    fn stamp(self, headers: &mut HeaderMap) {
        self.hint.stamp(headers);
        if let Some(nonce) = self.dpop_nonce {
            headers.insert(crate::token::dpop::DPOP_NONCE, nonce);
        }
    }
}

impl<B, R, E> Check<B> for SessionCheck<R, E>
where
    B: Send + 'static,
    R: RevocationCheck,
    E: ErrorResponder,
{
    type Stamp = SessionStamp;
    type Future = RevocationWait<B, R, E>;

    #[inline]
    fn check(&self, mut req: Request<B>) -> Verdict<B, Self::Stamp, Self::Future> {
        let codec = &self.shared.codec;
        let now = codec.now_ms();
        let metrics = &self.shared.metrics;
        let (session, proof) = match authenticate(&self.shared, &req, now) {
            Ok(verified) => verified,
            Err(error) => {
                metrics.validation(Err(error));
                tracing::debug!(%error, "request refused");
                return Verdict::Refuse(self.reject(error));
            }
        };
        let left = codec.time_left(&session, now);
        let hint = left.refresh_advised().then(|| RefreshHint {
            left_secs: left.whole_secs(),
        });
        if let Some(proof) = proof {
            return Verdict::Pending(RevocationWait::proof(Box::pin(
                self.clone().proved(proof, req, session, hint),
            )));
        }
        match self.shared.revocation.check(&session) {
            Checked::Ready(SessionStatus::Active) => {
                metrics.validation(Ok(()));
                tracing::trace!(user_id = %Escaped::new(session.user_id()), session_id = %session.session_id(), "request allowed");
                req.extensions_mut().insert(session);
                Verdict::Allow(
                    req,
                    SessionStamp {
                        hint,
                        dpop_nonce: None,
                    },
                )
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

impl<R: RevocationCheck, E: ErrorResponder> SessionCheck<R, E> {
    /// The responder's refusal, with the server nonce of a refused DPoP proof.
    fn reject(&self, error: AuthError) -> http::Response<bytes::Bytes> {
        with_nonce(
            reject(&self.responder, error),
            self.shared.dpop.as_ref(),
            error,
        )
    }

    /// A bound token's request, once its proof is checked: the proof's replay check, then the
    /// revocation check.
    async fn proved<B>(
        self,
        proof: ProofWait,
        mut req: Request<B>,
        session: Session,
        hint: Option<RefreshHint>,
    ) -> Result<(Request<B>, SessionStamp), http::Response<bytes::Bytes>> {
        let metrics = &self.shared.metrics;
        let proof = match proof.await {
            Ok(proof) => proof,
            Err(error) => {
                let error = AuthError::DpopProof(error);
                metrics.validation(Err(error));
                tracing::debug!(user_id = %Escaped::new(session.user_id()), session_id = %session.session_id(), %error, "request refused");
                return Err(self.reject(error));
            }
        };
        let status = match self.shared.revocation.check(&session) {
            Checked::Ready(status) => status,
            Checked::Pending(check) => check.await,
        };
        if status != SessionStatus::Active {
            return Err(refuse(&self.responder, metrics, &session, status));
        }
        metrics.validation(Ok(()));
        req.extensions_mut().insert(session);
        let dpop_nonce = proof
            .wants_new_nonce()
            .then(|| self.shared.dpop.as_ref()?.verifier.current_nonce())
            .flatten();
        Ok((req, SessionStamp { hint, dpop_nonce }))
    }
}

/// The request's session, and the check of its DPoP proof when its token is bound to a key.
#[inline]
fn authenticate<R, B>(
    shared: &Shared<R>,
    req: &Request<B>,
    now: u64,
) -> Result<(Session, Option<ProofWait>), AuthError> {
    let credentials = super::access_token(req.headers())?;
    let session = shared.codec.verify_cached(credentials.1, now)?;
    let proof = binding(
        shared.dpop.as_ref(),
        credentials,
        &session,
        req.method(),
        (req.uri(), req.extensions()),
        req.headers(),
    )?;
    Ok((session, proof))
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

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::responder::{ErrorResponder, JsonResponder};
use super::service::{SessionCheck, SessionService};
use crate::guard::Guarded;
use http::HeaderMap;

use crate::error::AuthError;
use crate::manager::RevocationCache;
use crate::manager::SessionManager;
use crate::revocation::{Checked, NoRevocation, RevocationCheck, SessionStatus};
use crate::session::Session;
use crate::token::TokenCodec;

pub(crate) struct Shared<R> {
    pub(crate) codec: TokenCodec,
    pub(crate) revocation: R,
    pub(crate) metrics: crate::telemetry::Metrics,
    /// The check of DPoP proofs, for tokens bound to a key.
    pub(crate) dpop: Option<crate::manager::Dpop>,
}

/// Protects the services it wraps: see the [module docs](crate::layer).
///
/// Cheap to clone; every service it makes shares one codec and one revocation check.
#[must_use]
pub struct SessionLayer<R = NoRevocation, E = JsonResponder> {
    shared: Arc<Shared<R>>,
    responder: E,
}

impl<R, E: Clone> Clone for SessionLayer<R, E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            responder: self.responder.clone(),
        }
    }
}

impl<R: fmt::Debug, E: fmt::Debug> fmt::Debug for SessionLayer<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("codec", &self.shared.codec)
            .field("revocation", &self.shared.revocation)
            .field("responder", &self.responder)
            .finish()
    }
}

impl SessionLayer {
    /// A layer that verifies tokens with `codec` and checks no revocation state. Use
    /// [`SessionLayer::from_manager`] for one that also refuses revoked sessions.
    pub fn new(codec: TokenCodec) -> Self {
        Self::with_revocation(codec, NoRevocation)
    }
}

impl SessionLayer<RevocationCache> {
    /// The layer that protects routes with `manager`'s tokens and revocation state: a revoked
    /// session is refused on the next request.
    ///
    /// ```
    /// use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager};
    ///
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// let layer = SessionLayer::from_manager(&manager);
    /// # let _ = layer;
    /// # Ok::<(), tower_jwt_session::config::ConfigError>(())
    /// ```
    pub fn from_manager(manager: &SessionManager) -> Self {
        Self::with_parts(
            manager.codec().clone(),
            manager.revocation_cache().clone(),
            manager.dpop().cloned(),
        )
    }
}

impl<R: RevocationCheck> SessionLayer<R> {
    /// A layer that verifies tokens with `codec` and asks `revocation` about every session.
    pub fn with_revocation(codec: TokenCodec, revocation: R) -> Self {
        Self::with_parts(codec, revocation, None)
    }

    fn with_parts(codec: TokenCodec, revocation: R, dpop: Option<crate::manager::Dpop>) -> Self {
        let responder = JsonResponder::from_realm(codec.realm().clone());
        Self {
            shared: Arc::new(Shared {
                codec,
                revocation,
                metrics: crate::telemetry::Metrics::register(),
                dpop,
            }),
            responder,
        }
    }
}

impl<R, E> SessionLayer<R, E> {
    /// Replaces the refusal response. The default is [`JsonResponder`].
    pub fn error_responder<E2: ErrorResponder>(self, responder: E2) -> SessionLayer<R, E2> {
        SessionLayer {
            shared: self.shared,
            responder,
        }
    }

    /// The codec this layer verifies with.
    pub fn codec(&self) -> &TokenCodec {
        &self.shared.codec
    }
}

impl<R: RevocationCheck, E> SessionLayer<R, E> {
    /// Verifies the access token of `request` as the layer does, DPoP proof and revocation
    /// included, for code that is not behind the layer (a WebSocket upgrade, a custom route).
    ///
    /// # Errors
    /// The [`AuthError`] the layer would refuse the request with.
    pub fn authenticate<'a, B>(
        &'a self,
        request: &'a http::Request<B>,
    ) -> impl std::future::Future<Output = Result<Session, AuthError>> + Send + 'a {
        // Borrows the method, URI and headers only: the body need not be `Sync`.
        authenticate(
            &self.shared,
            request.method(),
            (request.uri(), request.extensions()),
            request.headers(),
        )
    }

    /// As [`authenticate`](Self::authenticate), from the parts of a request.
    pub(crate) async fn authenticate_parts(
        &self,
        method: &http::Method,
        target: (&http::Uri, &http::Extensions),
        headers: &HeaderMap,
    ) -> Result<Session, AuthError> {
        authenticate(&self.shared, method, target, headers).await
    }

    /// The refusal of `error` as the default responder makes it, with the server nonce of a
    /// refused DPoP proof.
    pub(crate) fn refusal(&self, error: AuthError) -> http::Response<bytes::Bytes> {
        let response = crate::error::auth_error_response(self.shared.codec.realm(), error);
        super::proof::with_nonce(response, self.shared.dpop.as_ref(), error)
    }
}

/// The layer's verdict on a request's credentials: token, DPoP proof, revocation.
async fn authenticate<R: RevocationCheck>(
    shared: &Shared<R>,
    method: &http::Method,
    target: (&http::Uri, &http::Extensions),
    headers: &HeaderMap,
) -> Result<Session, AuthError> {
    let credentials = super::access_token(headers)?;
    let codec = &shared.codec;
    let session = codec.verify_cached(credentials.1, codec.now_ms())?;
    let proof = super::proof::binding(
        shared.dpop.as_ref(),
        credentials,
        &session,
        method,
        target,
        headers,
    )?;
    if let Some(proof) = proof {
        proof.await.map_err(AuthError::DpopProof)?;
    }
    let status = match shared.revocation.check(&session) {
        Checked::Ready(status) => status,
        Checked::Pending(check) => check.await,
    };
    match status {
        SessionStatus::Active => Ok(session),
        status => Err(status.refusal()),
    }
}

impl<S, R, E: Clone> Layer<S> for SessionLayer<R, E> {
    type Service = SessionService<S, R, E>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded::new(
            inner,
            SessionCheck::new(self.shared.clone(), self.responder.clone()),
        )
    }
}

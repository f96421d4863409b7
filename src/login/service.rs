//! [`LoginService`] itself.

// Early answers travel as `Err(Response)`: login does a password check and store I/O, so the
// size of that variant is of no consequence.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use super::{CredentialCheck, Credentials, LoginCredentials};
use crate::deadline::RequestStart;
use crate::layer::SessionLayer;
use crate::manager::{RevocationCache, SessionManager};
use crate::rate_limit::AttemptTracker;

mod flow;
mod steps;

/// Which of the service's two routes a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Login,
    Reauthenticate,
}

/// The login route of [the protocol](crate::routes#routes) around the app's [`CredentialCheck`]: see the
/// [module docs](super).
///
/// A `tower::Service` for any request body; cheap to clone (clones share the check and the
/// tracker). Under axum, mount it with `Router::route_service(path, service)`; nested with
/// `nest_service`, where axum strips the path, it answers at `/` as well.
#[must_use]
pub struct LoginService<K, C = Credentials> {
    manager: SessionManager,
    check: Arc<K>,
    path: Arc<str>,
    reauthenticate_path: Arc<str>,
    /// Verifies the bearer token of a re-authentication as the session layer would.
    layer: SessionLayer<RevocationCache>,
    attempts: AttemptTracker,
    rate_limited: bool,
    credentials: PhantomData<fn(C)>,
}

impl<K, C> Clone for LoginService<K, C> {
    fn clone(&self) -> Self {
        Self {
            manager: self.manager.clone(),
            check: self.check.clone(),
            path: self.path.clone(),
            reauthenticate_path: self.reauthenticate_path.clone(),
            layer: self.layer.clone(),
            attempts: self.attempts.clone(),
            rate_limited: self.rate_limited,
            credentials: PhantomData,
        }
    }
}

impl<K, C> fmt::Debug for LoginService<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginService")
            .field("path", &self.path)
            .field("reauthenticate_path", &self.reauthenticate_path)
            .field("attempts", &self.attempts)
            .field("rate_limited", &self.rate_limited)
            .finish_non_exhaustive()
    }
}

/// The response future of [`LoginService`]. Boxed: a login verifies a password and writes to
/// the session store, which costs far more than the allocation.
pub type LoginFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl<K: CredentialCheck<C>, C: LoginCredentials> LoginService<K, C> {
    /// The login route of `manager` at `/api/auth/login`, checking credentials with `check`,
    /// protected as the [module docs](super) say: every request counts against the per-client
    /// rate limit, and every attempt against the lock-out, both kept where the manager keeps
    /// its sessions ([`SessionManager::limits`]).
    pub fn new(manager: &SessionManager, check: K) -> Self {
        Self {
            manager: manager.clone(),
            check: Arc::new(check),
            path: "/api/auth/login".into(),
            reauthenticate_path: "/api/auth/reauthenticate".into(),
            layer: SessionLayer::from_manager(manager),
            attempts: manager.limits().attempts().clone(),
            rate_limited: true,
            credentials: PhantomData,
        }
    }

    /// Does not count requests against the per-client rate limit: for an app that limits
    /// them another way (a proxy, a gateway). Requests behind a
    /// [`ClientRateLimitLayer`](crate::layer::ClientRateLimitLayer) are not counted twice
    /// anyway. The lock-out stays on.
    pub fn without_rate_limit(mut self) -> Self {
        self.rate_limited = false;
        self
    }

    /// Serves at `path`. The default is `/api/auth/login`.
    pub fn path(mut self, path: &str) -> Self {
        self.path = trimmed(path);
        self
    }

    /// Serves the re-authentication (step-up, see the [module docs](super#re-authentication-step-up))
    /// at `path`. The default is `/api/auth/reauthenticate`. Under axum, mount the same service
    /// at both paths:
    ///
    /// ```
    /// use axum::Router;
    /// use tower_jwt_session::login::{Authenticated, CheckError, Credentials, LoginService};
    /// use tower_jwt_session::{SessionConfig, SessionManager};
    ///
    /// async fn check(c: Credentials) -> Result<Option<Authenticated>, CheckError> {
    ///     let ok = c.username == "alice" && c.password == "alice-password";
    ///     Ok(ok.then(|| Authenticated::new("alice", ["user"]).amr(["pwd"])))
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
    /// let login = LoginService::new(&manager, check).reauthenticate_path("/auth/confirm");
    /// let app: Router = Router::new()
    ///     .route_service("/api/auth/login", login.clone())
    ///     .route_service("/auth/confirm", login);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reauthenticate_path(mut self, path: &str) -> Self {
        self.reauthenticate_path = trimmed(path);
        self
    }

    /// Counts failed logins in `tracker` instead of the manager's. The default is the
    /// manager's tracker ([`SessionManager::limits`]), shared with its
    /// [`TokenRoutes`](crate::routes::TokenRoutes) and kept where its sessions are.
    pub fn attempt_tracker(mut self, tracker: AttemptTracker) -> Self {
        self.attempts = tracker;
        self
    }
}

impl<K, C, B> Service<Request<B>> for LoginService<K, C>
where
    K: CredentialCheck<C>,
    C: LoginCredentials,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = LoginFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        // One deadline for all the store I/O of this login (attempts, the store probe, the
        // session), from when the request reached the crate: an outage answers 503 within one
        // store timeout, not the sum of each backend's.
        let at = RequestStart::of(req.extensions()) + self.manager.budget();
        Box::pin(async move {
            let res = crate::deadline::within(at, this.handle(req)).await;
            Ok(res.map(Full::new))
        })
    }
}

/// A path without its trailing slashes (`/` for the root).
fn trimmed(path: &str) -> Arc<str> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }.into()
}

impl<K: CredentialCheck<C>, C: LoginCredentials> LoginService<K, C> {}

//! The machinery shared by the crate's middleware; documented on [`Check`], published in
//! [`layer`](crate::layer).

mod body;
mod future;

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use tower_service::Service;

pub use body::ResponseBody;
pub use future::ResponseFuture;

/// What a [`Check`] answers for a request.
#[derive(Debug)]
pub enum Verdict<B, T, F> {
    /// Let the request through; put the stamp on the inner service's response.
    Allow(Request<B>, T),
    /// Answer with this response; the inner service is not called.
    Refuse(Response<Bytes>),
    /// The answer needs waiting for: the future yields `Ok((request, stamp))` to let the
    /// request through, or `Err(response)` to refuse it.
    Pending(F),
}

/// The machinery shared by the crate's middleware: a [`Check`] that answers each request at
/// once (let through, or refused with a response) or after a future, the service that runs it
/// in front of an inner service ([`Guarded`]), its one [`ResponseFuture`] and its one
/// [`ResponseBody`], in the manner of tower-http's `AsyncRequireAuthorization`.
///
/// The session layer, the rate limiter and the role check are each a [`Check`]: their services
/// are `Guarded<S, TheirCheck>`. A check that answers at once costs nothing more than the inner
/// call: nothing is boxed, and the future is the inner future with an optional [`Stamp`] to
/// put on its response (the refresh hint, the rate-limit headers).
///
/// A refusal is an `Ok` response, never a service error, so the connection stays up.
///
/// ```
/// use std::convert::Infallible;
/// use std::future::Ready;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceExt, service_fn};
/// use tower_jwt_session::layer::{Check, Guarded, Verdict};
///
/// /// Refuses requests without an `x-api-version` header, at once.
/// #[derive(Clone)]
/// struct NeedsVersion;
///
/// impl<B> Check<B> for NeedsVersion {
///     type Stamp = ();
///     type Future = Ready<Result<(Request<B>, ()), Response<Bytes>>>;
///
///     fn check(&self, request: Request<B>) -> Verdict<B, (), Self::Future> {
///         if request.headers().contains_key("x-api-version") {
///             Verdict::Allow(request, ())
///         } else {
///             let mut refusal = Response::new(Bytes::from_static(b"which version?"));
///             *refusal.status_mut() = StatusCode::BAD_REQUEST;
///             Verdict::Refuse(refusal)
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let inner = service_fn(|_req: Request<String>| async {
///     Ok::<_, Infallible>(Response::new(String::from("hello")))
/// });
/// let service = Guarded::new(inner, NeedsVersion);
/// let refused = service.clone().oneshot(Request::new(String::new())).await?;
/// assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
/// let allowed = Request::builder().header("x-api-version", "2").body(String::new())?;
/// assert_eq!(service.oneshot(allowed).await?.status(), StatusCode::OK);
/// # Ok(())
/// # }
/// ```
///
/// Decides, for each request, whether it reaches the inner service: see the
/// docs above.
pub trait Check<B> {
    /// Put on the inner service's response when the request was let through.
    type Stamp: Stamp;
    /// The wait of a check that cannot answer at once.
    type Future: Future<Output = Result<(Request<B>, Self::Stamp), Response<Bytes>>>;

    /// Judges `request`. Answer [`Verdict::Allow`] or [`Verdict::Refuse`] whenever possible.
    fn check(&self, request: Request<B>) -> Verdict<B, Self::Stamp, Self::Future>;
}

/// Something a [`Check`] adds to the response of a request it let through.
pub trait Stamp {
    /// Adds to `headers`.
    fn stamp(self, headers: &mut HeaderMap);
}

impl Stamp for () {
    #[inline]
    fn stamp(self, _headers: &mut HeaderMap) {}
}

impl<T: Stamp> Stamp for Option<T> {
    #[inline]
    fn stamp(self, headers: &mut HeaderMap) {
        if let Some(stamp) = self {
            stamp.stamp(headers);
        }
    }
}

/// A service that runs a [`Check`] in front of `S`: see [`Check`].
#[derive(Clone)]
pub struct Guarded<S, C> {
    inner: S,
    check: C,
}

impl<S, C> Guarded<S, C> {
    /// `inner`, behind `check`.
    pub fn new(inner: S, check: C) -> Self {
        Self { inner, check }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The check.
    pub fn check(&self) -> &C {
        &self.check
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Guarded<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("check", &self.check)
            .finish()
    }
}

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for Guarded<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    C: Check<ReqBody>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match self.check.check(request) {
            Verdict::Allow(request, stamp) => {
                ResponseFuture::inner(self.inner.call(request), stamp)
            }
            Verdict::Refuse(response) => ResponseFuture::rejected(response),
            Verdict::Pending(wait) => {
                // `poll_ready` made `self.inner` ready: the future takes that one and leaves a
                // fresh clone here (tower-http's async authorization does the same).
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::pending(wait, ready)
            }
        }
    }
}

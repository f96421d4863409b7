//! The step-up check (RFC 9470): documented on [`require_recent_auth`].

use std::fmt;
use std::future::Ready;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use tower_layer::Layer;

use crate::clock::{Clock, SharedClock, SystemClock, duration_ms};
use crate::error::{ErrorCode, json_error, sanitize_realm};
use crate::guard::{Check, Guarded, Verdict};
use crate::session::Session;

/// The message of the 500 answered when no session is in the request.
const MISORDERED: &str = "the step-up check found no session: the session layer is missing or runs after the step-up check";

/// What a too old authentication is told.
const TOO_OLD: &str = "a more recent authentication is required";
/// What a too weak authentication is told (RFC 9470 §3's example text, in the crate's case).
const TOO_WEAK: &str = "a different authentication level is required";

/// A layer that lets through only sessions whose user proved who they are recently enough, or
/// strongly enough: see the [`require_recent_auth`] docs.
///
/// Cheap to clone.
#[derive(Clone)]
#[must_use]
pub struct RequireRecentAuthLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    max_age: Option<Duration>,
    /// `None`: no `acr` requirement.
    acr_values: Option<Box<[Box<str>]>>,
    realm: Box<str>,
    clock: SharedClock,
}

impl fmt::Debug for RequireRecentAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireRecentAuthLayer")
            .field("max_age", &self.shared.max_age)
            .field("acr_values", &self.shared.acr_values)
            .field("realm", &self.shared.realm)
            .finish_non_exhaustive()
    }
}

/// [`RequireRecentAuthLayer`]: lets through only sessions whose user authenticated (logged in,
/// or [re-authenticated](crate::login#re-authentication-step-up)) within `max_age`, by the
/// session's `auth_time`. A refresh does not make a session recent; a re-authentication does.
///
/// The layer runs behind [`SessionLayer`](crate::SessionLayer) and reads the verified
/// [`Session`] from the request extensions, as [`require_role`](crate::layer::require_role)
/// does:
///
/// - a session that meets the requirement reaches the inner service;
/// - one that does not is answered 401 with the JSON error body (code
///   `insufficient_user_authentication`) and the challenge of RFC 9470 §3, which names what a
///   new authentication must meet: `WWW-Authenticate: Bearer realm="api",
///   error="insufficient_user_authentication", error_description="a more recent
///   authentication is required", max_age=300` (and `acr_values="…"` when
///   [`acr_values`](RequireRecentAuthLayer::acr_values) asks for a class). The client
///   re-authenticates (`POST /api/auth/reauthenticate`) and retries, without a logout;
/// - a request without a session is the server's wiring mistake: 500, logged at `error`, never
///   let through (as the role check answers it).
///
/// With axum, add it **before** the session layer (a layer added later runs first):
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager, layer::require_recent_auth};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let security: Router = Router::new()
///     .route("/api/account/security", get(|| async { "the security settings" }))
///     .route_layer(require_recent_auth(Duration::from_secs(300))) // inner: runs second
///     .route_layer(SessionLayer::from_manager(&manager)); // outer: puts the Session in
/// # Ok(())
/// # }
/// ```
///
/// The refusal, with tower's `ServiceBuilder` and a manual clock:
///
/// ```
/// use tower_jwt_session::manager::NewSession;
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_jwt_session::config::ManualClock;
/// use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager, layer::require_recent_auth};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = ManualClock::starting_now();
/// let config = SessionConfig::new("0123456789abcdef0123456789abcdef")?;
/// let manager = SessionManager::builder(config).clock(clock.clone()).build()?;
/// let service = ServiceBuilder::new()
///     .layer(SessionLayer::from_manager(&manager))
///     .layer(require_recent_auth(Duration::from_secs(300)).clock(clock.clone()))
///     .service(service_fn(|_req: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("secret")))
///     }));
///
/// let pair = manager.create_session(NewSession::new("alice").roles(&["user"])).await?;
/// let request = || {
///     Request::builder()
///         .header("authorization", format!("Bearer {}", pair.access_token))
///         .body(String::new())
/// };
/// assert_eq!(service.clone().oneshot(request()?).await?.status(), StatusCode::OK);
///
/// clock.advance(Duration::from_secs(301));
/// let refused = service.clone().oneshot(request()?).await?;
/// assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(
///     refused.headers()["www-authenticate"],
///     "Bearer realm=\"api\", error=\"insufficient_user_authentication\", \
///      error_description=\"a more recent authentication is required\", max_age=300"
/// );
/// # Ok(())
/// # }
/// ```
pub fn require_recent_auth(max_age: Duration) -> RequireRecentAuthLayer {
    RequireRecentAuthLayer::new().max_age(max_age)
}

impl Default for RequireRecentAuthLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RequireRecentAuthLayer {
    /// A layer with no requirement yet: add [`max_age`](Self::max_age) or
    /// [`acr_values`](Self::acr_values). Without either it lets every session through.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                max_age: None,
                acr_values: None,
                realm: "api".into(),
                clock: Arc::new(SystemClock),
            }),
        }
    }

    fn with(self, edit: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        edit(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Requires an authentication no older than `max_age` (by whole seconds, the unit of
    /// `auth_time` and of the challenge's `max_age`). The default is none. A short value
    /// sends users to the password dialog often; RFC 9470 leaves the choice to the resource.
    pub fn max_age(self, max_age: Duration) -> Self {
        self.with(|s| s.max_age = Some(Duration::from_secs(max_age.as_secs())))
    }

    /// Requires the session's `acr` to be one of `values` (compared exactly), as a credential
    /// check set it with [`Authenticated::acr`](crate::login::Authenticated::acr). The default is
    /// none. The challenge names them as `acr_values="a b"` (RFC 9470 §3, space-separated);
    /// quotes, backslashes, spaces and control characters, which that list cannot carry, are
    /// left out of its text. An empty list lets nobody through.
    ///
    /// `amr` has no parameter in the RFC 9470 challenge, so there is no `amr` requirement: give
    /// each level of methods its own `acr` in the credential check (say `urn:example:aal2` for a
    /// password and a one-time code) and require that.
    ///
    /// ```
    /// use tower_jwt_session::layer::RequireRecentAuthLayer;
    ///
    /// let strong = RequireRecentAuthLayer::new().acr_values(["urn:example:aal2"]);
    /// # let _ = strong;
    /// ```
    pub fn acr_values<I, V>(self, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        let values: Box<[Box<str>]> = values
            .into_iter()
            .map(|v| v.into().into_boxed_str())
            .collect();
        self.with(|s| s.acr_values = Some(values))
    }

    /// The `realm` of the challenges. The default is `api`, like
    /// [`TokenSettings::with_realm`](crate::config::TokenSettings::with_realm); set the same value as there.
    pub fn realm(self, realm: impl Into<String>) -> Self {
        let realm = sanitize_realm(&realm.into()).into_boxed_str();
        self.with(|s| s.realm = realm)
    }

    /// The clock the age is measured on. The default is the system clock; tests pass the
    /// [`ManualClock`](crate::config::ManualClock) their manager runs on.
    pub fn clock(self, clock: impl Clock) -> Self {
        let clock: SharedClock = Arc::new(clock);
        self.with(|s| s.clock = clock)
    }
}

/// Why a session does not meet the requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortfall {
    TooOld,
    TooWeak,
}

impl Shared {
    /// What the session lacks, if anything.
    fn shortfall(&self, session: &Session) -> Option<Shortfall> {
        if let Some(values) = &self.acr_values
            && !session
                .acr()
                .is_some_and(|acr| values.iter().any(|v| **v == *acr))
        {
            return Some(Shortfall::TooWeak);
        }
        if let Some(max_age) = self.max_age {
            let now = self.clock.now_ms();
            let age = now.saturating_sub(session.auth_time_ms());
            if age > duration_ms(max_age) {
                return Some(Shortfall::TooOld);
            }
        }
        None
    }

    /// 401 `insufficient_user_authentication` with the challenge of RFC 9470 §3.
    fn refusal(&self, shortfall: Shortfall) -> Response<Bytes> {
        let description = match shortfall {
            Shortfall::TooOld => TOO_OLD,
            Shortfall::TooWeak => TOO_WEAK,
        };
        let mut response = json_error(ErrorCode::InsufficientUserAuthentication, description);
        let mut challenge = format!(
            "Bearer realm=\"{}\", error=\"insufficient_user_authentication\", error_description=\"{description}\"",
            self.realm
        );
        if let Some(values) = &self.acr_values {
            let values: Vec<String> = values
                .iter()
                .map(|v| sanitize_realm(v).replace(' ', ""))
                .collect();
            challenge.push_str(&format!(", acr_values=\"{}\"", values.join(" ")));
        }
        if let Some(max_age) = self.max_age {
            challenge.push_str(&format!(", max_age={}", max_age.as_secs()));
        }
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl<S> Layer<S> for RequireRecentAuthLayer {
    type Service = RequireRecentAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded::new(
            inner,
            RecentAuthCheck {
                shared: self.shared.clone(),
            },
        )
    }
}

/// The service made by [`RequireRecentAuthLayer`]: the inner service behind a
/// [`RecentAuthCheck`].
pub type RequireRecentAuth<S> = Guarded<S, RecentAuthCheck>;

/// The check of [`RequireRecentAuthLayer`]: answers at once, never waits.
#[derive(Clone)]
pub struct RecentAuthCheck {
    shared: Arc<Shared>,
}

impl fmt::Debug for RecentAuthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecentAuthCheck")
            .field("max_age", &self.shared.max_age)
            .field("acr_values", &self.shared.acr_values)
            .finish()
    }
}

impl<B> Check<B> for RecentAuthCheck {
    type Stamp = ();
    type Future = Ready<Result<(Request<B>, ()), Response<Bytes>>>;

    #[inline]
    fn check(&self, req: Request<B>) -> Verdict<B, (), Self::Future> {
        match req.extensions().get::<Session>() {
            Some(session) => match self.shared.shortfall(session) {
                None => Verdict::Allow(req, ()),
                Some(shortfall) => {
                    tracing::debug!(
                        session_id = %session.session_id(),
                        ?shortfall,
                        "request refused: step-up required"
                    );
                    Verdict::Refuse(self.shared.refusal(shortfall))
                }
            },
            None => {
                tracing::error!(
                    "{MISORDERED}: with axum, add `.route_layer(require_recent_auth(..))` before `.route_layer(SessionLayer::from_manager(&manager))`; refusing"
                );
                Verdict::Refuse(json_error(ErrorCode::Internal, MISORDERED))
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The role check: documented on [`require_role`].

use std::fmt;
use std::future::Ready;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use tower_layer::Layer;

use crate::error::{ErrorCode, json_error, sanitize_realm};
use crate::guard::{Check, Guarded, Verdict};
use crate::session::Session;

/// The message of the 500 answered when no session is in the request.
const MISORDERED: &str =
    "the role check found no session: the session layer is missing or runs after the role check";

/// A layer that lets through only sessions holding a role: see the
/// [`require_role`] docs.
///
/// Cheap to clone.
#[derive(Clone)]
#[must_use]
pub struct RequireRoleLayer {
    shared: Arc<Shared>,
}

struct Shared {
    roles: Box<[Box<str>]>,
    realm: Box<str>,
    /// `error_description` and JSON message, made once.
    description: Box<str>,
}

impl fmt::Debug for RequireRoleLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireRoleLayer")
            .field("roles", &self.shared.roles)
            .field("realm", &self.shared.realm)
            .finish()
    }
}

/// [`RequireRoleLayer`]: lets through only sessions that hold a role.
///
/// The layer runs behind [`SessionLayer`](crate::SessionLayer) and reads the verified
/// [`Session`] from the request extensions:
///
/// - a session with the role (or one of the roles) reaches the inner service;
/// - a session without it is answered 403 with the JSON error body (code `forbidden`) and
///   `WWW-Authenticate: Bearer realm="api", error="insufficient_scope", error_description="…"`
///   (RFC 6750 §3.1);
/// - a request without a session means the session layer is missing or runs after the role
///   check: a wiring mistake of the server, not of the client, so it is answered 500 with a
///   message that says so (never "no bearer token" to a request that sent one), never let
///   through, and logged at `error`.
///
/// With axum, a layer added later wraps the ones before it, so add `require_role` **first** and
/// the session layer after it:
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager, layer::require_role};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let admin: Router = Router::new()
///     .route("/api/admin/users", get(|| async { "the users" }))
///     .route_layer(require_role("admin")) // inner: runs second
///     .route_layer(SessionLayer::from_manager(&manager)); // outer: runs first, puts the Session in
/// # Ok(())
/// # }
/// ```
///
/// The same with tower's `ServiceBuilder`, where the first layer listed is the outermost:
///
/// ```
/// use tower_jwt_session::manager::NewSession;
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager, layer::require_role};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let service = ServiceBuilder::new()
///     .layer(SessionLayer::from_manager(&manager))
///     .layer(require_role("admin"))
///     .service(service_fn(|_req: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("secret")))
///     }));
///
/// for (user, role, status) in [
///     ("root", "admin", StatusCode::OK),
///     ("alice", "user", StatusCode::FORBIDDEN),
/// ] {
///     let pair = manager.create_session(NewSession::new(user).roles(&[role.to_owned()])).await?;
///     let request = Request::builder()
///         .header("authorization", format!("Bearer {}", pair.access_token))
///         .body(String::new())?;
///     assert_eq!(service.clone().oneshot(request).await?.status(), status);
/// }
/// # Ok(())
/// # }
/// ```
///
/// A [`RequireRoleLayer`] demanding `role`. Short for [`RequireRoleLayer::new`].
pub fn require_role(role: impl Into<String>) -> RequireRoleLayer {
    RequireRoleLayer::new(role)
}

impl RequireRoleLayer {
    /// Lets through sessions with `role`.
    pub fn new(role: impl Into<String>) -> Self {
        Self::any_of([role])
    }

    /// Lets through sessions with at least one of `roles`. An empty list lets nobody through.
    pub fn any_of<I, R>(roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        let roles: Box<[Box<str>]> = roles
            .into_iter()
            .map(|r| r.into().into_boxed_str())
            .collect();
        Self::build(roles, "api".into())
    }

    /// The `realm` of the challenges. The default is `api`, like
    /// [`TokenSettings::with_realm`](crate::config::TokenSettings::with_realm); set the same value as there.
    pub fn realm(self, realm: impl Into<String>) -> Self {
        Self::build(self.shared.roles.clone(), sanitize_realm(&realm.into()))
    }

    fn build(roles: Box<[Box<str>]>, realm: String) -> Self {
        let names: Vec<String> = roles.iter().map(|r| sanitize_realm(r)).collect();
        let description = match names.as_slice() {
            [] => "no role may use this resource".to_owned(),
            [one] => format!("the {one} role is required"),
            many => format!("one of the roles {} is required", many.join(", ")),
        };
        Self {
            shared: Arc::new(Shared {
                roles,
                realm: realm.into_boxed_str(),
                description: description.into_boxed_str(),
            }),
        }
    }

    /// The roles, any one of which lets a session through.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.shared.roles.iter().map(|r| &**r)
    }
}

impl Shared {
    fn allows(&self, session: &Session) -> bool {
        self.roles.iter().any(|r| session.has_role(r))
    }

    /// 403 `forbidden` with an `insufficient_scope` challenge (RFC 6750 §3.1).
    fn forbidden(&self) -> Response<Bytes> {
        let mut response = json_error(ErrorCode::Forbidden, &self.description);
        let challenge = format!(
            "Bearer realm=\"{}\", error=\"insufficient_scope\", error_description=\"{}\"",
            self.realm, self.description
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }

    /// No session: the session layer is missing or runs after the role check (500).
    fn misordered(&self) -> Response<Bytes> {
        json_error(ErrorCode::Internal, MISORDERED)
    }
}

impl<S> Layer<S> for RequireRoleLayer {
    type Service = RequireRole<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded::new(
            inner,
            RoleCheck {
                shared: self.shared.clone(),
            },
        )
    }
}

/// The service made by [`RequireRoleLayer`]: the inner service behind a [`RoleCheck`].
pub type RequireRole<S> = Guarded<S, RoleCheck>;

/// The check of [`RequireRoleLayer`]: answers at once, never waits.
#[derive(Clone)]
pub struct RoleCheck {
    shared: Arc<Shared>,
}

impl fmt::Debug for RoleCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleCheck")
            .field("roles", &self.shared.roles)
            .finish()
    }
}

impl<B> Check<B> for RoleCheck {
    type Stamp = ();
    type Future = Ready<Result<(Request<B>, ()), Response<Bytes>>>;

    #[inline]
    fn check(&self, req: Request<B>) -> Verdict<B, (), Self::Future> {
        match req.extensions().get::<Session>() {
            Some(session) if self.shared.allows(session) => Verdict::Allow(req, ()),
            Some(session) => {
                tracing::debug!(
                    user_id = session.user_id(),
                    session_id = %session.session_id(),
                    required = ?self.shared.roles,
                    "request refused: missing role"
                );
                Verdict::Refuse(self.shared.forbidden())
            }
            None => {
                tracing::error!(
                    "{MISORDERED}: with axum, add `.route_layer(require_role(..))` before `.route_layer(SessionLayer::from_manager(&manager))`; refusing"
                );
                Verdict::Refuse(self.shared.misordered())
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The axum extractor for [`Session`] (feature `axum`).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::error::{ErrorCode, json_error};
use crate::session::Session;

/// The rejection of the [`Session`] extractor: the route is not behind a
/// [`SessionLayer`](crate::SessionLayer). This is a wiring mistake, so it answers 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no Session in the request extensions: this route is not behind tower_jwt_session::SessionLayer; add `.route_layer(SessionLayer::from_manager(&manager))` to the router or route"
)]
pub struct MissingSessionLayer;

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable,
            &self.to_string(),
        )
        .map(axum::body::Body::from)
    }
}

/// Extracts the verified session put there by [`SessionLayer`](crate::SessionLayer).
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_jwt_session::{Session, SessionConfig, SessionLayer, SessionManager};
///
/// async fn me(session: Session) -> String {
///     format!("{} in session {}", session.user_id(), session.session_id())
/// }
///
/// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .route_layer(SessionLayer::from_manager(&manager));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}

/// `Option<Session>`: `None` where no layer put a session (e.g. a route outside the layer).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Session>().cloned())
    }
}

//! The axum extractor for [`Session`] (feature `axum`).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::error::{ErrorCode, json_error};
use crate::session::{ClaimsError, Session};

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
        json_error(ErrorCode::Internal, &self.to_string()).map(axum::body::Body::from)
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

/// Extracts the app's own claims of the verified session as `T` (feature `axum`): what
/// [`Session::claims`] reads, from what verification kept (the token is not decoded again).
///
/// Refusals:
/// - no [`Session`] in the request (the route is not behind a
///   [`SessionLayer`](crate::SessionLayer)): 500, as the [`Session`] extractor answers, for the
///   same reason. Behind the layer a request without a valid token never reaches the handler:
///   the layer answers 401 first, so a 401 here could only hide a wiring mistake behind a
///   login loop;
/// - claims that do not fit `T`: 500 `internal_error` naming the type, the cause (serde's
///   message) logged. The token verified, so the client did nothing wrong: `T` disagrees with
///   what the app's login or refresh hook puts there. Make fields that older tokens lack
///   `Option` or `#[serde(default)]`.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_jwt_session::session::Claims;
/// use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager};
///
/// #[derive(serde::Deserialize)]
/// struct Tenant {
///     tenant: String,
/// }
///
/// async fn dashboard(Claims(claims): Claims<Tenant>) -> String {
///     format!("tenant {}", claims.tenant)
/// }
///
/// let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let app: Router = Router::new()
///     .route("/dashboard", get(dashboard))
///     .route_layer(SessionLayer::from_manager(&manager));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims<T>(pub T);

/// The rejection of the [`Claims`] extractor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// No session: the route is not behind the layer (500).
    #[error(transparent)]
    MissingSessionLayer(#[from] MissingSessionLayer),
    /// The claims do not fit the type asked for (500 `internal_error`).
    #[error("the access token's custom claims do not fit `{type_name}`: {error}")]
    Mismatch {
        /// The type the handler asked for.
        type_name: &'static str,
        /// Why they do not fit.
        error: ClaimsError,
    },
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self {
            ClaimsRejection::MissingSessionLayer(missing) => missing.into_response(),
            ClaimsRejection::Mismatch { type_name, error } => {
                tracing::error!(%error, type_name, "a handler's claims type does not fit the access token's custom claims");
                json_error(ErrorCode::Internal,
                    &format!(
                        "the access token's custom claims do not fit `{type_name}`; the cause is in the server log"
                    ),
                )
                .map(axum::body::Body::from)
            }
        }
    }
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let session = parts
            .extensions
            .get::<Session>()
            .ok_or(MissingSessionLayer)?;
        session
            .claims()
            .map(Claims)
            .map_err(|error| ClaimsRejection::Mismatch {
                type_name: std::any::type_name::<T>(),
                error,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{CustomClaims, SessionId};
    use http::StatusCode;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Tenant {
        tenant: String,
    }

    async fn extract<T: serde::de::DeserializeOwned>(
        session: Option<Session>,
    ) -> Result<Claims<T>, Response> {
        let mut req = http::Request::new(());
        if let Some(session) = session {
            req.extensions_mut().insert(session);
        }
        let (mut parts, ()) = req.into_parts();
        Claims::<T>::from_request_parts(&mut parts, &())
            .await
            .map_err(IntoResponse::into_response)
    }

    async fn body(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn session(claims: serde_json::Value) -> Session {
        Session::new("alice", std::iter::empty(), SessionId::random(), 1, 2)
            .with_claims(CustomClaims::new(&claims).unwrap())
    }

    #[tokio::test]
    async fn claims_that_fit_are_extracted() {
        let got = extract::<Tenant>(Some(session(serde_json::json!({ "tenant": "acme" })))).await;
        assert_eq!(
            got.unwrap().0,
            Tenant {
                tenant: "acme".into()
            }
        );
        #[derive(serde::Deserialize)]
        struct Plan {
            plan: Option<String>,
        }
        let none = extract::<Plan>(Some(session(serde_json::json!({})))).await;
        assert_eq!(
            none.unwrap().0.plan,
            None,
            "optional fields fit a token without claims"
        );
    }

    #[tokio::test]
    async fn no_session_and_claims_that_do_not_fit_are_500s() {
        let res = extract::<Tenant>(None).await.unwrap_err();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let missing = body(res).await;
        assert_eq!(missing["error"], "internal_error", "{missing}");
        let res = extract::<Tenant>(Some(session(serde_json::json!({ "tenant": 7 }))))
            .await
            .unwrap_err();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body(res).await;
        assert_eq!(body["error"], "internal_error");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("Tenant") && !message.contains('7'),
            "{message}"
        );
    }
}

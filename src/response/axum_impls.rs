//! `IntoResponse` for the typed bodies and the crate's errors (feature `axum`).

use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ErrorBody, Success, TokenPairBody};
use crate::error::{AuthError, auth_error_response};
use crate::manager::{SessionError, TokenPair};

/// 200 with the JSON envelope, `Cache-Control: no-store`.
impl<T: Serialize> IntoResponse for Success<T> {
    fn into_response(self) -> Response {
        self.into_http().map(axum::body::Body::from)
    }
}

/// The error's status with the JSON error body, `Cache-Control: no-store`.
impl IntoResponse for ErrorBody<'_> {
    fn into_response(self) -> Response {
        self.into_http().map(axum::body::Body::from)
    }
}

/// The answer [the protocol](crate::routes#routes) gives a failed session operation: 401 with `token_expired`,
/// `refresh_token_reused`, …, 403 when the session limit denies, 400 for invalid input, 503
/// when the store is down. So `?` works in a handler returning `Result<_, SessionError>`.
impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        ErrorBody::new(self.code(), message).into_response()
    }
}

/// The answer [`SessionLayer`](crate::SessionLayer) gives with its default responder: the
/// status, an RFC 6750 challenge for `realm="api"` and the JSON error body.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = auth_error_response("api", self);
        response.extensions_mut().insert(self);
        response.map(axum::body::Body::from)
    }
}

/// 200 `{"success": true, "message": "Login successful", "data": {accessToken, refreshToken,
/// expiresIn, sessionId, userId}}`, the body of the protocol's login (`expiresIn` in
/// milliseconds), with `Cache-Control: no-store`. No cookie: add
/// [`cookie::refresh_cookie`](crate::routes::refresh_cookie) for that.
impl IntoResponse for TokenPair {
    fn into_response(self) -> Response {
        Success::new("Login successful", TokenPairBody::from_pair(&self)).into_response()
    }
}

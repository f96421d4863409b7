use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;

use crate::error::{AuthError, auth_error_response};

/// Builds the response for a refused request.
///
/// Implemented by [`JsonResponder`] (the default) and by any
/// `Fn(AuthError) -> Response<Bytes> + Clone + Send + Sync + 'static`. Whatever it returns, the
/// layer also inserts the [`AuthError`] into the response extensions.
///
/// ```
/// use bytes::Bytes;
/// use http::{Response, StatusCode};
/// use tower_jwt_session::{SessionLayer, response::AuthError, token::TokenCodec};
///
/// let tokens = tower_jwt_session::config::TokenSettings::new("0123456789abcdef0123456789abcdef")?;
/// let codec = TokenCodec::new(&tokens, &Default::default())?;
/// let layer = SessionLayer::new(codec).error_responder(|error: AuthError| {
///     let mut res = Response::new(Bytes::from(format!("go away: {error}")));
///     *res.status_mut() = error.status();
///     res
/// });
/// # let _ = layer;
/// # Ok::<(), tower_jwt_session::config::ConfigError>(())
/// ```
pub trait ErrorResponder: Clone + Send + Sync + 'static {
    /// The response for `error`.
    fn respond(&self, error: AuthError) -> Response<Bytes>;
}

impl<F> ErrorResponder for F
where
    F: Fn(AuthError) -> Response<Bytes> + Clone + Send + Sync + 'static,
{
    fn respond(&self, error: AuthError) -> Response<Bytes> {
        self(error)
    }
}

/// The default refusal: the status of [`AuthError::status`], an RFC 6750 `WWW-Authenticate`
/// challenge and the JSON error body `{"success": false, "message": …, "error": …}`.
#[derive(Clone)]
pub struct JsonResponder {
    realm: Arc<str>,
}

impl JsonResponder {
    /// A responder whose challenges name `realm`.
    pub fn new(realm: &str) -> Self {
        Self {
            realm: crate::error::sanitize_realm(realm).into(),
        }
    }

    pub(crate) fn from_realm(realm: Arc<str>) -> Self {
        Self { realm }
    }
}

impl fmt::Debug for JsonResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonResponder")
            .field("realm", &self.realm)
            .finish()
    }
}

impl ErrorResponder for JsonResponder {
    fn respond(&self, error: AuthError) -> Response<Bytes> {
        auth_error_response(&self.realm, error)
    }
}

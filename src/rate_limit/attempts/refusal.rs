//! What the tracker refuses with: [`LockedOut`](super::LockedOut) and
//! [`LoginRefused`](super::LoginRefused), and their 429 and 503 answers.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};

use crate::error::{ErrorCode, json_error};
use crate::rate_limit::backend::ceil_secs;

/// Further attempts are refused until the lock-out ends.
///
/// Renders as 429 `rate_limited` with `Retry-After` through [`LockedOut::to_response`] or,
/// under the `axum` feature, `IntoResponse`. It does not say whether the user or the address
/// is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed attempts; try again in {} seconds", self.retry_after_secs())]
pub struct LockedOut {
    /// Time until the lock-out ends.
    pub retry_after: Duration,
}

impl LockedOut {
    /// Whole seconds until the lock-out ends, rounded up, at least 1 (`Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }

    /// The answer: 429, `Retry-After`, and the JSON error body with code `rate_limited`.
    pub fn to_response(&self) -> Response<Bytes> {
        crate::telemetry::rate_limited("lockout");
        let mut response = json_error(ErrorCode::RateLimited, &self.to_string());
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs()),
        );
        response.extensions_mut().insert(*self);
        response
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum::response::IntoResponse for LockedOut {
    fn into_response(self) -> axum::response::Response {
        self.to_response().map(axum::body::Body::from)
    }
}

/// Why [`AttemptTracker::begin_login`] refused an attempt before the password was checked.
///
/// Renders through [`LoginRefused::to_response`] or, under the `axum` feature, `IntoResponse`:
/// 429 for a lock-out, 503 when attempts cannot be counted.
///
/// [`AttemptTracker::begin_login`]: super::AttemptTracker::begin_login
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginRefused {
    /// The user+client or the client is locked out, or this attempt started the lock-out.
    #[error(transparent)]
    LockedOut(#[from] LockedOut),
    /// The attempt backend cannot count attempts right now (its store is down or hung). Login
    /// fails closed: the password is not checked, so that an outage answers right and wrong
    /// passwords alike and never becomes an unthrottled password oracle.
    #[error("login attempts cannot be counted right now; try again shortly")]
    Unavailable,
}

impl LoginRefused {
    /// The lock-out, if that is why.
    pub fn locked_out(&self) -> Option<&LockedOut> {
        match self {
            LoginRefused::LockedOut(locked) => Some(locked),
            LoginRefused::Unavailable => None,
        }
    }

    /// The answer: [`LockedOut::to_response`], or 503 `unavailable` with `Retry-After: 1`.
    pub fn to_response(&self) -> Response<Bytes> {
        match self {
            LoginRefused::LockedOut(locked) => locked.to_response(),
            LoginRefused::Unavailable => {
                let mut response = json_error(ErrorCode::Unavailable, &self.to_string());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
        }
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum::response::IntoResponse for LoginRefused {
    fn into_response(self) -> axum::response::Response {
        self.to_response().map(axum::body::Body::from)
    }
}

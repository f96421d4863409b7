//! The JSON bodies of [the protocol](crate::routes#routes) as typed, `Serialize`-derived values, and (feature `axum`)
//! `IntoResponse` for them and for the crate's errors, so that `?` works in a handler.
//!
//! Every answer of the crate's routes is an envelope: `{"success": true, "message": …,
//! "data": …}` ([`Success`]) or `{"success": false, "message": …, "error": …}`
//! ([`ErrorBody`]). Field names are camelCase on the wire and times
//! keep the units [the protocol](crate::routes#routes) gives them (`expiresIn` in milliseconds).
//!
//! ```
//! use tower_jwt_session::manager::NewSession;
//! # #[cfg(feature = "axum")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Json, Router, extract::State, routing::post};
//! use tower_jwt_session::{SessionConfig, SessionError, SessionManager, manager::TokenPair};
//! use tower_jwt_session::response::{Success, TokenPairBody};
//!
//! // `?` turns a `SessionError` into its answer (401, 403, 503, …).
//! async fn sign_in(State(manager): State<SessionManager>) -> Result<TokenPair, SessionError> {
//!     Ok(manager.create_session(NewSession::new("alice").roles(&["user"])).await?)
//! }
//!
//! // Or build the body yourself, with the same field names.
//! async fn sign_in_json(
//!     State(manager): State<SessionManager>,
//! ) -> Result<Json<Success<TokenPairBody>>, SessionError> {
//!     let pair = manager.create_session(NewSession::new("alice").roles(&["user"])).await?;
//!     Ok(Json(Success::new("Login successful", TokenPairBody::from_pair(&pair))))
//! }
//!
//! let manager = SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
//! let app: Router = Router::new()
//!     .route("/sign-in", post(sign_in))
//!     .route("/sign-in-json", post(sign_in_json))
//!     .with_state(manager);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```

use std::borrow::Cow;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Serialize;

use crate::error::json_response;
pub use crate::error::{AuthError, DpopError, ErrorBody, ErrorCode};
use crate::manager::TokenPair;
use crate::session::SessionId;

/// `{"success": true, "message": …, "data": …}`: every successful answer of [the protocol](crate::routes#routes).
#[derive(Debug, Clone, Serialize)]
pub struct Success<T> {
    success: bool,
    message: Cow<'static, str>,
    data: T,
}

impl<T: Serialize> Success<T> {
    /// A success envelope around `data`.
    pub fn new(message: impl Into<Cow<'static, str>>, data: T) -> Self {
        Self {
            success: true,
            message: message.into(),
            data,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The data.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// A 200 response with this body, `Content-Type: application/json` and
    /// `Cache-Control: no-store`.
    pub(crate) fn into_http(self) -> Response<Bytes> {
        json_response(StatusCode::OK, &self)
    }
}

/// The `data` of an answer that hands out tokens (login, refresh, auto-refresh):
/// `{accessToken, refreshToken, expiresIn, sessionId, userId, refreshed}`, the optional fields
/// left out when absent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TokenPairBody {
    /// The access token.
    pub access_token: String,
    /// The refresh token; left out when it travels in the HttpOnly cookie only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Milliseconds until the access token expires.
    pub expires_in: u64,
    /// The session.
    pub session_id: SessionId,
    /// The user: given at login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Whether auto-refresh made a new pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refreshed: Option<bool>,
}

impl TokenPairBody {
    /// The body of `pair`: both tokens, `expiresIn`, `sessionId` and `userId`.
    pub fn from_pair(pair: &TokenPair) -> Self {
        Self {
            access_token: pair.access_token.clone(),
            refresh_token: Some(pair.refresh_token.clone()),
            expires_in: millis(pair.expires_in),
            session_id: pair.session_id,
            user_id: Some(pair.user_id.clone()),
            refreshed: None,
        }
    }

    /// Leaves the refresh token out of the body (cookie-only delivery) when `hide` is true.
    pub fn hide_refresh_token(mut self, hide: bool) -> Self {
        if hide {
            self.refresh_token = None;
        }
        self
    }

    /// Leaves `userId` out (the token routes do not repeat it).
    pub(crate) fn without_user_id(mut self) -> Self {
        self.user_id = None;
        self
    }

    /// Sets `refreshed` (auto-refresh).
    pub(crate) fn refreshed(mut self, refreshed: Option<bool>) -> Self {
        self.refreshed = refreshed;
        self
    }
}

pub(crate) use crate::clock::duration_ms as millis;

/// The `data` of `POST /validate`: what the layer would think of an access token.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TokenStatus {
    /// Signature, claims, time and revocation all pass.
    pub is_valid: bool,
    /// The token has expired.
    pub is_expired: bool,
    /// Expired, or valid with no more than the refresh threshold left.
    pub needs_refresh: bool,
    /// The token's `exp` in RFC 3339; `null` for a token that does not decode.
    pub expires_at: Option<String>,
    /// Milliseconds until expiry.
    pub time_until_expiry: u64,
    /// The token's user; `null` for a token that does not decode.
    pub user_id: Option<String>,
}

impl TokenStatus {
    /// The status of a token that does not decode.
    pub(crate) fn undecodable() -> Self {
        Self {
            is_valid: false,
            is_expired: false,
            needs_refresh: false,
            expires_at: None,
            time_until_expiry: 0,
            user_id: None,
        }
    }
}

/// The `data` of `GET /activity`: the caller's security activity, newest first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Activity {
    /// The events, newest first.
    pub events: Vec<ActivityEntry>,
}

/// One event of [`Activity`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ActivityEntry {
    /// `login`, `reauthenticate`, `refresh_reuse_detected`, `session_ended`, `logout_all` or
    /// `lockout`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// For `session_ended`: `logout`, `other_device`, `admin` or `evicted`; otherwise absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// When, in RFC 3339.
    pub at: String,
    /// The session concerned, or `null`.
    pub session_id: Option<SessionId>,
    /// The device label as the devices list shows it, or `null`.
    pub device: Option<String>,
    /// The client address as the devices list shows it, or `null`.
    pub ip: Option<String>,
}

/// The `data` of `GET /session-stats/{userId}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SessionStats {
    /// The user.
    pub user_id: String,
    /// How many sessions are live.
    pub active_sessions: usize,
    /// The per-user limit.
    pub max_sessions: usize,
    /// The live sessions.
    pub sessions: Vec<SessionInfo>,
}

/// One live session in [`SessionStats`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session.
    pub session_id: SessionId,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was last refreshed (RFC 3339).
    pub last_refreshed_at: String,
    /// When it was last active: created or refreshed (RFC 3339). Requests that only present
    /// an access token do not count: the store is not written per request.
    pub last_active_at: String,
    /// The device label captured at login (`Firefox on Linux`); empty when unknown.
    pub device: String,
    /// The client's address captured at login, as stored (`SESSION_DEVICE_IP`); `null` when
    /// not kept.
    pub ip: Option<String>,
    /// When it ends at the latest (RFC 3339).
    pub expires_at: String,
    /// Whether it is the caller's own session.
    pub current: bool,
}

/// The `data` of `GET /health`: `{status, store, warnings?}`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// `ok`, or `degraded` when the store answers but its setup can lose sessions or logouts
    /// without an error (see `warnings`).
    pub status: &'static str,
    /// The kind of session store (`memory`, `redis`).
    pub store: &'static str,
    /// Reason codes of what can lose sessions or logouts (`store_evicts_keys`, …; the log
    /// says more); left out when nothing can. Never settings, sizes or host names: the answer
    /// is public.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<&'static str>,
}

/// The `data` of `POST /logout-all`: how many sessions were ended.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Revoked {
    /// Sessions ended.
    pub revoked: usize,
}

/// An empty `data` object, `{}` (logout).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Empty {}

#[cfg(feature = "axum")]
mod axum_impls;

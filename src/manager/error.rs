//! [`SessionError`]: why a session operation failed; [`StartupError`]: why a manager could not
//! be built.

use crate::config::ConfigError;
use crate::error::{DpopError, ErrorCode};
use crate::session::ClaimsError;

use super::claims::HookFailure;
use crate::store::{ReuseKind, StoreError};

/// Why a session operation failed. Each maps to one status and error code of [the protocol](crate::routes#routes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The refresh token is malformed or forged: it does not parse, or its MAC does not
    /// verify under any configured secret. (A genuine token of a session that has ended is
    /// [`Revoked`](Self::Revoked) or [`TokenExpired`](Self::TokenExpired).)
    #[error("the refresh token is invalid")]
    InvalidToken,
    /// The refresh token has passed its own expiry.
    #[error("the refresh token has expired; log in again")]
    TokenExpired,
    /// A retired refresh token was presented: the session has been revoked as stolen.
    #[error(
        "this refresh token was already used; the session has been ended for safety, log in again"
    )]
    TokenReused(ReuseKind),
    /// The session has been revoked (logout, eviction, reuse detection).
    #[error("the session has ended; log in again")]
    Revoked,
    /// The session has passed its absolute lifetime.
    #[error("the session has reached its maximum lifetime; log in again")]
    SessionExpired,
    /// The user has the maximum number of sessions and the policy is `deny`.
    #[error("too many active sessions for this user; log out elsewhere first")]
    LimitReached,
    /// The input is not acceptable (e.g. an empty or oversized user id).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// The store's list of a user's sessions missed a live one (a Redis that evicted or lost
    /// keys, see `docs/deployment.md`): logout-all ended what it could find, and other sessions
    /// may still be live. An operator must look; retrying does not help.
    #[error(
        "the session store lost track of some of this user's sessions, which may still be active; an operator must check the store"
    )]
    Inconsistent,
    /// No such session among those the caller may end: it does not exist, has ended, or
    /// belongs to another user (the answer is the same, so session ids cannot be probed).
    #[error("no such session")]
    NotFound,
    /// The app's custom claims or the roles its refresh hook answered break the rules (a
    /// reserved name, not an object, a token past the size limit): the app's bug, so a 500
    /// `internal_error`, logged; no session was started or changed, no token issued.
    #[error("the session's custom claims were refused: {0}")]
    InvalidClaims(#[from] ClaimsError),
    /// The app's refresh hook failed or timed out: 503 `unavailable`; nothing was changed and
    /// the refresh token stays usable.
    #[error("the refresh hook gave no answer; try again shortly")]
    Hook(#[source] HookFailure),
    /// A re-authentication's credentials are another user's than the session's: nothing was
    /// changed. 403 `forbidden`.
    #[error("these credentials are not those of the signed-in user")]
    UserMismatch,
    /// A re-authentication lost a race with a refresh of the same session (the refresh
    /// rotated it between the read and the write): nothing of the re-authentication was
    /// written and the session is as the refresh left it. 503 `unavailable`: send it again.
    #[error("the session was refreshed at the same moment; send the re-authentication again")]
    Changed,
    /// The request's DPoP proof (RFC 9449) is missing or refused where the session needs
    /// one: a login when DPoP is required, a refresh or re-authentication of a session bound
    /// to a key. Nothing was changed. 400 `invalid_dpop_proof` or `use_dpop_nonce` at the
    /// token routes (RFC 9449 §5), 503 when the replay check could not be made.
    #[error("{0}")]
    Dpop(DpopError),
    /// DPoP is required and this session is not bound to a key (it started before DPoP was
    /// required): it cannot be refreshed. 400 `invalid_dpop_proof`.
    #[error(
        "this server binds every session to a DPoP key and this session is not bound: log in again with a DPoP proof"
    )]
    NotDpopBound,
    /// The session store could not be reached; nothing was changed.
    #[error("the session store is unavailable; try again shortly")]
    Unavailable(#[from] StoreError),
}

impl SessionError {
    /// The JSON error code for this error; `code().status()` is its HTTP status.
    pub fn code(&self) -> ErrorCode {
        match self {
            SessionError::InvalidToken => ErrorCode::InvalidToken,
            SessionError::TokenExpired => ErrorCode::TokenExpired,
            SessionError::TokenReused(_) => ErrorCode::RefreshTokenReused,
            SessionError::Revoked => ErrorCode::TokenRevoked,
            SessionError::SessionExpired => ErrorCode::SessionExpired,
            SessionError::LimitReached | SessionError::UserMismatch => ErrorCode::Forbidden,
            SessionError::InvalidInput(_) => ErrorCode::InvalidRequest,
            SessionError::NotFound => ErrorCode::NotFound,
            SessionError::Unavailable(_)
            | SessionError::Inconsistent
            | SessionError::Hook(_)
            | SessionError::Changed => ErrorCode::Unavailable,
            SessionError::InvalidClaims(_) => ErrorCode::Internal,
            SessionError::Dpop(e) => e.code(),
            SessionError::NotDpopBound => ErrorCode::InvalidDpopProof,
        }
    }
}

impl SessionError {
    /// The message an HTTP client is told: the error's own, except for the app's bugs
    /// ([`InvalidClaims`](Self::InvalidClaims)), whose details are logged, not sent.
    pub(crate) fn client_message(&self) -> String {
        match self {
            SessionError::InvalidClaims(_) => {
                "the server could not issue a token for this session; the cause is in its log"
                    .to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// Why a [`SessionManager`](super::SessionManager) could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The configuration does not validate, names a store this build lacks, or names a store
    /// that [`SessionManager::new`](super::SessionManager::new) does not open.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store the configuration names could not be opened.
    #[error("the session store could not be opened: {0}")]
    Store(#[from] StoreError),
}

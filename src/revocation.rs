//! The seam between [`SessionLayer`](crate::SessionLayer) and revocation state.
//!
//! The layer asks a [`RevocationCheck`] about every verified session. A check that can answer
//! from memory returns [`Checked::Ready`], which costs the request nothing more; only a check
//! that has to ask a store returns [`Checked::Pending`] with a future. The session manager's
//! moka-backed cache implements it; [`NoRevocation`] is the stateless choice for services that
//! only verify tokens.

use std::future::Future;

use crate::error::AuthError;
use crate::session::Session;

/// Whether a verified session may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStatus {
    /// The session is live.
    Active,
    /// The session was revoked, evicted or has ended.
    Revoked,
    /// The answer is unknown because the store cannot be reached.
    Unavailable,
}

impl SessionStatus {
    /// Why a session that is not active is refused: the store could not answer, or the session
    /// has ended.
    pub(crate) fn refusal(self) -> AuthError {
        match self {
            SessionStatus::Unavailable => AuthError::Unavailable,
            _ => AuthError::Revoked,
        }
    }
}

/// The answer of a [`RevocationCheck`]: at once, or after a future completes.
#[derive(Debug)]
pub enum Checked<F> {
    /// Known without waiting (a cache hit, or no revocation at all).
    Ready(SessionStatus),
    /// The store has to be asked.
    Pending(F),
}

/// Decides whether a verified session has been revoked.
///
/// ```
/// use std::future::Ready;
/// use tower_jwt_session::{Session, layer::{Checked, RevocationCheck, SessionStatus}};
///
/// /// Refuses every session of a banned user, with no I/O.
/// #[derive(Debug, Clone)]
/// struct BanList(Vec<String>);
///
/// impl RevocationCheck for BanList {
///     type Future = Ready<SessionStatus>;
///     fn check(&self, session: &Session) -> Checked<Self::Future> {
///         if self.0.iter().any(|u| u == session.user_id()) {
///             Checked::Ready(SessionStatus::Revoked)
///         } else {
///             Checked::Ready(SessionStatus::Active)
///         }
///     }
/// }
/// ```
pub trait RevocationCheck: Send + Sync + 'static {
    /// The future of a check that has to wait.
    type Future: Future<Output = SessionStatus> + Send + 'static;

    /// Checks `session`. Answer [`Checked::Ready`] whenever possible.
    fn check(&self, session: &Session) -> Checked<Self::Future>;
}

/// No revocation: every session with a valid token is active. For services that verify tokens
/// issued elsewhere and keep no session state.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRevocation;

impl RevocationCheck for NoRevocation {
    type Future = std::future::Ready<SessionStatus>;

    #[inline]
    fn check(&self, _session: &Session) -> Checked<Self::Future> {
        Checked::Ready(SessionStatus::Active)
    }
}

//! [`TokenPair`]: what login and refresh hand out.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::session::SessionId;

/// An access token and a refresh token for one session, as login and refresh hand them out.
/// `Debug` shows neither token.
#[derive(Clone)]
pub struct TokenPair {
    /// The access token (a JWT).
    pub access_token: String,
    /// The refresh token (opaque).
    pub refresh_token: String,
    /// Time until the access token expires. On the wire it is `expiresIn` in
    /// milliseconds; `X-Token-Expires-In` gives it in seconds.
    pub expires_in: Duration,
    /// When the access token expires (its `exp`, a whole second).
    pub access_expires_at: SystemTime,
    /// When the refresh token expires (never after the session's end). A refresh cookie's
    /// `Max-Age` runs until then.
    pub refresh_expires_at: SystemTime,
    /// The session.
    pub session_id: SessionId,
    /// The user.
    pub user_id: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish()
    }
}

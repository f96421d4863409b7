//! Custom claims at login ([`NewSession`]) and at refresh ([`RefreshHook`]).

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::session::{ClaimsError, CustomClaims, SessionId};
use crate::store::{DeviceInfo, SessionUpdate};

/// A session to start, for [`SessionManager::create_session`](super::SessionManager::create_session):
/// the user, and optionally roles, the device and the app's own claims.
///
/// ```
/// use tower_jwt_session::manager::NewSession;
///
/// let login = NewSession::new("alice")
///     .roles(&["user"])
///     .claims(&serde_json::json!({ "tenant": "acme", "plan": "pro" }));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct NewSession {
    pub(super) user_id: String,
    pub(super) roles: Vec<String>,
    pub(super) device: DeviceInfo,
    /// Refused claims are kept as their error, for `create_session` to answer.
    pub(super) claims: Result<CustomClaims, ClaimsError>,
    /// How the user proved who they are (`amr`), checked where the session starts.
    pub(super) amr: Vec<String>,
    /// The authentication context class reached (`acr`).
    pub(super) acr: Option<String>,
    /// The DPoP key the session is bound to.
    pub(super) jkt: Option<String>,
}

impl From<&str> for NewSession {
    /// A session of this user id, without roles or custom claims.
    fn from(user_id: &str) -> Self {
        Self::new(user_id)
    }
}

impl From<String> for NewSession {
    /// A session of this user id, without roles or custom claims.
    fn from(user_id: String) -> Self {
        Self::new(user_id)
    }
}

impl NewSession {
    /// A session of `user_id`, without roles or custom claims, from an unknown device.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            roles: Vec::new(),
            device: DeviceInfo::default(),
            claims: Ok(CustomClaims::default()),
            amr: Vec::new(),
            acr: None,
            jkt: None,
        }
    }

    /// Its roles.
    pub fn roles(mut self, roles: &[impl AsRef<str>]) -> Self {
        self.roles = roles.iter().map(|r| r.as_ref().to_owned()).collect();
        self
    }

    /// The device it is started from ([`DeviceInfo::capture`]), for the devices list.
    pub fn device(mut self, device: DeviceInfo) -> Self {
        self.device = device;
        self
    }

    /// The app's own claims: any value that serializes to a JSON object without
    /// [reserved names](crate::session::RESERVED_CLAIMS). A value that does not is answered by
    /// [`create_session`](super::SessionManager::create_session) as
    /// [`SessionError::InvalidClaims`](super::SessionError::InvalidClaims).
    pub fn claims<T: Serialize + ?Sized>(mut self, claims: &T) -> Self {
        self.claims = CustomClaims::new(claims);
        self
    }

    /// The app's own claims, already checked.
    pub fn custom_claims(mut self, claims: CustomClaims) -> Self {
        self.claims = Ok(claims);
        self
    }

    /// How the user proved who they are, for the `amr` claim of its access tokens (RFC 8176
    /// values: `pwd`, `otp`, `hwk`, `mfa`, …). The default is none (no `amr` claim). At most
    /// [`MAX_AMR`](crate::session::MAX_AMR) values of 1 to 64 bytes without control characters;
    /// others are answered by [`create_session`](super::SessionManager::create_session)
    /// as [`SessionError::InvalidClaims`](super::SessionError::InvalidClaims).
    ///
    /// ```
    /// use tower_jwt_session::manager::NewSession;
    ///
    /// let login = NewSession::new("alice").amr(["pwd", "otp"]).acr("urn:example:aal2");
    /// ```
    pub fn amr(mut self, amr: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.amr = amr.into_iter().map(Into::into).collect();
        self
    }

    /// The authentication context class the user reached, for the `acr` claim (a value of the
    /// app's own, such as `urn:example:aal2`). The default is none. 1 to 64 bytes without
    /// control characters, as [`amr`](Self::amr).
    pub fn acr(mut self, acr: impl Into<String>) -> Self {
        self.acr = Some(acr.into());
        self
    }

    /// Binds the session to the DPoP key of a verified `proof` (RFC 9449): its access tokens
    /// carry the key's thumbprint as `cnf.jkt`, are accepted only with proofs by that key, and
    /// the session is refreshed only with one. The default is a Bearer session.
    pub fn dpop_bound(mut self, proof: &crate::token::dpop::DpopProof) -> Self {
        self.jkt = Some(proof.jkt().to_owned());
        self
    }

    /// The `amr` and `acr` as a credential check gave them.
    pub(crate) fn methods(mut self, amr: &[String], acr: Option<&str>) -> Self {
        self.amr = amr.to_vec();
        self.acr = acr.map(str::to_owned);
        self
    }

    /// Claims as a credential check made them, refused or not.
    pub(crate) fn custom_claims_result(
        mut self,
        claims: Result<CustomClaims, ClaimsError>,
    ) -> Self {
        self.claims = claims;
        self
    }
}

/// The session a [`RefreshHook`] is asked about: as the store holds it when the refresh token
/// is presented.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RefreshContext {
    /// The user.
    pub user_id: String,
    /// The session.
    pub session_id: SessionId,
    /// Its roles so far.
    pub roles: Vec<String>,
    /// Its custom claims so far.
    pub claims: CustomClaims,
}

/// Fresh roles and claims from a [`RefreshHook`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Refreshed {
    roles: Vec<String>,
    /// Refused claims are kept as their error, for the refresh to answer (as
    /// [`NewSession::claims`] does).
    claims: Result<CustomClaims, ClaimsError>,
    /// The user is gone: end every session of theirs instead.
    pub(super) user_gone: bool,
}

impl Refreshed {
    /// These roles, and no custom claims.
    pub fn new(roles: &[impl AsRef<str>]) -> Self {
        Self {
            roles: roles.iter().map(|r| r.as_ref().to_owned()).collect(),
            claims: Ok(CustomClaims::default()),
            user_gone: false,
        }
    }

    /// The user may no longer have sessions (deleted, disabled, banned): every session of the
    /// user ends now, on every instance, as
    /// [`SessionManager::revoke`](super::SessionManager::revoke)`(Revoke::User(..))`
    /// ends them, and this refresh answers 401 `token_revoked` (the client logs in again, and
    /// your credential check refuses it). Without this, a refresh of a user the hook cannot
    /// find could only fail (503), again and again until the session's end, while its access
    /// token kept working.
    ///
    /// ```
    /// use tower_jwt_session::manager::{HookError, RefreshContext, Refreshed};
    ///
    /// async fn fresh_roles(session: RefreshContext) -> Result<Refreshed, HookError> {
    ///     let found: Option<Vec<String>> = None; // the app's user lookup
    ///     Ok(match found {
    ///         Some(roles) => Refreshed::new(&roles),
    ///         None => Refreshed::user_gone(),
    ///     })
    /// }
    /// ```
    pub fn user_gone() -> Self {
        Self {
            roles: Vec::new(),
            claims: Ok(CustomClaims::default()),
            user_gone: true,
        }
    }

    /// The roles and claims of `context`, unchanged.
    pub fn unchanged(context: &RefreshContext) -> Self {
        Self {
            roles: context.roles.clone(),
            claims: Ok(context.claims.clone()),
            user_gone: false,
        }
    }

    /// With these custom claims (see [`NewSession::claims`]): a value that does not serialize
    /// to a JSON object without reserved names is answered by the refresh as
    /// [`SessionError::InvalidClaims`](super::SessionError::InvalidClaims) (the app's bug: 500,
    /// logged, nothing changed), as a login's are.
    pub fn claims<T: Serialize + ?Sized>(mut self, claims: &T) -> Self {
        self.claims = CustomClaims::new(claims);
        self
    }

    /// With these custom claims, already checked.
    pub fn custom_claims(mut self, claims: CustomClaims) -> Self {
        self.claims = Ok(claims);
        self
    }

    pub(super) fn into_update(self) -> Result<SessionUpdate, ClaimsError> {
        Ok(SessionUpdate {
            roles: self.roles,
            claims: self.claims?,
            auth: None,
        })
    }
}

/// The error a refresh hook answers with: the app's own, boxed.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// The app's refresh hook, installed with
/// [`SessionManagerBuilder::refresh_hook`](super::SessionManagerBuilder::refresh_hook): asked
/// for the roles and custom claims of every refresh that rotates a session's refresh token, so a
/// role taken away or a plan changed reaches the next access token instead of waiting for the
/// session's end. What it answers is stored with the rotation, in the same atomic step, and
/// carried by later refreshes.
///
/// - It is not asked when the presented token gets no new successor: a refresh within the reuse
///   interval by the token's immediate parent (racing tabs) hands out the current successor
///   with the claims stored when it was minted, so one successor never has two sets of claims;
///   refused refreshes (reuse, revoked, expired) are refused before it.
/// - It failing (an error, or no answer within
///   [`refresh_hook_timeout`](super::SessionManagerBuilder::refresh_hook_timeout)) answers
///   the refresh with [`SessionError::Hook`](super::SessionError::Hook) (503 `unavailable`),
///   and nothing changes: the refresh token stays usable for a retry. No token with stale
///   claims is passed off as fresh.
/// - With a hook, a refresh reads the session from the store before rotating it (one more
///   round trip on Redis), to give the hook the session's user, roles and claims.
/// - Roles or claims it answers that the rules refuse (too many roles, a token past
///   [`MAX_TOKEN_LEN`](crate::token::MAX_TOKEN_LEN)) are the app's bug:
///   [`SessionError::InvalidClaims`](super::SessionError::InvalidClaims), a 500, and nothing
///   changes either.
///
/// Any `Fn(RefreshContext) -> impl Future<Output = Result<Refreshed, HookError>>` is a hook:
///
/// ```
/// use tower_jwt_session::manager::{HookError, RefreshContext, Refreshed};
/// use tower_jwt_session::{SessionConfig, SessionManager};
///
/// async fn fresh_claims(session: RefreshContext) -> Result<Refreshed, HookError> {
///     // Look the user up in the app's own database here.
///     let plan = if session.user_id == "alice" { "pro" } else { "free" };
///     Ok(Refreshed::new(&session.roles).claims(&serde_json::json!({ "plan": plan })))
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SessionManager::builder(SessionConfig::new("0123456789abcdef0123456789abcdef")?)
///     .refresh_hook(fresh_claims)
///     .build()?;
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait RefreshHook: Send + Sync + 'static {
    /// The roles and claims `session` has from now on.
    async fn refresh(&self, session: RefreshContext) -> Result<Refreshed, HookError>;
}

#[async_trait]
impl<F, Fut> RefreshHook for F
where
    F: Fn(RefreshContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Refreshed, HookError>> + Send + 'static,
{
    async fn refresh(&self, session: RefreshContext) -> Result<Refreshed, HookError> {
        self(session).await
    }
}

/// How long a refresh waits for the hook by default.
pub(super) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the refresh hook gave no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookFailure {
    /// The hook answered with an error.
    #[error("the refresh hook failed: {0}")]
    Failed(HookError),
    /// The hook did not answer in time.
    #[error("the refresh hook did not answer within {0:?}")]
    TimedOut(Duration),
}

#[cfg(test)]
mod tests;
